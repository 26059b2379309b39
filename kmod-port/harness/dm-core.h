/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What the harness's device-mapper files share among themselves, as Linux's
 * drivers/md/dm-core.h is private to dm: dm-target.c (the registry and
 * dm_get_device), dm-table.c (tables), dm-ioctl.c (mapped devices and the
 * dmsetup verbs) and dm.c (requests). The rest of the harness sees only the
 * dmc_* calls in harness.h.
 *
 * Semantics and messages follow the core (core-as/index.ts, table.ts, io.ts,
 * devref.ts) so vectors compare the same text; where the core and Linux order
 * things differently, these files follow Linux, since the targets under test
 * are kernel code (a table is destroyed after the one replacing it resumed;
 * a killed clone does not see end_io).
 */
#ifndef DMK_HARNESS_DM_CORE_H
#define DMK_HARNESS_DM_CORE_H

#include "harness.h"

/* dm-ioctl.c */

/* The device whose table is being constructed: a table may not stack on its own device. */
extern struct hdev *dmc_loading_for;
/* Puts the reason in dmc_msg and returns -err. */
int dmc_fail(int err, const char *fmt, ...) __printf(2, 3);

/* dm-target.c */

struct target_type *dmc_find_target_type(const char *name);

/* dm-table.c */

struct dm_table *dmc_parse_table(struct hdev *md, const char *text, int *err);
void dmc_table_users(struct dm_table *t, int delta);
void dmc_table_retire(struct dm_table *t);
bool dmc_table_takes_discards(struct dm_table *t);
struct dm_target *dmc_find_target(struct dm_table *t, sector_t sector);

/* dm.c */

void dmc_release_held(struct hdev *dev);

#endif /* DMK_HARNESS_DM_CORE_H */
