/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Sector <-> block arithmetic for ebs (core-as/ebs/blocks.ts); a block is 2^shift sectors. */
#ifndef DMK_EBS_BLOCKS_H
#define DMK_EBS_BLOCKS_H

#include "dmk.h"

struct ebs_blocks {
	u64 size;		/* sectors per underlying block */
	unsigned int shift;
};

static inline u64 ebs_block_of(const struct ebs_blocks *b, u64 sector)
{
	return sector >> b->shift;
}

static inline u64 ebs_first_sector(const struct ebs_blocks *b, u64 block)
{
	return block << b->shift;
}

/* Where a sector sits inside its block (0 when it starts one). */
static inline u64 ebs_offset_in(const struct ebs_blocks *b, u64 sector)
{
	return sector & (b->size - 1);
}

static inline bool ebs_is_aligned(const struct ebs_blocks *b, u64 sector)
{
	return ebs_offset_in(b, sector) == 0;
}

/* The first block starting at or after sector. */
static inline u64 ebs_block_at_or_after(const struct ebs_blocks *b, u64 sector)
{
	return ebs_block_of(b, sector) + (ebs_is_aligned(b, sector) ? 0 : 1);
}

/* sectors rounded up to whole blocks. */
static inline u64 ebs_round_up(const struct ebs_blocks *b, u64 sectors)
{
	return ebs_first_sector(b, ebs_block_at_or_after(b, sectors));
}

#endif /* DMK_EBS_BLOCKS_H */
