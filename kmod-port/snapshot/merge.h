/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The snapshot-merge hooks the store and the snapshot call (core-as/targets/snapshot-merge.ts). */
#ifndef DMK_MERGE_H
#define DMK_MERGE_H

#include "dmk.h"

struct dmk_snapshot;

void dmk_merge_prepared(struct dmk_snapshot *s, s64 count, u64 last_old, u64 last_new);
void dmk_merge_committed(struct dmk_snapshot *s, bool ok);
void dmk_merge_chunk_drained(struct dmk_snapshot *s, u64 chunk);

#endif /* DMK_MERGE_H */
