/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Running a vector through the C targets (run.c). */
#ifndef DMK_RUN_H
#define DMK_RUN_H

#include <setjmp.h>
#include "harness.h"
#include "vector.h"

/* true when every statement met its expectation; otherwise the reason is in detail. */
bool run_vector(struct vector *v, const struct run_options *o, char *detail, size_t len);

#endif /* DMK_RUN_H */
