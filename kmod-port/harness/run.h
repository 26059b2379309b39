/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Running a vector through the C targets (run.c). */
#ifndef DMK_RUN_H
#define DMK_RUN_H

#include <setjmp.h>
#include "harness.h"
#include "vector.h"

/* true when every statement met its expectation; otherwise the reason is in detail. */
bool run_vector(struct vector *v, const struct run_options *o, char *detail, size_t len);

/* A fresh world (engine, targets, no disks), and its end: false with why if it left a mess. */
void world_begin(const struct run_options *o);
bool world_end(char *detail, size_t len, bool report);

#endif /* DMK_RUN_H */
