// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-linear <dev> <offset>: a segment mapped onto a contiguous range of
 * one device (core-as/targets/linear.ts, Linux dm-linear.c).
 */
#include "dmk.h"
#include "args.h"
#include "devref.h"
#include "msg.h"
#include "targets.h"

struct linear_c {
	struct dm_dev *dev;
	sector_t start;
};

static int linear_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct linear_c *lc;
	u64 start;
	int r;

	if (argc != 2) {
		dmk_set_error(ti, "invalid argument count: expected %s, got %u arguments",
			      "<dev> <offset>", argc);
		return -EINVAL;
	}
	if (!dmk_parse_u64(argv[1], &start)) {
		dmk_set_error(ti, "invalid device sector '%s'", argv[1]);
		return -EINVAL;
	}
	lc = kzalloc(sizeof(*lc), GFP_KERNEL);
	if (!lc) {
		ti->error = "cannot allocate linear context";
		return -ENOMEM;
	}
	lc->start = start;
	r = dmk_get_device(ti, argv[0], lc->start, ti->len, &lc->dev);
	if (r) {
		kfree(lc);
		return r;
	}
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_write_zeroes_bios = 1;
	ti->private = lc;
	return 0;
}

static void linear_dtr(struct dm_target *ti)
{
	struct linear_c *lc = ti->private;

	dm_put_device(ti, lc->dev);
	kfree(lc);
}

static int linear_map(struct dm_target *ti, struct bio *bio)
{
	struct linear_c *lc = ti->private;

	bio_set_dev(bio, lc->dev->bdev);
	if (bio_sectors(bio))	/* an empty flush has no sector to move */
		bio->bi_iter.bi_sector = lc->start + dm_target_offset(ti, bio->bi_iter.bi_sector);
	return DM_MAPIO_REMAPPED;
}

static void linear_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			  char *result, unsigned int maxlen)
{
	struct linear_c *lc = ti->private;
	unsigned int sz = 0;

	result[0] = '\0';
	if (type == STATUSTYPE_TABLE)
		DMEMIT("%s %llu", lc->dev->name, (unsigned long long)lc->start);
}

static int linear_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct linear_c *lc = ti->private;

	return fn(ti, lc->dev, lc->start, ti->len, data);
}

struct target_type dmk_linear_target = {
	.name = "dmkit-linear",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = linear_ctr,
	.dtr = linear_dtr,
	.map = linear_map,
	.status = linear_status,
	.iterate_devices = linear_iterate_devices,
};
