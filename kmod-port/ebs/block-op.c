// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * One ebs bio the device cannot take as it is (core-as/ebs/block-op.ts; the
 * dm-bufio path of Linux dm-ebs).
 *
 * A bio covering [s, e) in device sectors touches blocks hb..tb. The blocks
 * it covers fully go to the device directly, in one I/O from or into the
 * bio's own pages; a block it covers only in part (the head, the tail, or
 * one block holding both) goes through a bounce buffer of one whole block:
 * read it, then for a READ copy the wanted sectors out, for a WRITE copy the
 * new sectors in and write the whole block back. So the device only ever
 * sees whole blocks. A whole-block write (DIRECT) is an op too, only so that
 * it takes part in the write order. Runs under dmk_lock.
 */
#include "block-op.h"

/* Internal I/O steps (the cookie). */
#define STEP_MIDDLE	0
#define STEP_HEAD_READ	1
#define STEP_HEAD_WRITE	2
#define STEP_TAIL_READ	3
#define STEP_TAIL_WRITE	4

static void ebs_op_io_done(struct dmk_waiter *w, struct dmk_io *io, int status);

static struct bio *ebs_op_bio(struct ebs_op *op)
{
	return op->info.bio;
}

static unsigned int ebs_op_flags(struct ebs_op *op)
{
	return (ebs_op_bio(op)->bi_opf & REQ_FUA) ? DMK_FUA : 0;
}

/* go: every write this one waited for has finished. */
static void ebs_op_go(struct ebs_ordered *w)
{
	struct ebs_op *op = container_of(w, struct ebs_op, ow);

	if (op->kind == KIND_DIRECT)
		dmk_release(&op->info, DMK_MAP_REMAPPED);
	else
		ebs_op_start_split(op);
}

/* init: an op for its bio over device sectors [start, stop). */
void ebs_op_init(struct ebs_op *op, int kind, struct dm_dev *dev, const struct ebs_blocks *blocks,
		 struct ebs_order *order, sector_t start, sector_t stop)
{
	op->kind = kind;
	op->dev = dev;
	op->blocks = blocks;
	op->order = order;
	op->start = start;
	op->stop = stop;
	op->ow.first = ebs_block_of(blocks, start);
	op->ow.end = ebs_block_of(blocks, stop - 1) + 1;
	op->ow.rmw = kind == KIND_SPLIT_WRITE;
	op->ow.go = ebs_op_go;
	INIT_LIST_HEAD(&op->ow.node);
	INIT_LIST_HEAD(&op->ow.ready_node);
	op->pending = 0;
	op->status = 0;
	op->head_buf = NULL;
	op->tail_buf = NULL;
	op->waiter.io_done = ebs_op_io_done;
	op->waiter.inflight = 0;
}

/* issue: count blocks from block, through a bounce buffer the engine allocates (buf NULL). */
static void ebs_op_issue(struct ebs_op *op, struct dmk_io *io, unsigned int dir,
			 unsigned int flags, u64 block, u64 count, long step)
{
	const struct ebs_blocks *b = op->blocks;

	op->pending++;
	dmk_submit_internal(io, &op->waiter, op->dev, dir, flags, ebs_first_sector(b, block),
			    (unsigned int)(count << b->shift), NULL, step);
}

static void ebs_op_piece_done(struct ebs_op *op, int status);

/* startSplit: the whole-block middle and the bounce reads of partial head and tail blocks. */
void ebs_op_start_split(struct ebs_op *op)
{
	const struct ebs_blocks *b = op->blocks;
	u64 head_block = op->ow.first, tail_block = op->ow.end - 1;
	bool head_partial = !ebs_is_aligned(b, op->start) ||
			    (head_block == tail_block && !ebs_is_aligned(b, op->stop));
	bool tail_partial = tail_block != head_block && !ebs_is_aligned(b, op->stop);
	u64 middle_first = head_partial ? head_block + 1 : head_block;
	u64 middle_end = tail_partial ? tail_block : tail_block + 1;
	sector_t middle_start = ebs_first_sector(b, middle_first);

	/* held while issuing, so pieces that finish at once cannot finish the op */
	op->pending = 1;
	if (head_partial)
		ebs_op_issue(op, &op->head_io, DMK_OP_READ, 0, head_block, 1, STEP_HEAD_READ);
	if (tail_partial)
		ebs_op_issue(op, &op->tail_io, DMK_OP_READ, 0, tail_block, 1, STEP_TAIL_READ);
	if (middle_end > middle_first) {
		op->pending++;
		dmk_submit_internal_bio(&op->middle_io, &op->waiter, op->dev,
					op->kind == KIND_SPLIT_READ ? DMK_OP_READ : DMK_OP_WRITE,
					ebs_op_flags(op), middle_start, ebs_op_bio(op),
					(unsigned int)to_bytes(middle_start - op->start),
					(unsigned int)((middle_end - middle_first) << b->shift),
					STEP_MIDDLE);
	}
	ebs_op_piece_done(op, 0);
}

/* copyPart: the bio's sectors inside block, between the bio and the block's bounce buffer. */
static void ebs_op_copy_part(struct ebs_op *op, u64 block, void *block_buf, bool into_block)
{
	const struct ebs_blocks *b = op->blocks;
	struct bio *bio = ebs_op_bio(op);
	sector_t block_start = ebs_first_sector(b, block);
	sector_t from = max(op->start, block_start);
	sector_t to = min(op->stop, block_start + b->size);

	dmk_bio_copy(bio, bio->bi_iter, to_bytes(from - op->start),
		     (char *)block_buf + to_bytes(from - block_start), to_bytes(to - from),
		     !into_block);
}

static void ebs_op_io_done(struct dmk_waiter *w, struct dmk_io *io, int status)
{
	struct ebs_op *op = container_of(w, struct ebs_op, waiter);
	long step = io->cookie;
	bool head = step == STEP_HEAD_READ;
	const struct ebs_blocks *b = op->blocks;
	u64 block;
	void *buf;

	if (step == STEP_HEAD_READ)
		op->head_buf = io->buf;
	else if (step == STEP_TAIL_READ)
		op->tail_buf = io->buf;
	if (status == 0 && (step == STEP_HEAD_READ || step == STEP_TAIL_READ)) {
		block = head ? op->ow.first : op->ow.end - 1;
		buf = head ? op->head_buf : op->tail_buf;
		if (op->kind == KIND_SPLIT_READ) {
			ebs_op_copy_part(op, block, buf, false);
		} else {
			ebs_op_copy_part(op, block, buf, true);
			/* The read's pending count carries over to the merged block's write. */
			dmk_submit_internal(io, &op->waiter, op->dev, DMK_OP_WRITE,
					    ebs_op_flags(op), ebs_first_sector(b, block),
					    (unsigned int)b->size, buf,
					    head ? STEP_HEAD_WRITE : STEP_TAIL_WRITE);
			return;
		}
	}
	ebs_op_piece_done(op, status);
}

static void ebs_op_piece_done(struct ebs_op *op, int status)
{
	struct bio *bio = ebs_op_bio(op);

	if (status && !op->status)
		op->status = status;
	if (--op->pending > 0)
		return;
	dmk_buf_free_locked(op->head_buf);
	dmk_buf_free_locked(op->tail_buf);
	op->head_buf = NULL;
	op->tail_buf = NULL;
	if (op->kind == KIND_SPLIT_WRITE)
		ebs_order_leave(op->order, &op->ow);
	bio->bi_status = op->status ? BLK_STS_IOERR : BLK_STS_OK;
	dmk_release(&op->info, DMK_MAP_SUBMITTED);
}
