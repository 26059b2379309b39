/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Devices a target maps onto (core-as/devref.ts). */
#ifndef DMK_DEVREF_H
#define DMK_DEVREF_H

#include "dmk.h"

int dmk_get_device(struct dm_target *ti, const char *name, sector_t start, sector_t len,
		   struct dm_dev **result);
sector_t dmk_dev_sectors(struct dm_dev *dev);
bool dmk_same_dev(struct dm_dev *a, struct dm_dev *b);

#endif /* DMK_DEVREF_H */
