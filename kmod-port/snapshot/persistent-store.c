// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The persistent exception store (P, PO): Linux's dm-snap-persistent.c
 * on-disk format, byte for byte (core-as/snapshot/persistent-store.ts), so a
 * COW device written here activates under the kernel's dm-snapshot and the
 * other way round.
 *
 * Layout (all integers little-endian, chunk = chunk_size sectors):
 *   chunk 0          header: u32 magic 0x70416e53 ("SnAp"), u32 valid,
 *                    u32 version (1), u32 chunk_size; the rest is zero
 *   chunk 1          metadata area 0: exceptions_per_area = chunk_bytes / 16
 *                    entries of {u64 old_chunk, u64 new_chunk}; the table
 *                    ends at the first new_chunk == 0
 *   chunks 2 .. epa+1      data chunks of area 0
 *   chunk 1 + (epa+1) * i  metadata area i, followed by its epa data chunks
 * Allocation starts at chunk 2 and steps over metadata chunks (skip_metadata).
 *
 * When things reach the disk, as in the kernel:
 *   - a new COW device (first sector zero): the header is written, then
 *     area 0 is zeroed; loading is synchronous, in ctr, as in the kernel;
 *   - a finished copy is added to the in-memory area; the area is written
 *     (flush, then write with FUA) when no other copy is in flight or the
 *     area just became full. A full area first gets the next area zeroed on
 *     disk. Only after that write do the waiting writes go on;
 *   - any I/O error makes the store invalid; invalidation writes the header
 *     with valid = 0.
 * The kernel writes areas synchronously; here they are internal I/O (the
 * map path must not sleep), and commits that arrive meanwhile queue up and
 * are applied in order once the write finished.
 */
#include "store.h"
#include "snapshot.h"
#include "pending.h"
#include "chunks.h"
#include "merge.h"
#include "devref.h"

#define SNAP_MAGIC		0x70416e53
#define DISK_VERSION		1
#define HEADER_CHUNKS		1
#define DEFAULT_CHUNK_SECTORS	32
#define EXCEPTION_BYTES		16

/* Steps of the internal I/O this store issues (the cookie of each I/O). */
#define ZERO_NEXT_AREA		5
#define FLUSH_BEFORE_AREA	6
#define WRITE_AREA		7
#define WRITE_INVALID_HEADER	8
#define READ_MERGE_AREA		9
#define FLUSH_BEFORE_MERGE_AREA	10
#define WRITE_MERGE_AREA	11

struct pstore {
	struct dmk_store base;
	struct dmk_waiter waiter;
	bool valid;
	u32 version;
	u64 exceptions_per_area;
	u64 current_area;
	u64 next_free;
	u64 current_committed;
	int pending_count;
	/* Pending exceptions committed to the in-memory area, told when it reaches the disk. */
	struct list_head callbacks;
	/* An area write is in flight; later commits wait in the queue. */
	bool writing;
	struct list_head queue;
	/* One chunk each: the current area, zeroes, the header. */
	void *area;
	void *zero_area;
	void *header_area;
	u64 merge_count;
	struct dmk_io area_io;
	struct dmk_io merge_io;
	struct dmk_io header_io;
};

static inline struct pstore *to_pstore(struct dmk_store *st)
{
	return container_of(st, struct pstore, base);
}

static void ps_io_done(struct dmk_waiter *w, struct dmk_io *io, int status);

static struct dm_dev *ps_cow(struct pstore *ps)
{
	return dmk_store_cow(&ps->base);
}

static size_t ps_chunk_bytes(struct pstore *ps)
{
	return (size_t)ps->base.chunk_size << SECTOR_SHIFT;
}

static void ps_free_areas(struct pstore *ps)
{
	kvfree(ps->area);
	kvfree(ps->zero_area);
	kvfree(ps->header_area);
	ps->area = NULL;
	ps->zero_area = NULL;
	ps->header_area = NULL;
}

static int ps_alloc_areas(struct pstore *ps)
{
	size_t bytes = ps_chunk_bytes(ps);

	ps_free_areas(ps);
	ps->area = kvzalloc(bytes, GFP_KERNEL);
	ps->zero_area = kvzalloc(bytes, GFP_KERNEL);
	ps->header_area = kvzalloc(bytes, GFP_KERNEL);
	if (!ps->area || !ps->zero_area || !ps->header_area) {
		ps_free_areas(ps);
		return -ENOMEM;
	}
	ps->exceptions_per_area = bytes / EXCEPTION_BYTES;
	return 0;
}

