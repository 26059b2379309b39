// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-origin <origin> (Linux's snapshot-origin): the origin device as its users see it; a
 * write first has every snapshot of the device copy the chunks it would
 * overwrite (core-as/targets/snapshot-origin.ts, the origin target of Linux
 * dm-snap.c).
 */
#include "dmk.h"
#include "devref.h"
#include "io.h"
#include "msg.h"
#include "targets.h"
#include "snapshot/origins.h"
#include "snapshot/origin-write.h"
#include "snapshot/pending.h"

struct origin_c {
	struct dm_dev *dev;
};

static int origin_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct origin_c *o;
	int r;

	if (argc != 1) {
		dmk_set_error(ti, "incorrect number of arguments: expected <origin>, got %u", argc);
		return -EINVAL;
	}
	o = kzalloc(sizeof(*o), GFP_KERNEL);
	if (!o) {
		ti->error = "cannot allocate origin context";
		return -ENOMEM;
	}
	r = dmk_get_device(ti, argv[0], 0, ti->len, &o->dev);
	if (r) {
		kfree(o);
		return r;
	}
	r = dmk_register_origin(o->dev->bdev);
	if (r) {
		ti->error = "cannot register the origin";
		dm_put_device(ti, o->dev);
		kfree(o);
		return r;
	}
	ti->num_flush_bios = 1;	/* no discard or write-zeroes bios, as in Linux */
	ti->per_io_data_size = sizeof(struct dmk_bio_info);
	ti->accounts_remapped_io = true;	/* deferred bios go on with dm_submit_bio_remap */
	ti->private = o;
	return 0;
}

static void origin_dtr(struct dm_target *ti)
{
	struct origin_c *o = ti->private;

	dmk_unregister_origin(o->dev->bdev);
	dm_put_device(ti, o->dev);
	kfree(o);
}

static int origin_map(struct dm_target *ti, struct bio *bio)
{
	struct origin_c *o = ti->private;
	struct block_device *bdev = o->dev->bdev;
	sector_t offset, sector;
	unsigned int count;
	unsigned long flags;
	u64 split;
	int r;

	dmk_bio_info_init(dmk_bio_info(bio), ti, bio);
	/* No offset: like the kernel's origin, the mapping is sector for sector from sector 0. */
	bio_set_dev(bio, bdev);
	if ((bio->bi_opf & REQ_PREFLUSH) || bio_op(bio) == REQ_OP_READ)
		return DM_MAPIO_REMAPPED;
	spin_lock_irqsave(&dmk_lock, flags);
	/* A write never spans a chunk of any snapshot (the core splits at maxIoLen). */
	split = dmk_minimum_chunk_size(bdev);
	if (split && bio_op(bio) == REQ_OP_WRITE) {
		offset = dm_target_offset(ti, bio->bi_iter.bi_sector);
		if (bio_sectors(bio) > split - (offset & (split - 1)))
			dm_accept_partial_bio(bio, split - (offset & (split - 1)));
	}
	/* New exceptions are allocated here, before map returns, as in dm-snap's __origin_write. */
	sector = bio->bi_iter.bi_sector;
	count = bio_sectors(bio);
	while ((r = dmk_origin_write(bdev, bio, sector, count)) == DMK_MAP_NEED_MEMORY)
		dmk_pending_alloc_in_map(dmk_origin_write_needs(bdev, sector, count), &flags);
	spin_unlock_irqrestore(&dmk_lock, flags);
	return dmk_map_result(bio, r);
}

static void origin_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			  char *result, unsigned int maxlen)
{
	struct origin_c *o = ti->private;
	unsigned int sz = 0;

	result[0] = '\0';
	if (type == STATUSTYPE_TABLE)
		DMEMIT("%s", o->dev->name);
}

static int origin_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct origin_c *o = ti->private;

	return fn(ti, o->dev, 0, ti->len, data);
}

struct target_type dmk_origin_target = {
	.name = "dmkit-origin",	/* "dmkit-snapshot-origin" passes DM_MAX_TYPE_NAME (16) */
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = origin_ctr,
	.dtr = origin_dtr,
	.map = origin_map,
	.status = origin_status,
	.iterate_devices = origin_iterate_devices,
};
