// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-snapshot <origin> <COW device> <P|PO|N> <chunk_size>
 * [<#features> <feature>...]: the origin as it was when the snapshot was
 * taken (core-as/targets/snapshot.ts, Linux dm-snap.c). Reads go to the COW
 * chunk where the chunk has been copied, to the origin otherwise; the first
 * write to a chunk copies it from the origin first (read-modify-write),
 * unless the write covers the whole chunk. Copies commit in the order they
 * were allocated. Discards are taken only with discard_zeroes_cow
 * (snapshot/features.c): they never create an exception, only zero or
 * discard existing ones (snapshot_map_discard).
 *
 * The functions here are shared with dmkit-snapshot-merge, which is a
 * snapshot too. All state is guarded by dmk_lock (see io.c).
 */
#define DM_MSG_PREFIX "dmkit"
#include "dmk.h"
#include "args.h"
#include "devref.h"
#include "msg.h"
#include "targets.h"
#include "snapshot/snapshot.h"
#include "snapshot/pending.h"
#include "snapshot/chunks.h"
#include "snapshot/origins.h"
#include "snapshot/origin-write.h"
#include "snapshot/merge.h"

/* For sizing the exception table before the header is read. */
#define DMK_DEFAULT_CHUNK_SHIFT	5

static void snapshot_free(struct dm_target *ti, struct dmk_snapshot *s)
{
	if (s->store)
		s->store->type->destroy(s->store);
	dmk_exception_table_destroy(s->complete);
	if (s->cow)
		dm_put_device(ti, s->cow);
	if (s->origin)
		dm_put_device(ti, s->origin);
	kfree(s);
}

static void snapshot_unregister(struct dmk_snapshot *s)
{
	unsigned long flags;

	spin_lock_irqsave(&dmk_lock, flags);
	dmk_unregister_snapshot(s);
	s->active = false;
	spin_unlock_irqrestore(&dmk_lock, flags);
}

/* The store type and options from <P|PO|N>. */
static int snapshot_make_store(struct dm_target *ti, struct dmk_snapshot *s, const char *kind)
{
	char k = toupper(kind[0]);

	if (k == 'P') {
		if (strlen(kind) > 1 && strcasecmp(kind, "PO")) {
			dmk_set_error(ti, "unsupported persistent store option: %s", kind + 1);
			return -EINVAL;
		}
		s->store = dmk_persistent_store_create(s);
		if (s->store)
			s->store->overflow_supported = !strcasecmp(kind, "PO");
	} else if (k == 'N') {
		s->store = dmk_transient_store_create(s);
	} else {
		dmk_set_error(ti, "exception store type is not P or N: '%s'", kind);
		return -EINVAL;
	}
	if (!s->store) {
		ti->error = "cannot allocate the exception store";
		return -ENOMEM;
	}
	return 0;
}

static int snapshot_parse_chunk_size(struct dm_target *ti, struct dmk_snapshot *s,
				     const char *arg)
{
	char bad[64];
	u64 chunk;

	if (!dmk_parse_u64(arg, &chunk) || chunk > U32_MAX) {
		dmk_set_error(ti, "invalid chunk size '%s'", arg);
		return -EINVAL;
	}
	if (chunk != 0 && dmk_chunk_size_error(chunk, bad, sizeof(bad))) {
		dmk_set_error(ti, "%s", bad);
		return -EINVAL;
	}
	dmk_store_set_chunk_size(s->store, chunk);
	return 0;
}

/* metadataRead: the store loaded (or created) its metadata. */
static int snapshot_load_metadata(struct dm_target *ti, struct dmk_snapshot *s)
{
	char error[160];
	bool valid = true;
	int r;

	r = s->store->type->read_metadata(s->store, error, sizeof(error), &valid);
	if (r) {
		dmk_set_error(ti, "failed to read snapshot metadata: %s", error);
		return r;
	}
	s->valid = valid;
	if (!valid)
		DMWARN("Snapshot is marked invalid.");
	if (s->store->chunk_size == 0) {
		ti->error = "chunk size not set";
		return -EINVAL;
	}
	ti->max_io_len = s->store->chunk_size;
	return 0;
}

int dmk_snapshot_ctr(struct dm_target *ti, unsigned int argc, char **argv, bool is_merge)
{
	struct dmk_snapshot *s;
	unsigned int i, shift;
	unsigned long flags;
	int r;

	if (argc < 4) {
		dmk_set_error(ti, "requires 4 or more arguments: %s",
			      "<origin> <COW device> <P|PO|N> <chunk_size>");
		return -EINVAL;
	}
	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s) {
		ti->error = "cannot allocate snapshot context";
		return -ENOMEM;
	}
	s->ti = ti;
	s->is_merge = is_merge;
	s->valid = true;
	INIT_LIST_HEAD(&s->out_of_order);
	INIT_LIST_HEAD(&s->drain_waiters);
	INIT_LIST_HEAD(&s->origin_node);
	for (i = 0; i < DMK_PENDING_BUCKETS; i++)
		INIT_HLIST_HEAD(&s->pending[i]);
	for (i = 0; i < DMK_TRACKED_BUCKETS; i++)
		INIT_HLIST_HEAD(&s->tracked[i]);

	/* Linux reads the features before anything else, so their errors come first. */
	r = dmk_parse_snapshot_features(ti, argc, argv, 4, &s->features);
	if (r)
		goto bad;
	r = dmk_get_device(ti, argv[0], 0, ti->len, &s->origin);
	if (r) {
		dmk_set_error(ti, "cannot get origin device: %s", ti->error);
		goto bad;
	}
	r = dmk_get_device(ti, argv[1], 0, 0, &s->cow);
	if (r) {
		dmk_set_error(ti, "cannot get COW device: %s", ti->error);
		goto bad;
	}
	if (dmk_same_dev(s->origin, s->cow)) {
		ti->error = "COW device cannot be the same as origin device";
		r = -EINVAL;
		goto bad;
	}
	r = snapshot_make_store(ti, s, argv[2]);
	if (r)
		goto bad;
	r = snapshot_parse_chunk_size(ti, s, argv[3]);
	if (r)
		goto bad;
	ti->num_flush_bios = is_merge ? 2 : 1;
	/* The second discard bio of discard_passdown_origin goes to the origin. */
	if (s->features.discard_zeroes_cow)
		ti->num_discard_bios = s->features.discard_passdown_origin ? 2 : 1;
	ti->per_io_data_size = sizeof(struct dmk_bio_info);
	ti->accounts_remapped_io = true;	/* deferred bios go on with dm_submit_bio_remap */
	shift = s->store->chunk_shift ? s->store->chunk_shift : DMK_DEFAULT_CHUNK_SHIFT;
	s->complete = dmk_exception_table_create(dmk_dev_sectors(s->cow) >> shift);
	if (!s->complete) {
		ti->error = "cannot allocate the exception table";
		r = -ENOMEM;
		goto bad;
	}
	ti->private = s;

	r = dmk_register_snapshot(s);
	if (r == -ENOMEM)
		ti->error = "cannot register the snapshot";
	if (r)
		goto bad;	/* otherwise the handover was refused, with ti->error set */
	spin_lock_irqsave(&dmk_lock, flags);
	if (s->handover_from) {
		/*
		 * A reload with the same COW device takes the exceptions over at
		 * resume, the chunk size with them: until then the table says 0.
		 */
		s->awaiting_handover = true;
		s->store->chunk_size = 0;
		s->store->chunk_shift = 0;
		ti->max_io_len = dmk_snapshot_chunk_size(s->handover_from);
	}
	spin_unlock_irqrestore(&dmk_lock, flags);
	if (s->awaiting_handover)
		return 0;
	r = snapshot_load_metadata(ti, s);
	if (r) {
		snapshot_unregister(s);
		goto bad;
	}
	return 0;

bad:
	ti->private = NULL;
	snapshot_free(ti, s);
	return r;
}