static u64 ps_area_location(struct pstore *ps, u64 area)
{
	return HEADER_CHUNKS + (ps->exceptions_per_area + 1) * area;
}

static sector_t ps_chunk_sector(struct pstore *ps, u64 chunk)
{
	return chunk << ps->base.chunk_shift;
}

static u64 ps_old_chunk_at(struct pstore *ps, u64 i)
{
	return le64_to_cpu(((__le64 *)ps->area)[2 * i]);
}

static u64 ps_new_chunk_at(struct pstore *ps, u64 i)
{
	return le64_to_cpu(((__le64 *)ps->area)[2 * i + 1]);
}

static void ps_set_entry(struct pstore *ps, u64 i, u64 old_chunk, u64 new_chunk)
{
	((__le64 *)ps->area)[2 * i] = cpu_to_le64(old_chunk);
	((__le64 *)ps->area)[2 * i + 1] = cpu_to_le64(new_chunk);
}

static void ps_skip_metadata(struct pstore *ps)
{
	u64 stride = ps->exceptions_per_area + 1;

	if (ps->next_free % stride == HEADER_CHUNKS)
		ps->next_free++;
}

static void ps_fill_header(struct pstore *ps)
{
	__le32 *h = ps->header_area;

	memset(h, 0, ps_chunk_bytes(ps));
	h[0] = cpu_to_le32(SNAP_MAGIC);
	h[1] = cpu_to_le32(ps->valid ? 1 : 0);
	h[2] = cpu_to_le32(ps->version);
	h[3] = cpu_to_le32((u32)ps->base.chunk_size);
}

/* ---- loading (ctr, may sleep) */

/* badNewChunk: true, with why, when an exception's COW chunk cannot be one. */
static bool ps_bad_new_chunk(struct pstore *ps, u64 chunk, char *why, size_t len)
{
	u64 chunks = dmk_dev_sectors(ps_cow(ps)) >> ps->base.chunk_shift;

	if (chunk >= chunks) {
		snprintf(why, len,
			 "COW chunk %llu lies past the end of the COW device (%llu chunks)",
			 chunk, chunks);
		return true;
	}
	if (chunk % (ps->exceptions_per_area + 1) == HEADER_CHUNKS) {
		snprintf(why, len, "COW chunk %llu is a metadata area", chunk);
		return true;
	}
	return false;
}

/* readArea + areaRead (insert_exceptions): one area's entries; true when the table ended. */
static int ps_read_area(struct pstore *ps, bool *ended, char *error, size_t len)
{
	char bad[96];
	u64 chunk = ps_area_location(ps, ps->current_area);
	u64 i, old_chunk, new_chunk;
	int r;

	*ended = false;
	if (ps_chunk_sector(ps, chunk) + ps->base.chunk_size > dmk_dev_sectors(ps_cow(ps))) {
		snprintf(error, len, "metadata area %llu lies past the end of the COW device",
			 ps->current_area);
		return -EINVAL;
	}
	r = dmk_sync_io(ps_cow(ps), DMK_OP_READ, 0, ps_chunk_sector(ps, chunk),
			ps->base.chunk_size, ps->area);
	if (r) {
		snprintf(error, len, "I/O error reading metadata area %llu", ps->current_area);
		return -EIO;
	}
	for (i = 0; i < ps->exceptions_per_area; i++) {
		old_chunk = ps_old_chunk_at(ps, i);
		new_chunk = ps_new_chunk_at(ps, i);
		if (new_chunk == 0) {
			ps->current_committed = i;
			ps_skip_metadata(ps);
			*ended = true;
			return 0;
		}
		/*
		 * A corrupt entry would send I/O past the end of the COW device or
		 * over its metadata: the device is refused (the kernel's dm-snap
		 * loads it and fails that I/O later).
		 */
		if (ps_bad_new_chunk(ps, new_chunk, bad, sizeof(bad))) {
			snprintf(error, len,
				 "invalid or corrupt snapshot: metadata area %llu, exception %llu: %s",
				 ps->current_area, i, bad);
			return -ENXIO;	/* the core's errno for a corrupt COW device */
		}
		if (ps->next_free <= new_chunk)
			ps->next_free = new_chunk + 1;
		if (dmk_snapshot_add_exception(ps->base.snap, old_chunk, new_chunk)) {
			snprintf(error, len, "out of memory for the exception table");
			return -ENOMEM;
		}
	}
	ps->current_area++;
	return 0;
}

