// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * getDevice / resolveDevice of core-as/devref.ts: dm_get_device plus the
 * range check the core does at once (the kernel does it later, at table
 * completion, with its own message), so a too-small device is refused in
 * ctr with the core's words.
 */
#include "devref.h"
#include "msg.h"

int dmk_get_device(struct dm_target *ti, const char *name, sector_t start, sector_t len,
		   struct dm_dev **result)
{
	char *before = ti->error;
	sector_t size;
	int r;

	r = dm_get_device(ti, name, dm_table_get_mode(ti->table), result);
	if (r) {
		/* The harness's dm_get_device says why; the kernel's does not. */
		if (ti->error == before)
			dmk_set_error(ti, "unknown device %s", name);
		return r;
	}
	size = dmk_dev_sectors(*result);
	if (start > size || len > size - start) {
		dm_put_device(ti, *result);
		*result = NULL;
		dmk_set_error(ti,
			      "device %s is too small: the mapping needs sectors %llu-%llu, the device has %llu",
			      name, (unsigned long long)start, (unsigned long long)(start + len),
			      (unsigned long long)size);
		return -EINVAL;
	}
	return 0;
}

sector_t dmk_dev_sectors(struct dm_dev *dev)
{
	return bdev_nr_sectors(dev->bdev);
}

/* DevRef.sameAs: one underlying device, however it was named. */
bool dmk_same_dev(struct dm_dev *a, struct dm_dev *b)
{
	return a->bdev == b->bdev;
}
