// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-ebs <dev> <offset> <emulated sectors> [<underlying sectors>]:
 * 512-byte sectors over a device that only takes whole blocks of
 * <underlying sectors> (core-as/targets/ebs.ts, Linux dm-ebs-target.c).
 * Bios aligned to the underlying block go straight through, as dm-ebs
 * remaps them; any other read or write is split by ebs/block-op.c into whole
 * blocks, with a read-modify-write of partial blocks, so the device only
 * ever sees whole-block I/O. Writes are ordered per block
 * (ebs/write-order.c). Without <underlying sectors> the block is 1 sector,
 * as in the core (whose devices all take 512-byte sectors).
 */
#include "dmk.h"
#include "args.h"
#include "devref.h"
#include "io.h"
#include "msg.h"
#include "targets.h"
#include "ebs/block-op.h"

#define MAX_EMULATED	8	/* PAGE_SIZE in sectors, as dm-ebs limits it */
#define MAX_UNDERLYING	32768	/* the largest power of two a %hu holds */

struct ebs_c {
	struct dm_dev *dev;
	sector_t start;
	unsigned int emulated;
	unsigned int underlying;
	bool underlying_set;
	struct ebs_blocks blocks;
	struct ebs_order order;
};

static int ebs_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct ebs_c *ec;
	u64 start, emulated, underlying, rounded;
	int r = -EINVAL;

	if (argc < 3 || argc > 4) {
		dmk_set_error(ti,
			      "invalid argument count: expected <dev> <offset> <emulated sectors> [<underlying sectors>], got %u arguments",
			      argc);
		return -EINVAL;
	}
	ec = kzalloc(sizeof(*ec), GFP_KERNEL);
	if (!ec) {
		ti->error = "cannot allocate ebs context";
		return -ENOMEM;
	}
	if (!dmk_parse_u64(argv[1], &start)) {
		dmk_set_error(ti, "invalid device offset sector '%s'", argv[1]);
		goto bad;
	}
	if (start >= ti->len) {
		dmk_set_error(ti,
			      "device offset sector %s must be smaller than the target length %llu (dm-ebs rule)",
			      argv[1], (unsigned long long)ti->len);
		goto bad;
	}
	ec->start = start;
	if (!dmk_parse_u64(argv[2], &emulated) || !dmk_is_power_of_two(emulated) ||
	    emulated > MAX_EMULATED) {
		dmk_set_error(ti, "invalid emulated block size '%s': 1, 2, 4 or 8 sectors",
			      argv[2]);
		goto bad;
	}
	ec->emulated = (unsigned int)emulated;
	ec->underlying = 1;
	if (argc == 4) {
		if (!dmk_parse_u64(argv[3], &underlying) || !dmk_is_power_of_two(underlying) ||
		    underlying > MAX_UNDERLYING) {
			dmk_set_error(ti,
				      "invalid underlying block size '%s': a power of two from 1 to 32768 sectors",
				      argv[3]);
			goto bad;
		}
		ec->underlying = (unsigned int)underlying;
		ec->underlying_set = true;
	}
	ec->blocks.size = ec->underlying;
	ec->blocks.shift = dmk_shift_of(ec->underlying);
	/* The last block is read and rewritten whole: the device must hold all of it. */
	rounded = ebs_round_up(&ec->blocks, ti->len);
	if (rounded < ti->len) {
		dmk_set_error(ti, "target length %llu does not fit in whole underlying blocks",
			      (unsigned long long)ti->len);
		goto bad;
	}
	r = dmk_get_device(ti, argv[0], ec->start, rounded, &ec->dev);
	if (r)
		goto bad;
	if (!ebs_is_aligned(&ec->blocks, ec->start)) {
		dmk_set_error(ti, "device offset %s is not a multiple of the %s %llu", argv[1],
			      "underlying block size", ec->blocks.size);
		dm_put_device(ti, ec->dev);
		r = -EINVAL;
		goto bad;
	}
	ebs_order_init(&ec->order);
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;	/* no write-zeroes bios, as in Linux */
	ti->per_io_data_size = sizeof(struct ebs_op);
	ti->accounts_remapped_io = true;	/* deferred bios go on with dm_submit_bio_remap */
	ti->private = ec;
	return 0;
bad:
	kfree(ec);
	return r;
}

static void ebs_dtr(struct dm_target *ti)
{
	struct ebs_c *ec = ti->private;

	dm_put_device(ti, ec->dev);
	kfree(ec);
}

/* startDirect: a whole-block write or discard, remapped as is once no RMW is in its way. */
static int ebs_start_direct(struct ebs_c *ec, struct ebs_op *op, sector_t start, sector_t stop)
{
	ebs_op_init(op, KIND_DIRECT, ec->dev, &ec->blocks, &ec->order, start, stop);
	op->has_op = true;
	return ebs_order_enter(&ec->order, &op->ow) ? DMK_MAP_REMAPPED : DMK_MAP_DEFERRED;
}

