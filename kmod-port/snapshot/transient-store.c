// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The transient exception store (N): exceptions live in memory only; COW
 * chunks are handed out from the start of the device
 * (core-as/snapshot/transient-store.ts, Linux dm-snap-transient.c).
 */
#include "store.h"
#include "snapshot.h"
#include "pending.h"

struct tstore {
	struct dmk_store base;
	sector_t next_free;	/* next free sector of the COW device */
};

static inline struct tstore *to_tstore(struct dmk_store *st)
{
	return container_of(st, struct tstore, base);
}

static int ts_read_metadata(struct dmk_store *st, char *error, size_t len, bool *valid)
{
	*valid = true;
	return 0;
}

static bool ts_prepare_exception(struct dmk_store *st, struct dmk_pending *pe)
{
	struct tstore *ts = to_tstore(st);
	sector_t size = bdev_nr_sectors(dmk_store_cow(st)->bdev);

	if (size < ts->next_free + st->chunk_size)
		return false;
	pe->new_chunk = ts->next_free >> st->chunk_shift;
	ts->next_free += st->chunk_size;
	return true;
}

static void ts_commit_exception(struct dmk_store *st, struct dmk_pending *pe, bool valid)
{
	dmk_snapshot_pending_complete(st->snap, pe, valid);
}

static void ts_drop_snapshot(struct dmk_store *st)
{
}

static void ts_usage(struct dmk_store *st)
{
	st->sectors_allocated = to_tstore(st)->next_free;
	st->total_sectors = bdev_nr_sectors(dmk_store_cow(st)->bdev);
	st->metadata_sectors = 0;
}

static unsigned int ts_status_table(struct dmk_store *st, char *result, unsigned int sz,
				    unsigned int maxlen)
{
	DMEMIT(" N %llu", st->chunk_size);
	return sz;
}

static bool ts_idle(struct dmk_store *st)
{
	return true;
}

static void ts_destroy(struct dmk_store *st)
{
	kfree(to_tstore(st));
}

static const struct dmk_store_type transient_type = {
	.read_metadata = ts_read_metadata,
	.prepare_exception = ts_prepare_exception,
	.commit_exception = ts_commit_exception,
	.drop_snapshot = ts_drop_snapshot,
	.usage = ts_usage,
	.status_table = ts_status_table,
	.can_merge = false,
	.idle = ts_idle,
	.destroy = ts_destroy,
};

struct dmk_store *dmk_transient_store_create(struct dmk_snapshot *snap)
{
	struct tstore *ts = kzalloc(sizeof(*ts), GFP_KERNEL);

	if (!ts)
		return NULL;
	ts->base.type = &transient_type;
	ts->base.snap = snap;
	return &ts->base;
}
