// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * __origin_write / do_origin (core-as/snapshot/origin-write.ts): before a
 * write reaches an origin chunk, every active snapshot that has not copied
 * that chunk yet starts copying it, and the write waits for those copies.
 * Runs under dmk_lock.
 */
#include "origin-write.h"
#include "origins.h"
#include "snapshot.h"
#include "pending.h"

static LIST_HEAD(dmk_waiting_for_exceptions);

/* The chunks of one snapshot an origin write of [sector, sector + count) touches. */
static bool dmk_origin_chunks(struct dmk_snapshot *snap, sector_t sector, unsigned int count,
			      u64 *first, u64 *last)
{
	sector_t end_sector = count == 0 ? sector : sector + count - 1;
	sector_t size = dmk_snapshot_device_sectors(snap);
	unsigned int shift;
	u64 end_chunk;

	if (snap->merge || !snap->valid || !snap->active)
		return false;
	/* Nothing to do past the end of the snapshot. */
	if (sector >= size)
		return false;
	shift = dmk_snapshot_chunk_shift(snap);
	*first = sector >> shift;
	*last = end_sector >> shift;
	end_chunk = (size - 1) >> shift;
	if (*last > end_chunk)
		*last = end_chunk;
	return true;
}

/* How many pending exceptions dmk_origin_write would create (a bio's must not run out midway). */
unsigned int dmk_origin_write_needs(struct block_device *origin, sector_t sector,
				    unsigned int count)
{
	struct list_head *snaps = dmk_snapshots_of(origin);
	struct dmk_snapshot *snap;
	unsigned int n = 0;
	u64 chunk, first, last;

	if (!snaps)
		return 0;
	list_for_each_entry(snap, snaps, origin_node) {
		if (!dmk_origin_chunks(snap, sector, count, &first, &last))
			continue;
		for (chunk = first; chunk <= last; chunk++) {
			if (!dmk_snapshot_pending_for(snap, chunk) &&
			    !dmk_snapshot_has_exception(snap, chunk))
				n++;
		}
	}
	return n;
}

/*
 * originWrite: for a write of [sector, sector + count) to origin, returns
 * DMK_MAP_REMAPPED when no copy is needed, or DMK_MAP_DEFERRED after queueing
 * bio (if any) on a pending exception; the bio is retried through here when
 * that exception completes. DMK_MAP_NEED_MEMORY: the reserve is short;
 * with a bio nothing was done, without one what was started stays started.
 */
int dmk_origin_write(struct block_device *origin, struct bio *bio, sector_t sector,
		     unsigned int count)
{
	struct list_head *snaps = dmk_snapshots_of(origin);
	struct dmk_pending *pe, *start_last = NULL;
	struct dmk_snapshot *snap;
	int r = DMK_MAP_REMAPPED, err;
	unsigned int need;
	u64 chunk, first, last;

	if (!snaps)
		return r;
	if (bio) {
		need = dmk_origin_write_needs(origin, sector, count);
		if (!dmk_pending_reserve_ensure(need))
			return DMK_MAP_NEED_MEMORY;
	}
	/*
	 * Copy all the snapshots' chunks under the write, chunk by chunk in order,
	 * as the kernel does after splitting the write at the smallest chunk size.
	 */
	list_for_each_entry(snap, snaps, origin_node) {
		if (!dmk_origin_chunks(snap, sector, count, &first, &last))
			continue;
		for (chunk = first; chunk <= last; chunk++) {
			pe = dmk_snapshot_pending_for(snap, chunk);
			if (!pe) {
				if (dmk_snapshot_has_exception(snap, chunk))
					continue;
				err = dmk_snapshot_insert_pending(snap, chunk, &pe);
				if (err == -ENOMEM)
					return DMK_MAP_NEED_MEMORY;	/* only without a bio */
				if (err) {
					dmk_snapshot_invalidate(snap, ENOMEM);
					break;
				}
			}
			r = DMK_MAP_DEFERRED;
			if (bio) {
				bio_list_add(&pe->origin_bios, bio);
				bio = NULL;
				if (!pe->started) {
					pe->started = true;
					start_last = pe;
				}
			}
			if (!pe->started) {
				pe->started = true;
				dmk_pending_start_copy(pe);
			}
		}
	}
	/* The exception the write waits on starts last, giving the others a head start. */
	if (start_last)
		dmk_pending_start_copy(start_last);
	return r;
}

static unsigned int dmk_origin_write_starved_needs(struct dmk_starved *st)
{
	struct dmk_bio_info *info = container_of(st, struct dmk_bio_info, starved);
	struct bio *bio = info->bio;

	return dmk_origin_write_needs(bio->bi_bdev, bio->bi_iter.bi_sector, bio_sectors(bio));
}

static void dmk_origin_write_starved_retry(struct dmk_starved *st)
{
	struct dmk_bio_info *info = container_of(st, struct dmk_bio_info, starved);
	struct bio *bio = info->bio;
	int r;

	r = dmk_origin_write(bio->bi_bdev, bio, bio->bi_iter.bi_sector, bio_sectors(bio));
	if (r == DMK_MAP_NEED_MEMORY)
		dmk_defer_starved(st);
	else if (r == DMK_MAP_REMAPPED)
		dmk_resume_deferred(bio, DMK_MAP_REMAPPED);
}

/* A retried origin write waits for memory the worker allocates, then runs again. */
void dmk_origin_write_retry_later(struct bio *bio)
{
	struct dmk_starved *st = &dmk_bio_info(bio)->starved;

	st->needed = dmk_origin_write_starved_needs;
	st->retry = dmk_origin_write_starved_retry;
	dmk_defer_starved(st);
}

void dmk_wait_for_exceptions(struct dmk_exception_waiter *w)
{
	if (list_empty(&w->node))
		list_add_tail(&w->node, &dmk_waiting_for_exceptions);
}

void dmk_stop_waiting_for_exceptions(struct dmk_exception_waiter *w)
{
	list_del_init(&w->node);
}

/* exceptionDone: a pending exception of some snapshot finished; waiters look again. */
void dmk_exception_done(struct block_device *origin)
{
	struct dmk_exception_waiter *w;
	LIST_HEAD(waiting);

	list_splice_init(&dmk_waiting_for_exceptions, &waiting);
	while (!list_empty(&waiting)) {
		w = list_first_entry(&waiting, struct dmk_exception_waiter, node);
		list_del_init(&w->node);
		w->retry(w);
	}
}

/*
 * origin_write_extent: starts the copies other snapshots need before
 * [sector, sector + size) of the origin is overwritten by a merge. Returns 1
 * if some are still in flight, 0 if none, -ENOMEM if the reserve ran short
 * (what was started stays started; calling again goes on from there).
 */
int dmk_origin_write_extent(struct block_device *origin, sector_t sector, u64 size, u64 step)
{
	bool must_wait = false;
	u64 n;
	int r;

	if (step == 0)
		step = size;
	for (n = 0; n < size; n += step) {
		r = dmk_origin_write(origin, NULL, sector + n, 1);
		if (r == DMK_MAP_NEED_MEMORY)
			return -ENOMEM;
		if (r == DMK_MAP_DEFERRED)
			must_wait = true;
	}
	return must_wait;
}

unsigned int dmk_origin_write_extent_needs(struct block_device *origin, sector_t sector,
					   u64 size, u64 step)
{
	unsigned int need = 0;
	u64 n;

	if (step == 0)
		step = size;
	for (n = 0; n < size; n += step)
		need += dmk_origin_write_needs(origin, sector + n, 1);
	return need;
}
