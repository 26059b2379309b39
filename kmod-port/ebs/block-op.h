/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* One ebs bio the device cannot take as it is (core-as/ebs/block-op.ts). */
#ifndef DMK_EBS_BLOCK_OP_H
#define DMK_EBS_BLOCK_OP_H

#include "dmk.h"
#include "io.h"
#include "blocks.h"
#include "write-order.h"

#define KIND_DIRECT		0	/* whole blocks: the bio itself goes to the device */
#define KIND_SPLIT_READ		1
#define KIND_SPLIT_WRITE	2

/* The ebs target's per-bio data. */
struct ebs_op {
	struct dmk_bio_info info;
	struct ebs_ordered ow;
	bool has_op;		/* a DIRECT op in the write order, left at end_io */
	int kind;
	struct dm_dev *dev;
	const struct ebs_blocks *blocks;
	struct ebs_order *order;
	/* the bio's range on the device */
	sector_t start;
	sector_t stop;
	int pending;
	int status;
	void *head_buf;
	void *tail_buf;
	struct dmk_waiter waiter;
	struct dmk_io head_io;
	struct dmk_io tail_io;
	struct dmk_io middle_io;
};

void ebs_op_init(struct ebs_op *op, int kind, struct dm_dev *dev, const struct ebs_blocks *blocks,
		 struct ebs_order *order, sector_t start, sector_t stop);
void ebs_op_start_split(struct ebs_op *op);

#endif /* DMK_EBS_BLOCK_OP_H */