static bool snapshot_idle(void *arg)
{
	struct dmk_snapshot *s = arg;

	return s->pending_count == 0 && s->copies_in_flight == 0 &&
	       s->store->type->idle(s->store);
}

/* destroy: no new work can find the snapshot; wait for what is in flight, then free. */
void dmk_snapshot_dtr(struct dm_target *ti)
{
	struct dmk_snapshot *s = ti->private;

	snapshot_unregister(s);
	dmk_wait_idle(snapshot_idle, s);
	snapshot_free(ti, s);
}

/*
 * snapshot_preresume: while a handover waits, its source may not resume first,
 * and the new snapshot resumes only once the source's device is suspended, so
 * no I/O of the source reaches the store it gives away. Linux's resume then
 * waits for copies the source still has in flight (it suspends the origin
 * device): here too, before the handover. (The core, which cannot wait,
 * refuses with -EBUSY instead: core-as/targets/snapshot.ts resumeBusy.)
 */
#define SOURCE_NOT_SUSPENDED "Unable to perform snapshot handover until source is suspended."

int dmk_snapshot_preresume(struct dm_target *ti)
{
	struct dmk_snapshot *s = ti->private, *src, *dest;
	unsigned long flags;
	int r = 0;

	spin_lock_irqsave(&dmk_lock, flags);
	dmk_find_snapshots_sharing_cow(s, &src, &dest);
	if (src && dest) {
		if (s == src) {
			ti->error = "Unable to resume snapshot source until handover completes.";
			r = -EINVAL;
		} else if (!dm_suspended(src->ti)) {
			ti->error = SOURCE_NOT_SUSPENDED;
			r = -EINVAL;
		}
	}
	spin_unlock_irqrestore(&dmk_lock, flags);
	if (r)
		return r;	/* dm_table_resume_targets logs it; ti->error says why */
	if (src && dest && src != s)
		dmk_wait_idle(snapshot_idle, src);
	return 0;
}

