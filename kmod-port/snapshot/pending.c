// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Pending exceptions (core-as/snapshot/pending.ts, the kernel's
 * dm_snap_pending_exception): one origin chunk being copied to its new COW
 * chunk. The copy reads the origin chunk into a buffer and writes it to the
 * COW device (the job kcopyd does for dm-snap); a snapshot write covering the
 * whole chunk is written in place of the copy.
 *
 * They are taken from a reserve under dmk_lock; only the engine's worker
 * allocates, outside the lock (see io.c). Each carries the entry it will
 * become in the complete table, so committing allocates nothing either.
 */
#include "pending.h"
#include "snapshot.h"

#define STEP_COPY_READ	1
#define STEP_COPY_WRITE	2
#define STEP_FULL_WRITE	3

static LIST_HEAD(dmk_reserve);
static unsigned int dmk_reserve_n;

static void dmk_pending_io_done(struct dmk_waiter *w, struct dmk_io *io, int status);

unsigned int dmk_pending_reserve_count(void)
{
	return dmk_reserve_n;
}

/* Process context: grows the reserve to n entries (small allocations that do not fail). */
void dmk_pending_reserve_fill(unsigned int n)
{
	unsigned int have, added = 0;
	struct dmk_pending *pe;
	unsigned long flags;
	LIST_HEAD(fresh);

	spin_lock_irqsave(&dmk_lock, flags);
	have = dmk_reserve_n;
	spin_unlock_irqrestore(&dmk_lock, flags);
	while (have + added < n) {
		pe = kzalloc(sizeof(*pe), GFP_NOIO | __GFP_NOFAIL);
		pe->e = kzalloc(sizeof(*pe->e), GFP_NOIO | __GFP_NOFAIL);
		list_add_tail(&pe->list, &fresh);
		added++;
	}
	spin_lock_irqsave(&dmk_lock, flags);
	list_splice_tail(&fresh, &dmk_reserve);
	dmk_reserve_n += added;
	spin_unlock_irqrestore(&dmk_lock, flags);
}

void dmk_pending_reserve_drain(void)
{
	struct dmk_pending *pe, *tmp;

	list_for_each_entry_safe(pe, tmp, &dmk_reserve, list) {
		list_del(&pe->list);
		kfree(pe->e);
		kfree(pe);
	}
	dmk_reserve_n = 0;
}

/* new PendingException: from the reserve, or NULL when it is empty. */
struct dmk_pending *dmk_pending_take(struct dmk_snapshot *s, u64 old_chunk)
{
	struct dmk_exception *e;
	struct dmk_pending *pe;

	if (list_empty(&dmk_reserve))
		return NULL;
	pe = list_first_entry(&dmk_reserve, struct dmk_pending, list);
	list_del(&pe->list);
	dmk_reserve_n--;
	e = pe->e;
	memset(pe, 0, sizeof(*pe));
	pe->e = e;
	INIT_LIST_HEAD(&pe->list);
	INIT_HLIST_NODE(&pe->node);
	bio_list_init(&pe->snapshot_bios);
	bio_list_init(&pe->origin_bios);
	pe->waiter.io_done = dmk_pending_io_done;
	pe->snap = s;
	pe->old_chunk = old_chunk;
	return pe;
}

/* Under dmk_lock: back to the reserve while it is short, else freed. */
void dmk_pending_put(struct dmk_pending *pe)
{
	if (pe->e && dmk_reserve_n < dmk_reserve_low) {
		list_add_tail(&pe->list, &dmk_reserve);
		dmk_reserve_n++;
		return;
	}
	kfree(pe->e);
	kfree(pe);
}

/* start_copy: origin chunk -> buffer -> COW chunk, shortened at the end of the origin. */
void dmk_pending_start_copy(struct dmk_pending *pe)
{
	struct dmk_snapshot *s = pe->snap;
	u64 chunk_size = dmk_snapshot_chunk_size(s);
	sector_t src = pe->old_chunk << dmk_snapshot_chunk_shift(s);
	sector_t origin_size = bdev_nr_sectors(s->origin->bdev);
	unsigned int count = src + chunk_size <= origin_size ? chunk_size : origin_size - src;

	dmk_snapshot_copy_started(s);
	/* buf NULL: the engine allocates the chunk buffer when it issues the read */
	dmk_submit_internal(&pe->io, &pe->waiter, s->origin, DMK_OP_READ, 0, src, count, NULL,
			    STEP_COPY_READ);
}

/* start_full_bio: the whole-chunk write goes straight to the new chunk and counts as the copy. */
void dmk_pending_start_full_write(struct dmk_pending *pe, struct bio *bio)
{
	unsigned int fua = (bio->bi_opf & REQ_FUA) ? DMK_FUA : 0;

	dmk_snapshot_copy_started(pe->snap);
	dmk_submit_internal_bio(&pe->io, &pe->waiter, pe->snap->cow, DMK_OP_WRITE, fua,
				bio->bi_iter.bi_sector, bio, 0, bio_sectors(bio), STEP_FULL_WRITE);
	pe->full_bio = bio;
}

static void dmk_pending_io_done(struct dmk_waiter *w, struct dmk_io *io, int status)
{
	struct dmk_pending *pe = container_of(w, struct dmk_pending, waiter);
	struct dmk_snapshot *s = pe->snap;

	if (io->cookie == STEP_COPY_READ)
		pe->buf = io->buf;
	if (io->cookie == STEP_COPY_READ && status == 0) {
		sector_t dest = pe->new_chunk << dmk_snapshot_chunk_shift(s);

		dmk_submit_internal(&pe->io, &pe->waiter, s->cow, DMK_OP_WRITE, 0, dest, io->count,
				    pe->buf, STEP_COPY_WRITE);
		return;
	}
	dmk_pending_free_buffer(pe);
	dmk_snapshot_copy_done(s, pe, status != 0);
}

void dmk_pending_free_buffer(struct dmk_pending *pe)
{
	dmk_buf_free_locked(pe->buf);
	pe->buf = NULL;
}
