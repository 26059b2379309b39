/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The optional feature arguments of snapshot and snapshot-merge
 * (core-as/snapshot/features.ts, dm-snap.c's parse_snapshot_features).
 */
#ifndef DMK_FEATURES_H
#define DMK_FEATURES_H

#include "dmk.h"

struct dmk_snapshot_features {
	bool discard_zeroes_cow;	/* whole-chunk discards zero their exceptions */
	bool discard_passdown_origin;	/* discards go to the origin device too */
};

int dmk_parse_snapshot_features(struct dm_target *ti, unsigned int argc, char **argv,
				unsigned int first, struct dmk_snapshot_features *f);
unsigned int dmk_snapshot_features_table(const struct dmk_snapshot_features *f, char *result,
					 unsigned int sz, unsigned int maxlen);

#endif /* DMK_FEATURES_H */