/* __handover_exceptions: swap stores and tables; the old instance gets no more I/O. */
static void snapshot_handover(struct dmk_snapshot *s, struct dmk_snapshot *from)
{
	struct dmk_store *mine = s->store;
	struct dmk_exception_table *table = s->complete;

	s->store = from->store;
	s->store->overflow_supported = mine->overflow_supported;
	s->store->snap = s;
	from->store = mine;
	mine->snap = from;
	s->complete = from->complete;
	from->complete = table;
	s->valid = from->valid;
	s->overflowed = from->overflowed;
	s->ti->max_io_len = s->store->chunk_size;
	from->valid = false;
	s->handover_from = NULL;
}

void dmk_snapshot_resume(struct dm_target *ti)
{
	struct dmk_snapshot *s = ti->private;
	unsigned long flags;

	spin_lock_irqsave(&dmk_lock, flags);
	if (s->handover_from)
		snapshot_handover(s, s->handover_from);
	else if (s->awaiting_handover)
		s->valid = false;	/* the snapshot to take over from is gone: no metadata */
	s->awaiting_handover = false;
	s->active = true;
	spin_unlock_irqrestore(&dmk_lock, flags);
}

/* dm_add_exception: an exception read back from the COW device (ctr, may sleep). */
int dmk_snapshot_add_exception(struct dmk_snapshot *s, u64 old_chunk, u64 new_chunk)
{
	struct dmk_exception *e = kzalloc(sizeof(*e), GFP_KERNEL);

	if (!e)
		return -ENOMEM;
	e->old_chunk = old_chunk;
	e->new_chunk = new_chunk;
	dmk_exception_set(s->complete, e);
	return 0;
}

/* ---- mapping (under dmk_lock) */

