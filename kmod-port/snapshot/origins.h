/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Which snapshots watch which origin device (core-as/snapshot/origins.ts). */
#ifndef DMK_ORIGINS_H
#define DMK_ORIGINS_H

#include "dmk.h"

struct dmk_snapshot;

int dmk_register_snapshot(struct dmk_snapshot *s);
void dmk_unregister_snapshot(struct dmk_snapshot *s);
int dmk_register_origin(struct block_device *bdev);
void dmk_unregister_origin(struct block_device *bdev);

/* Under dmk_lock. */
struct list_head *dmk_snapshots_of(struct block_device *bdev);
u64 dmk_minimum_chunk_size(struct block_device *bdev);
void dmk_find_snapshots_sharing_cow(struct dmk_snapshot *s, struct dmk_snapshot **src,
				    struct dmk_snapshot **dest);

#endif /* DMK_ORIGINS_H */