static int ebs_start_split(struct ebs_c *ec, struct ebs_op *op, int kind, sector_t start,
			   sector_t stop)
{
	ebs_op_init(op, kind, ec->dev, &ec->blocks, &ec->order, start, stop);
	if (kind == KIND_SPLIT_READ || ebs_order_enter(&ec->order, &op->ow))
		ebs_op_start_split(op);
	return DMK_MAP_DEFERRED;
}

/* Only whole blocks are discarded; partial ones at the ends are left alone (__ebs_discard_bio). */
static int ebs_map_discard(struct ebs_c *ec, struct ebs_op *op, struct bio *bio, sector_t start,
			   sector_t stop)
{
	const struct ebs_blocks *b = &ec->blocks;
	u64 first = ebs_block_at_or_after(b, start), end = ebs_block_of(b, stop);

	if (first >= end)
		return DMK_MAP_SUBMITTED;
	bio->bi_iter.bi_sector = ebs_first_sector(b, first);
	bio->bi_iter.bi_size = to_bytes(ebs_first_sector(b, end) - bio->bi_iter.bi_sector);
	return ebs_start_direct(ec, op, bio->bi_iter.bi_sector, ebs_first_sector(b, end));
}

static int ebs_map_locked(struct dm_target *ti, struct ebs_c *ec, struct ebs_op *op,
			  struct bio *bio)
{
	const struct ebs_blocks *b = &ec->blocks;
	sector_t start = ec->start + dm_target_offset(ti, bio->bi_iter.bi_sector);
	sector_t stop = start + bio_sectors(bio);
	bool aligned = ebs_is_aligned(b, start) && ebs_is_aligned(b, stop);

	bio->bi_iter.bi_sector = start;
	if (bio_op(bio) == REQ_OP_DISCARD)
		return ebs_map_discard(ec, op, bio, start, stop);
	if (bio_op(bio) == REQ_OP_READ)
		return aligned ? DMK_MAP_REMAPPED :
				 ebs_start_split(ec, op, KIND_SPLIT_READ, start, stop);
	if (bio_op(bio) == REQ_OP_WRITE) {
		if (aligned)
			return ebs_start_direct(ec, op, start, stop);
		return ebs_start_split(ec, op, KIND_SPLIT_WRITE, start, stop);
	}
	return DMK_MAP_KILL;	/* write-zeroes never gets here (num_write_zeroes_bios is 0) */
}

static int ebs_map(struct dm_target *ti, struct bio *bio)
{
	struct ebs_c *ec = ti->private;
	struct ebs_op *op = dm_per_bio_data(bio, sizeof(*op));
	unsigned long flags;
	int r;

	op->has_op = false;
	dmk_bio_info_init(&op->info, ti, bio);
	bio_set_dev(bio, ec->dev->bdev);
	if (bio->bi_opf & REQ_PREFLUSH)
		return DM_MAPIO_REMAPPED;
	spin_lock_irqsave(&dmk_lock, flags);
	r = ebs_map_locked(ti, ec, op, bio);
	spin_unlock_irqrestore(&dmk_lock, flags);
	return dmk_map_result(bio, r);
}

static int ebs_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct ebs_c *ec = ti->private;
	struct ebs_op *op = dm_per_bio_data(bio, sizeof(*op));
	unsigned long flags;

	if (op->has_op) {
		op->has_op = false;
		spin_lock_irqsave(&dmk_lock, flags);
		ebs_order_leave(&ec->order, &op->ow);
		spin_unlock_irqrestore(&dmk_lock, flags);
	}
	return DM_ENDIO_DONE;
}

static void ebs_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
		       char *result, unsigned int maxlen)
{
	struct ebs_c *ec = ti->private;
	unsigned int sz = 0;

	result[0] = '\0';
	if (type != STATUSTYPE_TABLE)
		return;
	DMEMIT("%s %llu %u", ec->dev->name, (unsigned long long)ec->start, ec->emulated);
	if (ec->underlying_set)
		DMEMIT(" %u", ec->underlying);
}

/* The device shows the emulated block size; I/O below it is split by the block layer. */
static void ebs_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct ebs_c *ec = ti->private;

	limits->logical_block_size = to_bytes(ec->emulated);
	limits->physical_block_size = to_bytes(ec->underlying);
	blk_limits_io_min(limits, limits->logical_block_size);
}

static int ebs_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct ebs_c *ec = ti->private;

	return fn(ti, ec->dev, ec->start, ti->len, data);
}

struct target_type dmk_ebs_target = {
	.name = "dmkit-ebs",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = ebs_ctr,
	.dtr = ebs_dtr,
	.map = ebs_map,
	.end_io = ebs_end_io,
	.status = ebs_status,
	.io_hints = ebs_io_hints,
	.iterate_devices = ebs_iterate_devices,
};