/* A new snapshot: header first, then an empty first area. */
static int ps_create_new(struct pstore *ps, char *error, size_t len)
{
	ps->valid = true;
	ps_fill_header(ps);
	if (dmk_sync_io(ps_cow(ps), DMK_OP_WRITE, 0, 0, ps->base.chunk_size,
			ps->header_area)) {
		snprintf(error, len, "I/O error writing the COW header");
		return -EIO;
	}
	ps->current_area = 0;
	if (dmk_sync_io(ps_cow(ps), DMK_OP_WRITE, 0,
			ps_chunk_sector(ps, ps_area_location(ps, 0)), ps->base.chunk_size,
			ps->zero_area)) {
		snprintf(error, len, "I/O error zeroing the first metadata area");
		return -EIO;
	}
	return 0;
}

/* readMetadata + headerRead */
static int ps_read_metadata(struct dmk_store *st, char *error, size_t len, bool *valid)
{
	struct pstore *ps = to_pstore(st);
	char bad[64];
	bool ended = false;
	u32 magic;
	u64 disk_chunk;
	__le32 *h;
	int r;

	if (st->chunk_size == 0)
		dmk_store_set_chunk_size(st, DEFAULT_CHUNK_SECTORS);
	r = ps_alloc_areas(ps);
	if (r) {
		snprintf(error, len, "out of memory for the metadata areas");
		return r;
	}
	if (dmk_sync_io(dmk_store_cow(st), DMK_OP_READ, 0, 0, 1, ps->header_area)) {
		snprintf(error, len, "I/O error reading the COW header");
		return -EIO;
	}
	h = ps->header_area;
	magic = le32_to_cpu(h[0]);
	if (magic == 0) {
		*valid = true;
		return ps_create_new(ps, error, len);
	}
	if (magic != SNAP_MAGIC) {
		snprintf(error, len, "invalid or corrupt snapshot: bad magic 0x%x in the %s", magic,
			 "COW header");
		return -ENXIO;	/* as read_header */
	}
	ps->valid = le32_to_cpu(h[1]) != 0;
	ps->version = le32_to_cpu(h[2]);
	disk_chunk = le32_to_cpu(h[3]);
	*valid = ps->valid;
	if (ps->version != DISK_VERSION) {
		snprintf(error, len, "unable to handle snapshot disk version %u", ps->version);
		return -EINVAL;
	}
	if (disk_chunk != st->chunk_size) {
		if (dmk_chunk_size_error(disk_chunk, bad, sizeof(bad))) {
			snprintf(error, len, "invalid on-disk chunk size %llu: %s", disk_chunk,
				 bad);
			return -EINVAL;
		}
		/* The header's chunk size wins over the table's (the kernel warns). */
		dmk_store_set_chunk_size(st, disk_chunk);
		r = ps_alloc_areas(ps);
		if (r) {
			snprintf(error, len, "out of memory for the metadata areas");
			return r;
		}
	}
	if (!ps->valid)
		return 0;
	ps->current_area = 0;
	while (!ended) {
		r = ps_read_area(ps, &ended, error, len);
		if (r)
			return r;
	}
	return 0;
}

/* ---- exceptions (under dmk_lock) */

static bool ps_prepare_exception(struct dmk_store *st, struct dmk_pending *pe)
{
	struct pstore *ps = to_pstore(st);
	sector_t size = bdev_nr_sectors(dmk_store_cow(st)->bdev);

	if (size < (ps->next_free + 1) * st->chunk_size)
		return false;
	pe->new_chunk = ps->next_free;
	ps->next_free++;
	ps_skip_metadata(ps);
	ps->pending_count++;
	return true;
}

static void ps_zero_disk_area(struct pstore *ps, u64 area, long step)
{
	dmk_submit_internal(&ps->area_io, &ps->waiter, ps_cow(ps), DMK_OP_WRITE, 0,
			    ps_chunk_sector(ps, ps_area_location(ps, area)), ps->base.chunk_size,
			    ps->zero_area, step);
}

static void ps_area_written(struct pstore *ps);

/* area_io with PREFLUSH | FUA: the copied data is stable before the area points at it. */
static void ps_write_area(struct pstore *ps)
{
	if (!ps->valid) {
		ps_area_written(ps);
		return;
	}
	dmk_submit_internal(&ps->area_io, &ps->waiter, ps_cow(ps), DMK_OP_FLUSH, 0, 0, 0,
			    NULL, FLUSH_BEFORE_AREA);
}

