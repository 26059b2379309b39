/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Constructor error messages with numbers in them (ti->error). */
#ifndef DMK_MSG_H
#define DMK_MSG_H

#include "dmk.h"

__printf(2, 3) void dmk_set_error(struct dm_target *ti, const char *fmt, ...);

/*
 * The core reads snapshot metadata after the whole table parsed, so it
 * reports such failures without a line number; the kernel reads it in ctr.
 * The harness uses this mark to word the failure as the core does.
 */
#ifdef __KERNEL__
static inline void dmk_mark_load_error(struct dm_target *ti)
{
}
#else
void dmk_mark_load_error(struct dm_target *ti);
#endif

#endif /* DMK_MSG_H */
