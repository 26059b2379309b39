// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-merge <origin> <COW device> P <chunk_size> (Linux's snapshot-merge): takes the
 * origin's place and shows the snapshot's data while copying its exceptions
 * back into the origin in the background, last committed first, runs of
 * consecutive chunks at a time (core-as/targets/snapshot-merge.ts, the merge
 * of Linux dm-snap.c). Once done the COW device holds no exceptions and the
 * origin reads as the snapshot did.
 */
#define DM_MSG_PREFIX "dmkit"
#include "dmk.h"
#include "targets.h"
#include "snapshot/snapshot.h"
#include "snapshot/origins.h"
#include "snapshot/origin-write.h"
#include "snapshot/merge.h"
#include "snapshot/pending.h"

#define MERGE_READ	1
#define MERGE_WRITE	2
#define MERGE_FLUSH	3

struct dmk_merge {
	struct dmk_snapshot *snap;
	bool merging;
	bool stopping;		/* suspending: no step after the one in flight (SHUTDOWN_MERGE) */
	u64 first_merging_chunk;
	u64 num_merging_chunks;
	/* Writes to chunks being merged wait here (bios_queued_during_merge). */
	struct bio_list queued_during_merge;
	/* The merge job: one run of chunks, COW -> buffer -> origin, then an origin flush. */
	u64 old_chunk;
	u64 new_chunk;
	u64 count;
	void *buf;
	bool waiting_for_writes;
	struct dmk_waiter waiter;
	struct dmk_io io;
	struct dmk_exception_waiter exw;
	struct dmk_starved starved;
};

static void merge_next_chunks(struct dmk_merge *m);
static void merge_job_retry(struct dmk_merge *m);
static void merge_job_io_done(struct dmk_waiter *w, struct dmk_io *io, int status);

static void merge_shutdown(struct dmk_merge *m)
{
	m->merging = false;
}

static void merge_release_queued(struct dmk_merge *m, bool error)
{
	struct bio *bio;

	while ((bio = bio_list_pop(&m->queued_during_merge)))
		dmk_resume_deferred(bio, error ? DMK_MAP_KILL : DMK_MAP_REMAPPED);
}

/* merge_callback's `shut`, with dm-snap.c's DMERR line saying why (core: fail(why)). */
static void merge_fail(struct dmk_merge *m, const char *why)
{
	DMERR("%s", why);
	m->snap->merge_failed = true;
	m->num_merging_chunks = 0;
	merge_release_queued(m, true);
	merge_shutdown(m);
}

static void merge_start(struct dmk_merge *m)
{
	m->stopping = false;
	if (m->merging)
		return;
	m->merging = true;
	merge_next_chunks(m);
}

static void merge_next_chunks(struct dmk_merge *m)
{
	struct dmk_snapshot *s = m->snap;

	if (!m->merging)
		return;
	if (m->stopping) {
		m->stopping = false;
		merge_shutdown(m);
		return;
	}
	if (!s->valid) {
		DMERR("Snapshot is invalid: can't merge");
		merge_shutdown(m);
		return;
	}
	s->store->type->prepare_merge(s->store);
}

static void merge_job_begin(struct dmk_merge *m, u64 old_chunk, u64 new_chunk, u64 count)
{
	m->old_chunk = old_chunk;
	m->new_chunk = new_chunk;
	m->count = count;
	merge_job_retry(m);
}

/* mergePrepared: the store found the next run (0: none left, -1: read error). */
void dmk_merge_prepared(struct dmk_snapshot *s, s64 count, u64 last_old, u64 last_new)
{
	struct dmk_merge *m = s->merge;
	u64 n;

	if (count <= 0) {
		if (count < 0) {
			DMERR("Read error in exception store: shutting down merge");
			s->merge_failed = true;
		}
		merge_shutdown(m);
		return;
	}
	n = count;
	merge_job_begin(m, last_old + 1 - n, last_new + 1 - n, n);
}

static bool merge_writes_drained(struct dmk_merge *m)
{
	u64 i;

	for (i = 0; i < m->count; i++) {
		if (dmk_snapshot_tracked_count(m->snap, m->old_chunk + i) > 0)
			return false;
	}
	return true;
}

static void merge_job_copy(struct dmk_merge *m)
{
	struct dmk_snapshot *s = m->snap;
	unsigned int shift = dmk_snapshot_chunk_shift(s);
	sector_t dest = m->old_chunk << shift;
	sector_t origin_size = bdev_nr_sectors(s->origin->bdev);
	u64 sectors = m->count * dmk_snapshot_chunk_size(s);

	if (sectors > origin_size - dest)
		sectors = origin_size - dest;
	/* buf NULL: the engine allocates the run's buffer when it issues the read */
	dmk_submit_internal(&m->io, &m->waiter, s->cow, DMK_OP_READ, 0, m->new_chunk << shift,
			    (unsigned int)sectors, NULL, MERGE_READ);
}

static void merge_job_write_drained(struct dmk_merge *m)
{
	if (!m->waiting_for_writes || !merge_writes_drained(m))
		return;
	m->waiting_for_writes = false;
	merge_job_copy(m);
}