static void ps_commit_now(struct pstore *ps, struct dmk_pending *pe, bool valid)
{
	if (!valid)
		ps->valid = false;
	ps_set_entry(ps, ps->current_committed, pe->old_chunk, pe->new_chunk);
	ps->current_committed++;
	list_add_tail(&pe->list, &ps->callbacks);
	ps->pending_count--;
	/* With copies still in flight and room left in the area, the write waits for them. */
	if (ps->pending_count != 0 && ps->current_committed != ps->exceptions_per_area)
		return;
	ps->writing = true;
	if (ps->current_committed == ps->exceptions_per_area)
		ps_zero_disk_area(ps, ps->current_area + 1, ZERO_NEXT_AREA);
	else
		ps_write_area(ps);
}

static void ps_commit_exception(struct dmk_store *st, struct dmk_pending *pe, bool valid)
{
	struct pstore *ps = to_pstore(st);

	if (ps->writing) {
		pe->commit_valid = valid;
		list_add_tail(&pe->list, &ps->queue);
		return;
	}
	ps_commit_now(ps, pe, valid);
}

static void ps_area_written(struct pstore *ps)
{
	struct dmk_pending *pe;
	LIST_HEAD(done);

	if (ps->current_committed == ps->exceptions_per_area) {
		ps->current_committed = 0;
		ps->current_area++;
		memset(ps->area, 0, ps_chunk_bytes(ps));
	}
	list_splice_init(&ps->callbacks, &done);
	ps->writing = false;
	while (!list_empty(&done)) {
		pe = list_first_entry(&done, struct dmk_pending, list);
		list_del_init(&pe->list);
		dmk_snapshot_pending_complete(ps->base.snap, pe, ps->valid);
	}
	while (!ps->writing && !list_empty(&ps->queue)) {
		pe = list_first_entry(&ps->queue, struct dmk_pending, list);
		list_del_init(&pe->list);
		ps_commit_now(ps, pe, pe->commit_valid);
	}
}

/* ---- merging: walks the table backwards, from the last committed exception */

/*
 * persistent_prepare_merge: finds the run of consecutive exceptions ending at
 * the last one committed; ends with dmk_merge_prepared(run length, last old
 * chunk, last new chunk), where a run of 0 means nothing is left and -1 a
 * read error.
 */
static void ps_find_merge_run(struct pstore *ps)
{
	u64 last = ps->current_committed - 1;
	u64 last_old = ps_old_chunk_at(ps, last);
	u64 last_new = ps_new_chunk_at(ps, last);
	u64 n;

	for (n = 1; n < ps->current_committed; n++) {
		if (ps_old_chunk_at(ps, last - n) != last_old - n ||
		    ps_new_chunk_at(ps, last - n) != last_new - n)
			break;
	}
	dmk_merge_prepared(ps->base.snap, (s64)n, last_old, last_new);
}

static void ps_prepare_merge(struct dmk_store *st)
{
	struct pstore *ps = to_pstore(st);
	u64 chunk;

	if (ps->current_committed == 0) {
		if (ps->current_area == 0) {
			dmk_merge_prepared(st->snap, 0, 0, 0);
			return;
		}
		/* The current area is empty: move back to the previous one. */
		ps->current_area--;
		chunk = ps_area_location(ps, ps->current_area);
		dmk_submit_internal(&ps->merge_io, &ps->waiter, dmk_store_cow(st), DMK_OP_READ, 0,
				    ps_chunk_sector(ps, chunk), st->chunk_size, ps->area,
				    READ_MERGE_AREA);
		return;
	}
	ps_find_merge_run(ps);
}

/* persistent_commit_merge: clears the merged entries and writes the area (flush + FUA). */
static void ps_commit_merge(struct dmk_store *st, u64 n)
{
	struct pstore *ps = to_pstore(st);
	u64 i;

	for (i = 0; i < n; i++)
		ps_set_entry(ps, ps->current_committed - 1 - i, 0, 0);
	ps->merge_count = n;
	dmk_submit_internal(&ps->merge_io, &ps->waiter, dmk_store_cow(st), DMK_OP_FLUSH, 0, 0,
			    0, NULL, FLUSH_BEFORE_MERGE_AREA);
}

static void ps_merge_area_written(struct pstore *ps, bool ok)
{
	if (ok) {
		ps->current_committed -= ps->merge_count;
		/* The next_free it would have, had every exception been committed in order. */
		ps->next_free = ps_area_location(ps, ps->current_area) + ps->current_committed + 1;
	}
	dmk_merge_committed(ps->base.snap, ok);
}

static void ps_drop_snapshot(struct dmk_store *st)
{
	struct pstore *ps = to_pstore(st);

	ps->valid = false;
	/* One header write at a time: a second invalidation has nothing new to say. */
	if (!ps->header_area || !list_empty(&ps->header_io.list) || ps->header_io.waiter)
		return;
	ps_fill_header(ps);
	dmk_submit_internal(&ps->header_io, &ps->waiter, dmk_store_cow(st), DMK_OP_WRITE, 0, 0,
			    st->chunk_size, ps->header_area, WRITE_INVALID_HEADER);
}

