// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-zero: reads return zeroes, writes are dropped; anything else fails
 * (core-as/targets/zero.ts, Linux dm-zero.c).
 */
#include "dmk.h"
#include "msg.h"
#include "targets.h"

static int zero_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	if (argc != 0) {
		dmk_set_error(ti, "no arguments required, got %u", argc);
		return -EINVAL;
	}
	ti->num_discard_bios = 1;	/* no write-zeroes bios, as in Linux */
	ti->discards_supported = true;	/* no device below to offer them */
	return 0;
}

static int zero_map(struct dm_target *ti, struct bio *bio)
{
	switch (bio_op(bio)) {
	case REQ_OP_READ:
		zero_fill_bio(bio);
		break;
	case REQ_OP_WRITE:
	case REQ_OP_DISCARD:
		break;
	default:
		return DM_MAPIO_KILL;
	}
	bio_endio(bio);
	return DM_MAPIO_SUBMITTED;
}

/* No device below says how large a discard may be: the target takes any (as dm-zero 1.2). */
static void zero_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	limits->max_discard_sectors = UINT_MAX;
	limits->max_hw_discard_sectors = UINT_MAX;
	limits->discard_granularity = 512;
}

/*
 * No devices to visit; but Linux 6.1's dm_calculate_queue_limits calls
 * io_hints only for targets that have iterate_devices.
 */
static int zero_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	return 0;
}

static void zero_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			char *result, unsigned int maxlen)
{
	result[0] = '\0';
}

struct target_type dmk_zero_target = {
	.name = "dmkit-zero",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = zero_ctr,
	.map = zero_map,
	.status = zero_status,
	.io_hints = zero_io_hints,
	.iterate_devices = zero_iterate_devices,
};