/* runReady: other snapshots have their copies; stop new writes to the run, wait for old ones. */
static void merge_run_ready(struct dmk_merge *m)
{
	m->first_merging_chunk = m->old_chunk;
	m->num_merging_chunks = m->count;
	m->waiting_for_writes = true;
	merge_job_write_drained(m);
}

void dmk_merge_chunk_drained(struct dmk_snapshot *s, u64 chunk)
{
	if (s->merge->merging)
		merge_job_write_drained(s->merge);
}

static unsigned int merge_job_starved_needs(struct dmk_starved *st)
{
	struct dmk_merge *m = container_of(st, struct dmk_merge, starved);
	struct dmk_snapshot *s = m->snap;

	return dmk_origin_write_extent_needs(s->origin->bdev,
					     m->old_chunk << dmk_snapshot_chunk_shift(s),
					     m->count * dmk_snapshot_chunk_size(s),
					     s->ti->max_io_len);
}

static void merge_job_starved_retry(struct dmk_starved *st)
{
	merge_job_retry(container_of(st, struct dmk_merge, starved));
}

static void merge_job_exceptions_done(struct dmk_exception_waiter *w)
{
	merge_job_retry(container_of(w, struct dmk_merge, exw));
}

/* Other snapshots copy the origin chunks first; retried whenever one of their copies ends. */
static void merge_job_retry(struct dmk_merge *m)
{
	struct dmk_snapshot *s = m->snap;
	int r;

	if (!m->merging)
		return;
	r = dmk_origin_write_extent(s->origin->bdev, m->old_chunk << dmk_snapshot_chunk_shift(s),
				    m->count * dmk_snapshot_chunk_size(s), s->ti->max_io_len);
	if (r < 0) {
		dmk_defer_starved(&m->starved);
		return;
	}
	if (r) {
		dmk_wait_for_exceptions(&m->exw);
		return;
	}
	merge_run_ready(m);
}

/* mergeCommitted: the run is in the origin and the area no longer lists it. */
void dmk_merge_committed(struct dmk_snapshot *s, bool ok)
{
	struct dmk_merge *m = s->merge;
	u64 i;

	if (!ok) {
		merge_fail(m, "Write error in exception store: shutting down merge");
		return;
	}
	/* remove_single_exception_chunk: the merged chunks read from the origin from now on. */
	for (i = 0; i < m->num_merging_chunks; i++)
		dmk_exception_delete(s->complete, m->first_merging_chunk + i);
	m->num_merging_chunks = 0;
	merge_release_queued(m, false);
	merge_next_chunks(m);
}

static void merge_free_buffer(struct dmk_merge *m)
{
	dmk_buf_free_locked(m->buf);
	m->buf = NULL;
}

/* The DMERR line for a failed merge step. */
static const char *merge_step_failure(long cookie)
{
	if (cookie == MERGE_READ)
		return "Read error: shutting down merge.";
	if (cookie == MERGE_WRITE)
		return "Write error: shutting down merge.";
	return "Flush after merge failed: shutting down merge";
}

static void merge_job_io_done(struct dmk_waiter *w, struct dmk_io *io, int status)
{
	struct dmk_merge *m = container_of(w, struct dmk_merge, waiter);
	struct dmk_snapshot *s = m->snap;

	if (io->cookie == MERGE_READ)
		m->buf = io->buf;
	if (status || !m->merging) {
		merge_free_buffer(m);
		if (m->merging)
			merge_fail(m, merge_step_failure(io->cookie));
		return;
	}
	if (io->cookie == MERGE_READ) {
		dmk_submit_internal(&m->io, &m->waiter, s->origin, DMK_OP_WRITE, 0,
				    m->old_chunk << dmk_snapshot_chunk_shift(s), io->count, m->buf,
				    MERGE_WRITE);
	} else if (io->cookie == MERGE_WRITE) {
		merge_free_buffer(m);
		dmk_submit_internal(&m->io, &m->waiter, s->origin, DMK_OP_FLUSH, 0, 0, 0, NULL,
				    MERGE_FLUSH);
	} else {
		s->store->type->commit_merge(s->store, m->count);
	}
}

/* ---- the target */

static int merge_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dmk_snapshot *s;
	struct dmk_merge *m;
	unsigned long flags;
	int r;

	r = dmk_snapshot_ctr(ti, argc, argv, true);
	if (r)
		return r;
	s = ti->private;
	if (!s->store->type->can_merge) {
		dmk_snapshot_dtr(ti);
		ti->error = "snapshot exception store does not support snapshot-merge (use P)";
		return -EINVAL;
	}
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m) {
		dmk_snapshot_dtr(ti);
		ti->error = "cannot allocate merge context";
		return -ENOMEM;
	}
	m->snap = s;
	bio_list_init(&m->queued_during_merge);
	m->waiter.io_done = merge_job_io_done;
	INIT_LIST_HEAD(&m->io.list);
	INIT_LIST_HEAD(&m->exw.node);
	m->exw.retry = merge_job_exceptions_done;
	INIT_LIST_HEAD(&m->starved.list);
	m->starved.needed = merge_job_starved_needs;
	m->starved.retry = merge_job_starved_retry;
	spin_lock_irqsave(&dmk_lock, flags);
	s->merge = m;
	spin_unlock_irqrestore(&dmk_lock, flags);
	ti->num_flush_bios = 2;
	return 0;
}

