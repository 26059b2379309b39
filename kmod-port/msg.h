/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Constructor error messages with numbers in them (ti->error). */
#ifndef DMK_MSG_H
#define DMK_MSG_H

#include "dmk.h"

__printf(2, 3) void dmk_set_error(struct dm_target *ti, const char *fmt, ...);

#endif /* DMK_MSG_H */
