// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Unit checks of the harness's own pieces, against values worked out
 * without the code under test: the PRNG (docs/vectors.md gives
 * pattern(1, 8)), SHA-256 (FIPS 180-4 examples) and the number parser the
 * targets share with the core; then the targets' checks of checks.c.
 */
#include "harness.h"
#include "../args.h"

static int failures;

static void check(bool ok, const char *what)
{
	printf("%s  %s\n", ok ? "pass" : "FAIL", what);
	if (!ok)
		failures++;
}

int scenario_checks(int *passed);

int selftest(void)
{
	static const unsigned char want[8] = { 0xf3, 0xea, 0x87, 0xa0, 0xc9, 0x49, 0xb3, 0x00 };
	unsigned char got[8];
	int passed = 0, unit_failures;
	char hex[65];
	u64 v = 0;

	pattern_fill(got, sizeof(got), 1);
	check(!memcmp(got, want, sizeof(want)), "pattern(1, 8) is f3 ea 87 a0 c9 49 b3 00");
	pattern_fill(got, 3, 1);
	check(!memcmp(got, want, 3), "pattern(1, 3) is the first 3 bytes of pattern(1, 8)");
	sha256_hex("abc", 3, hex);
	check(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
	      "sha256(\"abc\")");
	sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	check(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
	      "sha256 of the 56-byte FIPS example (two padding blocks)");
	check(dmk_parse_u64("18446744073709551615", &v) && v == U64_MAX, "parse 2^64 - 1");
	check(!dmk_parse_u64("18446744073709551616", &v), "refuse 2^64");
	check(!dmk_parse_u64("-1", &v) && !dmk_parse_u64("", &v) && !dmk_parse_u64("1x", &v),
	      "refuse a sign, an empty word and trailing garbage");
	check(dmk_shift_of(8) == 3 && dmk_shift_of(12) == -1, "shift_of powers of two only");
	unit_failures = failures;
	failures += scenario_checks(&passed);
	printf("%d passed, %d failed\n", 8 - unit_failures + passed, failures);
	return failures ? 1 : 0;
}