static bool merge_idle(void *arg)
{
	struct dmk_merge *m = arg;

	return m->waiter.inflight == 0;
}

static void merge_dtr(struct dm_target *ti)
{
	struct dmk_snapshot *s = ti->private;
	struct dmk_merge *m = s->merge;
	unsigned long flags;

	spin_lock_irqsave(&dmk_lock, flags);
	m->merging = false;
	dmk_stop_waiting_for_exceptions(&m->exw);
	list_del_init(&m->starved.list);
	spin_unlock_irqrestore(&dmk_lock, flags);
	dmk_wait_idle(merge_idle, m);
	dmk_buf_free(m->buf);
	dmk_snapshot_dtr(ti);
	kfree(m);
}

static bool merge_stopped(void *arg)
{
	struct dmk_merge *m = arg;

	return !m->merging && m->waiter.inflight == 0;
}

/* snapshot_merge_presuspend -> stop_merge: the step in flight finishes, no other starts. */
static void merge_presuspend(struct dm_target *ti)
{
	struct dmk_snapshot *s = ti->private;
	struct dmk_merge *m = s->merge;
	unsigned long flags;

	spin_lock_irqsave(&dmk_lock, flags);
	if (m->merging)
		m->stopping = true;
	spin_unlock_irqrestore(&dmk_lock, flags);
	dmk_wait_idle(merge_stopped, m);
}

static void merge_resume(struct dm_target *ti)
{
	struct dmk_snapshot *s = ti->private;
	unsigned long flags;

	dmk_snapshot_resume(ti);
	spin_lock_irqsave(&dmk_lock, flags);
	/* snapshot-merge acts as an origin: writes never span a chunk of any snapshot. */
	ti->max_io_len = dmk_minimum_chunk_size(s->origin->bdev);
	merge_start(s->merge);
	spin_unlock_irqrestore(&dmk_lock, flags);
}

static int merge_map_locked(struct dmk_snapshot *s, struct bio *bio)
{
	struct dmk_merge *m = s->merge;
	bool is_write = bio_op(bio) != REQ_OP_READ;
	u64 chunk;
	s64 e;

	if (bio->bi_opf & REQ_PREFLUSH) {
		bio_set_dev(bio, dm_bio_get_target_bio_nr(bio) == 0 ? s->origin->bdev :
								       s->cow->bdev);
		return DMK_MAP_REMAPPED;
	}
	if (bio_op(bio) == REQ_OP_DISCARD)
		return DMK_MAP_SUBMITTED;	/* once merging, discards change nothing */
	chunk = bio->bi_iter.bi_sector >> dmk_snapshot_chunk_shift(s);
	if (s->valid) {
		e = dmk_exception_get(s->complete, chunk);
		if (e >= 0) {
			if (is_write && chunk >= m->first_merging_chunk &&
			    chunk < m->first_merging_chunk + m->num_merging_chunks) {
				bio_set_dev(bio, s->origin->bdev);
				bio_list_add(&m->queued_during_merge, bio);
				return DMK_MAP_DEFERRED;
			}
			dmk_snapshot_remap(s, bio, e);
			if (is_write)
				dmk_snapshot_track(s, chunk, bio);
			return DMK_MAP_REMAPPED;
		}
	}
	bio_set_dev(bio, s->origin->bdev);
	if (is_write)
		return dmk_origin_write(s->origin->bdev, bio, bio->bi_iter.bi_sector,
					bio_sectors(bio));
	return DMK_MAP_REMAPPED;
}

static int merge_map(struct dm_target *ti, struct bio *bio)
{
	struct dmk_snapshot *s = ti->private;
	unsigned long flags;
	int r;

	dmk_bio_info_init(dmk_bio_info(bio), ti, bio);
	spin_lock_irqsave(&dmk_lock, flags);
	/* A write outside the exceptions is an origin write: its copies are allocated here. */
	while ((r = merge_map_locked(s, bio)) == DMK_MAP_NEED_MEMORY)
		dmk_pending_alloc_in_map(dmk_origin_write_needs(s->origin->bdev,
								bio->bi_iter.bi_sector,
								bio_sectors(bio)), &flags);
	spin_unlock_irqrestore(&dmk_lock, flags);
	return dmk_map_result(bio, r);
}

struct target_type dmk_merge_target = {
	.name = "dmkit-merge",	/* "dmkit-snapshot-merge" passes DM_MAX_TYPE_NAME (16) */
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = merge_ctr,
	.dtr = merge_dtr,
	.map = merge_map,
	.end_io = dmk_snapshot_end_io,
	.presuspend = merge_presuspend,
	.preresume = dmk_snapshot_preresume,
	.resume = merge_resume,
	.status = dmk_snapshot_status,
	.iterate_devices = dmk_snapshot_iterate_devices,
	.io_hints = dmk_snapshot_io_hints,
};
