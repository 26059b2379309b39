/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Chunk arithmetic shared by snapshots and their stores (core-as/snapshot/chunks.ts). */
#ifndef DMK_CHUNKS_H
#define DMK_CHUNKS_H

#include "dmk.h"

/* chunkSizeError: why a chunk size (sectors) is unusable, into buf; false if it is fine. */
bool dmk_chunk_size_error(u64 chunk_size, char *buf, size_t len);

static inline unsigned int dmk_chunk_shift_of(u64 chunk_size)
{
	return chunk_size ? __builtin_ctzll(chunk_size) : 0;
}

#endif /* DMK_CHUNKS_H */
