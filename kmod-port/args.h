/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Parsing of table words (core-as/args.ts). */
#ifndef DMK_ARGS_H
#define DMK_ARGS_H

#include "dmk.h"

bool dmk_parse_u64(const char *word, u64 *value);
bool dmk_is_power_of_two(u64 v);
int dmk_shift_of(u64 v);

#endif /* DMK_ARGS_H */