void dmk_snapshot_remap(struct dmk_snapshot *s, struct bio *bio, u64 new_chunk)
{
	bio_set_dev(bio, s->cow->bdev);
	bio->bi_iter.bi_sector = (new_chunk << dmk_snapshot_chunk_shift(s)) +
				 (bio->bi_iter.bi_sector & (dmk_snapshot_chunk_size(s) - 1));
}

/* zero_exception finished: the discard ends with the zeroing's status. */
static void snapshot_zero_done(struct dmk_waiter *w, struct dmk_io *io, int status)
{
	struct dmk_bio_info *info = container_of(w, struct dmk_bio_info, zero_waiter);

	dmk_buf_free_locked(io->buf);
	io->buf = NULL;
	dmk_release(info, status ? DMK_MAP_KILL : DMK_MAP_SUBMITTED);
}

/*
 * zero_exception (core-as/snapshot/zero-exception.ts): the whole COW chunk
 * the discard was remapped onto is written with zeroes, then the discard
 * ends. kcopyd would use WRITE_ZEROES where the COW device takes them; a
 * zeroed buffer reads back the same everywhere.
 */
static int snapshot_zero_exception(struct dmk_snapshot *s, struct bio *bio)
{
	struct dmk_bio_info *info = dmk_bio_info(bio);

	info->zero_waiter.io_done = snapshot_zero_done;
	info->zero_waiter.inflight = 0;
	dmk_submit_internal(&info->zero_io, &info->zero_waiter, s->cow, DMK_OP_ZERO, 0,
			    bio->bi_iter.bi_sector, bio_sectors(bio), NULL, 0);
	return DMK_MAP_DEFERRED;
}

/*
 * mapDiscard: a discard inside one chunk (the block layer splits them there,
 * see dmk_snapshot_io_hints). With discard_passdown_origin the second bio
 * goes to the origin device, bypassing copy-out. The first zeroes the
 * chunk's exception when it covers the chunk, discards that part of the COW
 * chunk when it covers less, and ends at once where the chunk has no
 * exception (copying it out first would defeat the discard).
 */
static int snapshot_map_discard(struct dmk_snapshot *s, struct bio *bio, u64 chunk)
{
	s64 e;

	if (s->features.discard_passdown_origin && dm_bio_get_target_bio_nr(bio)) {
		bio_set_dev(bio, s->origin->bdev);
		dmk_snapshot_track(s, chunk, bio);
		return DMK_MAP_REMAPPED;
	}
	e = dmk_exception_get(s->complete, chunk);
	if (e < 0)
		return DMK_MAP_SUBMITTED;
	dmk_snapshot_remap(s, bio, e);
	if (bio_sectors(bio) == dmk_snapshot_chunk_size(s))
		return snapshot_zero_exception(s, bio);
	return DMK_MAP_REMAPPED;
}

static int snapshot_map_locked(struct dmk_snapshot *s, struct bio *bio)
{
	bool is_write = bio_op(bio) != REQ_OP_READ;
	struct dmk_pending *pe;
	u64 chunk;
	s64 e;
	int err;

	if (bio->bi_opf & REQ_PREFLUSH) {
		bio_set_dev(bio, s->cow->bdev);
		return DMK_MAP_REMAPPED;
	}
	if (!s->valid)
		return DMK_MAP_KILL;
	if (s->overflowed && is_write)
		return DMK_MAP_KILL;
	chunk = bio->bi_iter.bi_sector >> dmk_snapshot_chunk_shift(s);
	if (bio_op(bio) == REQ_OP_DISCARD)
		return snapshot_map_discard(s, bio, chunk);
	e = dmk_exception_get(s->complete, chunk);
	if (e >= 0) {
		dmk_snapshot_remap(s, bio, e);
		return DMK_MAP_REMAPPED;
	}
	if (!is_write) {
		bio_set_dev(bio, s->origin->bdev);
		dmk_snapshot_track(s, chunk, bio);
		return DMK_MAP_REMAPPED;
	}
	pe = dmk_snapshot_pending_for(s, chunk);
	if (!pe) {
		err = dmk_snapshot_insert_pending(s, chunk, &pe);
		if (err == -ENOMEM)
			return DMK_MAP_NEED_MEMORY;
		if (err) {
			if (!s->store->overflow_supported) {
				dmk_snapshot_invalidate(s, ENOMEM);
			} else if (s->valid && !s->overflowed) {
				s->overflowed = true;
				DMERR("Snapshot overflowed: Unable to allocate exception.");
			}
			return DMK_MAP_KILL;
		}
	}
	dmk_snapshot_remap(s, bio, pe->new_chunk);
	if (!pe->started && bio_sectors(bio) == dmk_snapshot_chunk_size(s) &&
	    bio_op(bio) == REQ_OP_WRITE) {
		pe->started = true;
		dmk_pending_start_full_write(pe, bio);
		return DMK_MAP_DEFERRED;
	}
	bio_list_add(&pe->snapshot_bios, bio);
	if (!pe->started) {
		pe->started = true;
		dmk_pending_start_copy(pe);
	}
	return DMK_MAP_DEFERRED;
}

