/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * A snapshot (core-as/targets/snapshot.ts SnapshotTarget): shared by the
 * snapshot and snapshot-merge targets, the stores and the origin-write path.
 * All fields are guarded by dmk_lock once the target is constructed.
 */
#ifndef DMK_SNAPSHOT_H
#define DMK_SNAPSHOT_H

#include "dmk.h"
#include "io.h"
#include "exceptions.h"
#include "store.h"
#include "merge.h"
#include "features.h"

#define DMK_PENDING_BUCKETS	256
#define DMK_TRACKED_BUCKETS	16

struct dmk_merge;

struct dmk_snapshot {
	struct dm_target *ti;
	struct dm_dev *origin;
	struct dm_dev *cow;
	struct dmk_store *store;
	bool valid;
	bool active;
	bool overflowed;
	bool merge_failed;
	bool registered;
	bool is_merge;			/* a snapshot-merge target */
	struct dmk_exception_table *complete;
	struct hlist_head pending[DMK_PENDING_BUCKETS];
	unsigned int pending_count;
	u64 start_sequence;
	u64 complete_sequence;
	/* Copies that finished before an older one, ordered by sequence. */
	struct list_head out_of_order;
	/* Snapshot reads in flight on origin chunks: a copy of such a chunk waits for them. */
	struct hlist_head tracked[DMK_TRACKED_BUCKETS];
	struct list_head drain_waiters;
	int copies_in_flight;
	struct dmk_snapshot *handover_from;
	bool awaiting_handover;		/* registered beside a live snapshot of the same COW */
	struct list_head origin_node;	/* in its origin's snapshots, in registration order */
	struct dmk_merge *merge;	/* snapshot-merge only */
	struct dmk_snapshot_features features;
};

static inline u64 dmk_snapshot_chunk_size(struct dmk_snapshot *s)
{
	return s->store->chunk_size;
}

static inline unsigned int dmk_snapshot_chunk_shift(struct dmk_snapshot *s)
{
	return s->store->chunk_shift;
}

/*
 * The COW device a store works on: its snapshot's (dm_snap_cow), so a store
 * handed over to a new snapshot follows that snapshot's device reference.
 */
static inline struct dm_dev *dmk_store_cow(struct dmk_store *st)
{
	return st->snap->cow;
}

/* dm_table_get_size of this snapshot's table: origin writes past it need no copy. */
static inline sector_t dmk_snapshot_device_sectors(struct dmk_snapshot *s)
{
	return dm_table_get_size(s->ti->table);
}

int dmk_snapshot_ctr(struct dm_target *ti, unsigned int argc, char **argv, bool is_merge);
void dmk_snapshot_dtr(struct dm_target *ti);
int dmk_snapshot_preresume(struct dm_target *ti);
void dmk_snapshot_resume(struct dm_target *ti);
void dmk_snapshot_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			 char *result, unsigned int maxlen);
int dmk_snapshot_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error);
int dmk_snapshot_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data);
void dmk_snapshot_io_hints(struct dm_target *ti, struct queue_limits *limits);

void dmk_snapshot_remap(struct dmk_snapshot *s, struct bio *bio, u64 new_chunk);
void dmk_snapshot_track(struct dmk_snapshot *s, u64 chunk, struct bio *bio);
int dmk_snapshot_tracked_count(struct dmk_snapshot *s, u64 chunk);
struct dmk_pending *dmk_snapshot_pending_for(struct dmk_snapshot *s, u64 chunk);
bool dmk_snapshot_has_exception(struct dmk_snapshot *s, u64 chunk);
int dmk_snapshot_insert_pending(struct dmk_snapshot *s, u64 chunk, struct dmk_pending **result);
void dmk_snapshot_copy_started(struct dmk_snapshot *s);
void dmk_snapshot_copy_done(struct dmk_snapshot *s, struct dmk_pending *pe, bool error);
void dmk_snapshot_pending_complete(struct dmk_snapshot *s, struct dmk_pending *pe, bool success);
void dmk_snapshot_invalidate(struct dmk_snapshot *s, int err);
int dmk_snapshot_add_exception(struct dmk_snapshot *s, u64 old_chunk, u64 new_chunk);

#endif /* DMK_SNAPSHOT_H */