static void ps_usage(struct dmk_store *st)
{
	struct pstore *ps = to_pstore(st);

	st->sectors_allocated = ps->next_free * st->chunk_size;
	st->total_sectors = bdev_nr_sectors(dmk_store_cow(st)->bdev);
	st->metadata_sectors = (ps->current_area + 1 + HEADER_CHUNKS) * st->chunk_size;
}

static unsigned int ps_status_table(struct dmk_store *st, char *result, unsigned int sz,
				    unsigned int maxlen)
{
	DMEMIT(" %s %llu", st->overflow_supported ? "PO" : "P", st->chunk_size);
	return sz;
}

static void ps_io_done(struct dmk_waiter *w, struct dmk_io *io, int status)
{
	struct pstore *ps = container_of(w, struct pstore, waiter);
	u64 chunk;

	switch (io->cookie) {
	case ZERO_NEXT_AREA:
		if (status)
			ps->valid = false;
		ps_write_area(ps);
		break;
	case FLUSH_BEFORE_AREA:
		if (status) {
			ps->valid = false;
			ps_area_written(ps);
			break;
		}
		chunk = ps_area_location(ps, ps->current_area);
		dmk_submit_internal(&ps->area_io, &ps->waiter, ps_cow(ps), DMK_OP_WRITE,
				    DMK_FUA, ps_chunk_sector(ps, chunk), ps->base.chunk_size,
				    ps->area, WRITE_AREA);
		break;
	case WRITE_AREA:
		if (status)
			ps->valid = false;
		ps_area_written(ps);
		break;
	case READ_MERGE_AREA:
		if (status) {
			dmk_merge_prepared(ps->base.snap, -1, 0, 0);
			break;
		}
		ps->current_committed = ps->exceptions_per_area;
		ps_find_merge_run(ps);
		break;
	case FLUSH_BEFORE_MERGE_AREA:
		if (status) {
			ps_merge_area_written(ps, false);
			break;
		}
		chunk = ps_area_location(ps, ps->current_area);
		dmk_submit_internal(&ps->merge_io, &ps->waiter, ps_cow(ps), DMK_OP_WRITE,
				    DMK_FUA, ps_chunk_sector(ps, chunk), ps->base.chunk_size,
				    ps->area, WRITE_MERGE_AREA);
		break;
	case WRITE_MERGE_AREA:
		ps_merge_area_written(ps, status == 0);
		break;
	default:
		/* WRITE_INVALID_HEADER: nothing more to do; the kernel only warns when it fails. */
		io->waiter = NULL;
		break;
	}
}

static bool ps_idle(struct dmk_store *st)
{
	return to_pstore(st)->waiter.inflight == 0;
}

static void ps_destroy(struct dmk_store *st)
{
	struct pstore *ps = to_pstore(st);

	ps_free_areas(ps);
	kfree(ps);
}

static const struct dmk_store_type persistent_type = {
	.read_metadata = ps_read_metadata,
	.prepare_exception = ps_prepare_exception,
	.commit_exception = ps_commit_exception,
	.drop_snapshot = ps_drop_snapshot,
	.usage = ps_usage,
	.status_table = ps_status_table,
	.can_merge = true,
	.prepare_merge = ps_prepare_merge,
	.commit_merge = ps_commit_merge,
	.idle = ps_idle,
	.destroy = ps_destroy,
};

struct dmk_store *dmk_persistent_store_create(struct dmk_snapshot *snap)
{
	struct pstore *ps = kzalloc(sizeof(*ps), GFP_KERNEL);

	if (!ps)
		return NULL;
	ps->base.type = &persistent_type;
	ps->base.snap = snap;
	ps->waiter.io_done = ps_io_done;
	ps->valid = true;
	ps->version = DISK_VERSION;
	ps->next_free = HEADER_CHUNKS + 1;
	INIT_LIST_HEAD(&ps->callbacks);
	INIT_LIST_HEAD(&ps->queue);
	INIT_LIST_HEAD(&ps->area_io.list);
	INIT_LIST_HEAD(&ps->merge_io.list);
	INIT_LIST_HEAD(&ps->header_io.list);
	return &ps->base;
}

void dmk_store_set_chunk_size(struct dmk_store *st, u64 chunk_size)
{
	st->chunk_size = chunk_size;
	st->chunk_shift = dmk_chunk_shift_of(chunk_size);
}