static int snapshot_map(struct dm_target *ti, struct bio *bio)
{
	unsigned long flags;
	int r;

	dmk_bio_info_init(dmk_bio_info(bio), ti, bio);
	spin_lock_irqsave(&dmk_lock, flags);
	/* A new exception is allocated here, before map returns, as dm-snap's snapshot_map does. */
	while ((r = snapshot_map_locked(ti->private, bio)) == DMK_MAP_NEED_MEMORY)
		dmk_pending_alloc_in_map(1, &flags);
	spin_unlock_irqrestore(&dmk_lock, flags);
	return dmk_map_result(bio, r);
}

static void snapshot_untrack(struct dmk_snapshot *s, struct dmk_bio_info *info);

int dmk_snapshot_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct dmk_bio_info *info = dmk_bio_info(bio);
	unsigned long flags;

	if (info->tracked) {
		spin_lock_irqsave(&dmk_lock, flags);
		snapshot_untrack(ti->private, info);
		spin_unlock_irqrestore(&dmk_lock, flags);
	}
	return DM_ENDIO_DONE;
}

/* ---- pending exceptions */

struct dmk_pending *dmk_snapshot_pending_for(struct dmk_snapshot *s, u64 chunk)
{
	struct dmk_pending *pe;

	hlist_for_each_entry(pe, &s->pending[chunk % DMK_PENDING_BUCKETS], node) {
		if (pe->old_chunk == chunk)
			return pe;
	}
	return NULL;
}

bool dmk_snapshot_has_exception(struct dmk_snapshot *s, u64 chunk)
{
	return dmk_exception_has(s->complete, chunk);
}

/*
 * __insert_pending_exception: allocates the COW chunk, in request order.
 * -ENOMEM: the reserve is empty (nothing changed); -ENOSPC: the COW device
 * is full.
 */
int dmk_snapshot_insert_pending(struct dmk_snapshot *s, u64 chunk, struct dmk_pending **result)
{
	struct dmk_pending *pe;

	pe = dmk_pending_take(s, chunk);
	if (!pe)
		return -ENOMEM;
	if (!s->store->type->prepare_exception(s->store, pe)) {
		dmk_pending_put(pe);
		return -ENOSPC;
	}
	pe->sequence = s->start_sequence++;
	hlist_add_head(&pe->node, &s->pending[chunk % DMK_PENDING_BUCKETS]);
	s->pending_count++;
	*result = pe;
	return 0;
}

void dmk_snapshot_copy_started(struct dmk_snapshot *s)
{
	s->copies_in_flight++;
}

static void snapshot_commit(struct dmk_snapshot *s, struct dmk_pending *pe)
{
	s->complete_sequence++;
	s->store->type->commit_exception(s->store, pe, !pe->copy_error);
}

