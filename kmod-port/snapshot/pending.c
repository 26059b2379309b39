// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Pending exceptions (core-as/snapshot/pending.ts, the kernel's
 * dm_snap_pending_exception): one origin chunk being copied to its new COW
 * chunk. The copy reads the origin chunk into a buffer and writes it to the
 * COW device (the job kcopyd does for dm-snap); a snapshot write covering the
 * whole chunk is written in place of the copy.
 *
 * They come from a mempool, as dm-snap's pending_pool, and are allocated in
 * the mapping call, as dm-snap's alloc_pending_exception is, so every piece
 * of a request has its pending exception (and its COW chunk) when map
 * returns, before any copy of the request can complete. Under dmk_lock the
 * allocation is atomic (GFP_NOWAIT: the allocator without reclaim, then the
 * pool's held-back elements), so map does not sleep or yield for it. Only
 * when that fails does whoever runs the snapshot logic give up with nothing
 * changed: map drops the lock, allocates into the reserve where it may
 * sleep (dmk_pending_alloc_in_map) and runs its logic again; the worker
 * does the same for its own work (the starved list, see io.c). Each carries
 * the entry it will become in the complete table, so committing allocates
 * nothing.
 */
#include "pending.h"
#include "snapshot.h"

#define STEP_COPY_READ	1
#define STEP_COPY_WRITE	2
#define STEP_FULL_WRITE	3

/* Elements the pool holds back for when the allocator fails (dm-snap's MIN_IOS). */
#define DMK_PENDING_POOL_MIN	256

static mempool_t *dmk_pending_pool;
/* Allocated by who could sleep, for work that found atomic allocation short; and put back ones. */
static LIST_HEAD(dmk_reserve);
static unsigned int dmk_reserve_n;

static void dmk_pending_io_done(struct dmk_waiter *w, struct dmk_io *io, int status);

unsigned int dmk_pending_reserve_count(void)
{
	return dmk_reserve_n;
}

int dmk_pending_pool_create(void)
{
	dmk_pending_pool = mempool_create_kmalloc_pool(DMK_PENDING_POOL_MIN,
						       sizeof(struct dmk_pending));
	return dmk_pending_pool ? 0 : -ENOMEM;
}

static void dmk_pending_free(struct dmk_pending *pe)
{
	kfree(pe->e);
	mempool_free(pe, dmk_pending_pool);
}

/* After the engine stopped: the reserve back to the pool, then the pool. */
void dmk_pending_pool_destroy(void)
{
	struct dmk_pending *pe, *tmp;

	list_for_each_entry_safe(pe, tmp, &dmk_reserve, list) {
		list_del(&pe->list);
		dmk_pending_free(pe);
	}
	dmk_reserve_n = 0;
	mempool_destroy(dmk_pending_pool);
}

/*
 * A pending exception and its complete-table entry. Atomic (under dmk_lock):
 * NULL when memory is short. GFP_NOIO (process context, may sleep): never
 * NULL, mempool_alloc waits for an element to come back.
 */
static struct dmk_pending *dmk_pending_alloc(bool atomic)
{
	gfp_t gfp = atomic ? GFP_NOWAIT | __GFP_NOWARN : GFP_NOIO;
	struct dmk_pending *pe = mempool_alloc(dmk_pending_pool, gfp);

	if (!pe)
		return NULL;
	pe->e = kzalloc(sizeof(*pe->e), atomic ? gfp : gfp | __GFP_NOFAIL);
	if (!pe->e) {
		mempool_free(pe, dmk_pending_pool);
		return NULL;
	}
	return pe;
}

static void dmk_reserve_add(struct dmk_pending *pe)
{
	list_add_tail(&pe->list, &dmk_reserve);
	dmk_reserve_n++;
}

/* Under dmk_lock: the reserve grown to n without sleeping; false if memory is short. */
bool dmk_pending_reserve_ensure(unsigned int n)
{
	struct dmk_pending *pe;

	while (dmk_reserve_n < n) {
		pe = dmk_pending_alloc(true);
		if (!pe)
			return false;
		dmk_reserve_add(pe);
	}
	return true;
}

/* Process context, may sleep: grows the reserve to n entries. */
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
		pe = dmk_pending_alloc(false);
		list_add_tail(&pe->list, &fresh);
		added++;
	}
	spin_lock_irqsave(&dmk_lock, flags);
	list_splice_tail(&fresh, &dmk_reserve);
	dmk_reserve_n += added;
	spin_unlock_irqrestore(&dmk_lock, flags);
}

/*
 * map found memory short (DMK_MAP_NEED_MEMORY: nothing was changed). As
 * dm-snap's map may, drop the lock and allocate where it may sleep (map
 * runs in process context), then take the lock again; map then runs its
 * logic again on whatever changed meanwhile. need is what the logic asked
 * for; the reserve grows by at least one, so map gets there.
 */
void dmk_pending_alloc_in_map(unsigned int need, unsigned long *flags)
{
	unsigned int want = max(need, dmk_reserve_n + 1);

	spin_unlock_irqrestore(&dmk_lock, *flags);
	dmk_pending_reserve_fill(want);
	spin_lock_irqsave(&dmk_lock, *flags);
}

/* new PendingException: from the reserve, else allocated at once; NULL when memory is short. */
struct dmk_pending *dmk_pending_take(struct dmk_snapshot *s, u64 old_chunk)
{
	struct dmk_exception *e;
	struct dmk_pending *pe;

	if (!dmk_pending_reserve_ensure(1))
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

/* Under dmk_lock: kept for reuse while the reserve is below dmk_reserve_low, else freed. */
void dmk_pending_put(struct dmk_pending *pe)
{
	if (pe->e && dmk_reserve_n < dmk_reserve_low) {
		dmk_reserve_add(pe);
		return;
	}
	dmk_pending_free(pe);
}

/*
 * start_copy: origin chunk -> buffer -> COW chunk, shortened at the end of
 * the origin. A chunk past the end (a snapshot placed after another segment
 * maps by device sector, as Linux's does) is read whole, as dm-snap's
 * start_copy does, and the block layer fails the read with EIO.
 */
void dmk_pending_start_copy(struct dmk_pending *pe)
{
	struct dmk_snapshot *s = pe->snap;
	u64 chunk_size = dmk_snapshot_chunk_size(s);
	sector_t src = pe->old_chunk << dmk_snapshot_chunk_shift(s);
	sector_t origin_size = bdev_nr_sectors(s->origin->bdev);
	unsigned int count = src <= origin_size ? min_t(u64, chunk_size, origin_size - src) :
			     chunk_size;

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
