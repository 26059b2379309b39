// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The data pattern of docs/vectors.md: the mulberry32 generator seeded with
 * S, each 32-bit output stored little-endian, truncated to the length.
 */
#include "harness.h"

void pattern_fill(unsigned char *buf, size_t len, u32 seed)
{
	u32 s = seed, t, word;
	size_t i = 0, b;

	while (i < len) {
		s += 0x6D2B79F5u;
		t = s;
		t = (t ^ (t >> 15)) * (t | 1);
		t ^= t + (t ^ (t >> 7)) * (t | 61);
		word = t ^ (t >> 14);
		for (b = 0; b < 4 && i < len; b++, i++)
			buf[i] = (unsigned char)(word >> (8 * b));
	}
}