/* copy_callback: commit in allocation order, holding copies that finished early. */
void dmk_snapshot_copy_done(struct dmk_snapshot *s, struct dmk_pending *pe, bool error)
{
	struct dmk_pending *next;

	s->copies_in_flight--;
	pe->copy_error = error;
	if (pe->sequence != s->complete_sequence) {
		list_for_each_entry(next, &s->out_of_order, list) {
			if (next->sequence > pe->sequence)
				break;
		}
		list_add_tail(&pe->list, &next->list);
		return;
	}
	snapshot_commit(s, pe);
	while (!list_empty(&s->out_of_order)) {
		next = list_first_entry(&s->out_of_order, struct dmk_pending, list);
		if (next->sequence != s->complete_sequence)
			break;
		list_del_init(&next->list);
		snapshot_commit(s, next);
	}
}

static void snapshot_finish_pending(struct dmk_snapshot *s, struct dmk_pending *pe, bool error)
{
	struct bio *bio;
	int r;

	hlist_del_init(&pe->node);
	pe->snap->pending_count--;
	dmk_pending_free_buffer(pe);
	if (pe->full_bio)
		dmk_resume_deferred(pe->full_bio, error ? DMK_MAP_KILL : DMK_MAP_SUBMITTED);
	while ((bio = bio_list_pop(&pe->snapshot_bios)))
		dmk_resume_deferred(bio, error ? DMK_MAP_KILL : DMK_MAP_REMAPPED);
	/* retry_origin_bios; in order behind the worker's retries that wait for memory */
	while ((bio = bio_list_pop(&pe->origin_bios))) {
		r = DMK_MAP_NEED_MEMORY;
		if (!dmk_starved_waiting())
			r = dmk_origin_write(s->origin->bdev, bio, bio->bi_iter.bi_sector,
					     bio_sectors(bio));
		if (r == DMK_MAP_REMAPPED)
			dmk_resume_deferred(bio, DMK_MAP_REMAPPED);
		else if (r == DMK_MAP_NEED_MEMORY)
			dmk_origin_write_retry_later(bio);
	}
	dmk_pending_put(pe);
	dmk_exception_done(s->origin->bdev);
}

/* pending_complete: the exception is on disk (or failed); release what waited for it. */
void dmk_snapshot_pending_complete(struct dmk_snapshot *s, struct dmk_pending *pe, bool success)
{
	if (!success) {
		dmk_snapshot_invalidate(s, EIO);
		snapshot_finish_pending(s, pe, true);
		return;
	}
	if (!s->valid) {
		snapshot_finish_pending(s, pe, true);
		return;
	}
	pe->e->old_chunk = pe->old_chunk;
	pe->e->new_chunk = pe->new_chunk;
	dmk_exception_set(s->complete, pe->e);
	pe->e = NULL;
	/* Snapshot reads of the old origin data must finish before origin writes go on. */
	if (dmk_snapshot_tracked_count(s, pe->old_chunk) > 0) {
		list_add_tail(&pe->list, &s->drain_waiters);
		return;
	}
	snapshot_finish_pending(s, pe, false);
}

/* __invalidate_snapshot, with its DMERR line for the two errors Linux names. */
void dmk_snapshot_invalidate(struct dmk_snapshot *s, int err)
{
	if (!s->valid)
		return;
	if (err == EIO)
		DMERR("Invalidating snapshot: Error reading/writing.");
	else if (err == ENOMEM)
		DMERR("Invalidating snapshot: Unable to allocate exception.");
	s->store->type->drop_snapshot(s->store);
	s->valid = false;
	/* A device event, as Linux's snapshot raises one (dmsetup info's "Event number", dmsetup wait). */
	dm_table_event(s->ti->table);
}

/* ---- tracked reads */

void dmk_snapshot_track(struct dmk_snapshot *s, u64 chunk, struct bio *bio)
{
	struct dmk_bio_info *info = dmk_bio_info(bio);

	info->tracked = true;
	info->tracked_chunk = chunk;
	hlist_add_head(&info->tracked_node, &s->tracked[chunk % DMK_TRACKED_BUCKETS]);
}

