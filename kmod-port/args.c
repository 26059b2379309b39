// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Numbers in table text (core-as/args.ts): decimal digits only, no sign, no
 * blanks, no overflow past 2^64 - 1. Stricter than kstrtoull on purpose: the
 * core accepts exactly these words, so the port must too.
 */
#include "args.h"

/* parseU64 */
bool dmk_parse_u64(const char *word, u64 *value)
{
	size_t len = strlen(word);
	u64 v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return false;
	for (i = 0; i < len; i++) {
		unsigned int d = (unsigned char)word[i] - '0';

		if (d > 9)
			return false;
		if (v > (U64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*value = v;
	return true;
}

/* isPowerOfTwo */
bool dmk_is_power_of_two(u64 v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* shiftOf: log2 of a power of two, or -1 (as dm-stripe keeps its shifts) */
int dmk_shift_of(u64 v)
{
	return dmk_is_power_of_two(v) ? __builtin_ctzll(v) : -1;
}
