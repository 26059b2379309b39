// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * `<#features> <feature>...` after a snapshot's chunk size
 * (core-as/snapshot/features.ts): discard_zeroes_cow, and
 * discard_passdown_origin, which needs it. Names are case-insensitive and
 * may repeat, as in Linux; unlike Linux, words after the announced features
 * are refused rather than ignored.
 */
#include "features.h"
#include "../args.h"
#include "../msg.h"

#define DMK_MAX_SNAPSHOT_FEATURES	2

/* parseSnapshotFeatures: argv[first...]; 0, or -EINVAL with ti->error set. */
int dmk_parse_snapshot_features(struct dm_target *ti, unsigned int argc, char **argv,
				unsigned int first, struct dmk_snapshot_features *f)
{
	unsigned int i, end;
	u64 n;

	memset(f, 0, sizeof(*f));
	if (argc <= first)
		return 0;
	if (!dmk_parse_u64(argv[first], &n) || n > DMK_MAX_SNAPSHOT_FEATURES) {
		dmk_set_error(ti, "invalid number of feature arguments '%s' (0-%d)", argv[first],
			      DMK_MAX_SNAPSHOT_FEATURES);
		return -EINVAL;
	}
	end = first + 1 + n;
	if (end > argc) {
		dmk_set_error(ti, "not enough feature arguments: %llu announced, %u given",
			      (unsigned long long)n, argc - first - 1);
		return -EINVAL;
	}
	if (end < argc) {
		char list[128] = "";
		size_t used = 0;

		for (i = end; i < argc && used < sizeof(list); i++)
			used += scnprintf(list + used, sizeof(list) - used, "%s%s",
					  i > end ? " " : "", argv[i]);
		dmk_set_error(ti, "unexpected arguments after the features: '%s'", list);
		return -EINVAL;
	}
	for (i = first + 1; i < end; i++) {
		if (!strcasecmp(argv[i], "discard_zeroes_cow")) {
			f->discard_zeroes_cow = true;
		} else if (!strcasecmp(argv[i], "discard_passdown_origin")) {
			f->discard_passdown_origin = true;
		} else {
			dmk_set_error(ti, "unrecognised snapshot feature '%s'", argv[i]);
			return -EINVAL;
		}
	}
	if (f->discard_passdown_origin && !f->discard_zeroes_cow) {
		ti->error = "discard_passdown_origin feature depends on discard_zeroes_cow";
		return -EINVAL;
	}
	return 0;
}

/* tableText: " N feature..." appended at result + sz, as snapshot_status prints them. */
unsigned int dmk_snapshot_features_table(const struct dmk_snapshot_features *f, char *result,
					 unsigned int sz, unsigned int maxlen)
{
	unsigned int n = f->discard_zeroes_cow + f->discard_passdown_origin;

	if (!n)
		return sz;
	DMEMIT(" %u", n);
	if (f->discard_zeroes_cow)
		DMEMIT(" discard_zeroes_cow");
	if (f->discard_passdown_origin)
		DMEMIT(" discard_passdown_origin");
	return sz;
}