int dmk_snapshot_tracked_count(struct dmk_snapshot *s, u64 chunk)
{
	struct dmk_bio_info *info;
	int n = 0;

	hlist_for_each_entry(info, &s->tracked[chunk % DMK_TRACKED_BUCKETS], tracked_node) {
		if (info->tracked_chunk == chunk)
			n++;
	}
	return n;
}

static void snapshot_untrack(struct dmk_snapshot *s, struct dmk_bio_info *info)
{
	u64 chunk = info->tracked_chunk;
	struct dmk_pending *pe;

	hlist_del(&info->tracked_node);
	info->tracked = false;
	if (dmk_snapshot_tracked_count(s, chunk) > 0)
		return;
	list_for_each_entry(pe, &s->drain_waiters, list) {
		if (pe->old_chunk == chunk) {
			list_del_init(&pe->list);
			snapshot_finish_pending(s, pe, false);
			break;
		}
	}
	if (s->merge)
		dmk_merge_chunk_drained(s, chunk);
}

/* ---- status */

void dmk_snapshot_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			 char *result, unsigned int maxlen)
{
	struct dmk_snapshot *s = ti->private;
	struct dmk_store *st;
	unsigned long flags;
	unsigned int sz = 0;

	result[0] = '\0';
	spin_lock_irqsave(&dmk_lock, flags);
	st = s->store;
	if (type == STATUSTYPE_INFO) {
		if (!s->valid) {
			DMEMIT("Invalid");
		} else if (s->merge_failed) {
			DMEMIT("Merge failed");
		} else if (s->overflowed) {
			DMEMIT("Overflow");
		} else {
			st->type->usage(st);
			DMEMIT("%llu/%llu %llu", st->sectors_allocated, st->total_sectors,
			       st->metadata_sectors);
		}
	} else if (type == STATUSTYPE_TABLE) {
		DMEMIT("%s %s", s->origin->name, s->cow->name);
		sz = st->type->status_table(st, result, sz, maxlen);
		sz = dmk_snapshot_features_table(&s->features, result, sz, maxlen);
	}
	spin_unlock_irqrestore(&dmk_lock, flags);
}

int dmk_snapshot_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct dmk_snapshot *s = ti->private;
	int r = fn(ti, s->origin, 0, ti->len, data);

	if (!r && s->merge)
		r = fn(ti, s->cow, 0, dmk_dev_sectors(s->cow), data);
	return r;
}

/*
 * snapshot_io_hints: with discard_zeroes_cow, discards reach the target cut
 * at chunk boundaries. Linux gives the granularity in sectors where the
 * field is in bytes, which leaves its discards unaligned; we give bytes.
 */
void dmk_snapshot_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct dmk_snapshot *s = ti->private;
	unsigned long flags;
	u64 chunk;

	if (!s->features.discard_zeroes_cow)
		return;
	spin_lock_irqsave(&dmk_lock, flags);
	chunk = dmk_snapshot_chunk_size(s->handover_from ? s->handover_from : s);
	spin_unlock_irqrestore(&dmk_lock, flags);
	if (!chunk)
		return;
	limits->discard_granularity = to_bytes(chunk);
	limits->max_discard_sectors = chunk;
}

static int snapshot_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	return dmk_snapshot_ctr(ti, argc, argv, false);
}

struct target_type dmk_snapshot_target = {
	.name = "dmkit-snapshot",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = snapshot_ctr,
	.dtr = dmk_snapshot_dtr,
	.map = snapshot_map,
	.end_io = dmk_snapshot_end_io,
	.preresume = dmk_snapshot_preresume,
	.resume = dmk_snapshot_resume,
	.status = dmk_snapshot_status,
	.iterate_devices = dmk_snapshot_iterate_devices,
	.io_hints = dmk_snapshot_io_hints,
};
