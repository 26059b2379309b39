// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-error: every I/O fails with EIO (core-as/targets/error.ts, the io_err
 * target of Linux dm-target.c). Flushes have nothing to do.
 */
#include "dmk.h"
#include "targets.h"

static int error_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	/* The kernel's error target ignores its arguments; so do we. No write-zeroes bios. */
	ti->num_discard_bios = 1;
	ti->discards_supported = true;	/* no device below to offer them */
	return 0;
}

static int error_map(struct dm_target *ti, struct bio *bio)
{
	return DM_MAPIO_KILL;
}

/* No device below says how large a discard may be: the target takes any (as dm-zero 1.2). */
static void error_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	limits->max_discard_sectors = UINT_MAX;
	limits->max_hw_discard_sectors = UINT_MAX;
	limits->discard_granularity = 512;
}

/*
 * No devices to visit; but Linux 6.1's dm_calculate_queue_limits calls
 * io_hints only for targets that have iterate_devices.
 */
static int error_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	return 0;
}

static void error_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			 char *result, unsigned int maxlen)
{
	result[0] = '\0';
}

struct target_type dmk_error_target = {
	.name = "dmkit-error",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = error_ctr,
	.map = error_map,
	.status = error_status,
	.io_hints = error_io_hints,
	.iterate_devices = error_iterate_devices,
};
