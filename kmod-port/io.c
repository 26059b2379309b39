// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The engine: what the core's host loop does for the Wasm core, done inside
 * the module for the snapshot targets.
 *
 * The state machines (snapshot/, targets/snapshot*.c) run under dmk_lock and
 * never block. When they want I/O (a chunk copy, a metadata area write) they
 * call dmk_submit_internal(), which only queues it; when they let a waiting
 * bio go (dmk_resume_deferred) it is only queued too. One ordered worker then
 * issues the queued I/O with dm-io (async, notify callback), hands finished
 * I/O back to its waiter under the lock, and submits or ends released bios.
 * Buffers for chunk copies are allocated there, outside the lock.
 *
 * New pending exceptions are allocated in map, atomically under the lock,
 * as dm-snap allocates them in map (see snapshot/pending.c); when memory is
 * short map drops the lock and allocates where it may sleep. What the worker
 * runs under the lock (origin writes retried when a copy completes, merge
 * steps) cannot drop it: when memory is short that work waits on the
 * starved list, in order, and the worker allocates and retries it.
 */
#include "io.h"
#include "snapshot/pending.h"

DEFINE_SPINLOCK(dmk_lock);

unsigned int dmk_reserve_low = 16;

static struct {
	struct workqueue_struct *wq;
	struct work_struct work;
	struct dm_io_client *client;
	struct bio_set bios;		/* clones for internal I/O on a bio's own pages */
	struct list_head issue;		/* submitted, not yet issued */
	struct list_head done;		/* finished, waiter not yet told */
	struct list_head released;	/* deferred bios let go (their dmk_bio_info) */
	struct list_head starved;	/* the worker's work waiting for memory, in order */
	struct list_head to_free;	/* chunk buffers let go under the lock */
	bool retrying;			/* a starved item is being retried */
	wait_queue_head_t idle;
} engine;

static void dmk_kick(void)
{
	queue_work(engine.wq, &engine.work);
}

void dmk_bio_info_init(struct dmk_bio_info *info, struct dm_target *ti, struct bio *bio)
{
	info->bio = bio;
	info->ti = ti;
	info->tracked = false;
	info->release = DMK_MAP_REMAPPED;
	INIT_LIST_HEAD(&info->release_node);
	INIT_LIST_HEAD(&info->starved.list);
}

/* submitInternal: under dmk_lock; the worker issues it. */
void dmk_submit_internal(struct dmk_io *io, struct dmk_waiter *w, struct dm_dev *to,
			 unsigned int op, unsigned int flags, sector_t sector, unsigned int count,
			 void *buf, long cookie)
{
	io->waiter = w;
	io->bdev = to->bdev;
	io->op = op;
	io->flags = flags;
	io->sector = sector;
	io->count = op == DMK_OP_FLUSH ? 0 : count;
	io->buf = buf;
	io->data_bio = NULL;
	io->cookie = cookie;
	io->status = 0;
	w->inflight++;
	list_add_tail(&io->list, &engine.issue);
	dmk_kick();
}

/*
 * I/O from or into part of a bio's own pages ([offset, offset + count
 * sectors) of its data): a whole-chunk write to the COW device, the
 * whole-block middle of an ebs request. Issued as a clone of the bio.
 */
void dmk_submit_internal_bio(struct dmk_io *io, struct dmk_waiter *w, struct dm_dev *to,
			     unsigned int op, unsigned int flags, sector_t sector, struct bio *bio,
			     unsigned int offset, unsigned int count, long cookie)
{
	dmk_submit_internal(io, w, to, op, flags, sector, count, NULL, cookie);
	io->data_bio = bio;
	io->data_offset = offset;
}

/* resumeDeferred: under dmk_lock; the worker submits, ends or fails the bio. */
void dmk_release(struct dmk_bio_info *info, int r)
{
	info->release = r;
	list_add_tail(&info->release_node, &engine.released);
	dmk_kick();
}

void dmk_defer_starved(struct dmk_starved *st)
{
	list_add_tail(&st->list, &engine.starved);
	dmk_kick();
}

/* The worker's retries must not overtake older ones still waiting for memory. */
bool dmk_starved_waiting(void)
{
	return !list_empty(&engine.starved) && !engine.retrying;
}

/* A map decision as device-mapper wants it; called after dmk_lock is dropped. */
int dmk_map_result(struct bio *bio, int r)
{
	switch (r) {
	case DMK_MAP_REMAPPED:
		return DM_MAPIO_REMAPPED;
	case DMK_MAP_SUBMITTED:
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	case DMK_MAP_DEFERRED:
		return DM_MAPIO_SUBMITTED;
	default:
		return DM_MAPIO_KILL;
	}
}

static void dmk_io_finished(struct dmk_io *io, int status)
{
	unsigned long flags;

	spin_lock_irqsave(&dmk_lock, flags);
	io->status = status;
	list_add_tail(&io->list, &engine.done);
	spin_unlock_irqrestore(&dmk_lock, flags);
	dmk_kick();
}

static void dmk_io_notify(unsigned long error, void *context)
{
	dmk_io_finished(context, error ? EIO : 0);
}

static blk_opf_t dmk_opf(unsigned int op, unsigned int flags)
{
	blk_opf_t opf;

	if (op == DMK_OP_READ)
		opf = REQ_OP_READ;
	else if (op == DMK_OP_FLUSH)
		opf = REQ_OP_WRITE | REQ_PREFLUSH | REQ_SYNC;
	else
		opf = REQ_OP_WRITE | REQ_SYNC;
	if (flags & DMK_FUA)
		opf |= REQ_FUA;
	return opf;
}

static void dmk_set_mem(struct dm_io_memory *mem, void *buf)
{
	mem->type = is_vmalloc_addr(buf) ? DM_IO_VMA : DM_IO_KMEM;
	mem->offset = 0;
	mem->ptr.addr = buf;
}

static void dmk_clone_endio(struct bio *clone)
{
	struct dmk_io *io = clone->bi_private;
	int status = blk_status_to_errno(clone->bi_status);

	bio_put(clone);
	dmk_io_finished(io, status ? EIO : 0);
}

static void dmk_issue_clone(struct dmk_io *io)
{
	struct bio *clone = bio_alloc_clone(io->bdev, io->data_bio, GFP_NOIO, &engine.bios);

	if (!clone) {
		dmk_io_finished(io, ENOMEM);
		return;
	}
	bio_advance(clone, io->data_offset);
	clone->bi_iter.bi_size = to_bytes(io->count);
	clone->bi_iter.bi_sector = io->sector;
	clone->bi_opf = dmk_opf(io->op, io->flags);
	clone->bi_end_io = dmk_clone_endio;
	clone->bi_private = io;
	submit_bio_noacct(clone);
}

static void dmk_issue(struct dmk_io *io)
{
	struct dm_io_region region = {
		.bdev = io->bdev, .sector = io->sector, .count = io->count,
	};
	struct dm_io_request req = {
		.bi_opf = dmk_opf(io->op, io->flags),
		.notify.fn = dmk_io_notify,
		.notify.context = io,
		.client = engine.client,
	};

	if (io->data_bio) {
		dmk_issue_clone(io);
		return;
	}
	if (!io->buf && io->count) {
		io->buf = dmk_buf_alloc(to_bytes(io->count));
		if (!io->buf) {
			dmk_io_finished(io, ENOMEM);
			return;
		}
		if (io->op == DMK_OP_ZERO)
			memset(io->buf, 0, to_bytes(io->count));
	}
	dmk_set_mem(&req.mem, io->buf);
	if (dm_io(&req, 1, &region, NULL, IOPRIO_DEFAULT))
		dmk_io_finished(io, EIO);
}

static void dmk_release_now(struct dmk_bio_info *info)
{
	struct bio *bio = info->bio;

	switch (info->release) {
	case DMK_MAP_REMAPPED:
		dm_submit_bio_remap(bio, NULL);
		break;
	case DMK_MAP_SUBMITTED:
		bio_endio(bio);
		break;
	default:
		bio_io_error(bio);
		break;
	}
}

/* Finished internal I/O goes back to its waiters, in completion order. */
static void dmk_tell_waiters(void)
{
	struct dmk_io *io;

	while (!list_empty(&engine.done)) {
		io = list_first_entry(&engine.done, struct dmk_io, list);
		list_del_init(&io->list);
		io->waiter->inflight--;
		io->waiter->io_done(io->waiter, io, io->status);
	}
}

/* Retries what waited for memory; may drop dmk_lock to allocate (returns holding it). */
static void dmk_run_starved(unsigned long *flags)
{
	struct dmk_starved *st;
	unsigned int need;

	while (!list_empty(&engine.starved)) {
		st = list_first_entry(&engine.starved, struct dmk_starved, list);
		need = st->needed(st);
		if (dmk_pending_reserve_count() < need) {
			spin_unlock_irqrestore(&dmk_lock, *flags);
			dmk_pending_reserve_fill(need);
			spin_lock_irqsave(&dmk_lock, *flags);
			continue;
		}
		list_del_init(&st->list);
		engine.retrying = true;
		st->retry(st);
		engine.retrying = false;
		dmk_tell_waiters();
	}
}

static void dmk_engine_run(struct work_struct *work)
{
	LIST_HEAD(issue);
	LIST_HEAD(to_free);
	LIST_HEAD(released);
	struct dmk_bio_info *info, *tinfo;
	struct list_head *buf, *tmp;
	struct dmk_io *io, *next;
	unsigned long flags;
	bool busy;

	do {
		spin_lock_irqsave(&dmk_lock, flags);
		dmk_tell_waiters();
		dmk_run_starved(&flags);
		list_splice_tail_init(&engine.issue, &issue);
		list_splice_tail_init(&engine.to_free, &to_free);
		list_splice_tail_init(&engine.released, &released);
		spin_unlock_irqrestore(&dmk_lock, flags);

		busy = !list_empty(&issue) || !list_empty(&released);
		list_for_each_entry_safe(io, next, &issue, list) {
			list_del_init(&io->list);
			dmk_issue(io);
		}
		list_for_each_entry_safe(info, tinfo, &released, release_node) {
			list_del_init(&info->release_node);
			dmk_release_now(info);
		}
		list_for_each_safe(buf, tmp, &to_free) {
			list_del(buf);
			dmk_buf_free(buf);
		}
	} while (busy);

	wake_up_all(&engine.idle);
}

int dmk_sync_io(struct dm_dev *dev, unsigned int op, unsigned int flags, sector_t sector,
		unsigned int count, void *buf)
{
	struct dm_io_region region = {
		.bdev = dev->bdev, .sector = sector, .count = op == DMK_OP_FLUSH ? 0 : count,
	};
	struct dm_io_request req = {
		.bi_opf = dmk_opf(op, flags),
		.notify.fn = NULL,
		.client = engine.client,
	};
	unsigned long error_bits = 0;
	int r;

	dmk_set_mem(&req.mem, buf);
	r = dm_io(&req, 1, &region, &error_bits, IOPRIO_DEFAULT);
	if (!r && error_bits)
		r = -EIO;
	return r;
}

/* Chunk buffers: never recurse into I/O on our own devices while allocating. */
void *dmk_buf_alloc(size_t bytes)
{
	unsigned int noio = memalloc_noio_save();
	void *buf = kvmalloc(bytes, GFP_KERNEL);

	memalloc_noio_restore(noio);
	return buf;
}

void dmk_buf_free(void *buf)
{
	kvfree(buf);
}

/*
 * Under dmk_lock a vmalloc'd buffer cannot be freed (vfree may sleep): it is
 * queued for the worker, its own first bytes serving as the list node.
 */
void dmk_buf_free_locked(void *buf)
{
	if (!buf)
		return;
	list_add_tail((struct list_head *)buf, &engine.to_free);
	dmk_kick();
}

/*
 * Copies between a bio's data, from byte offset of the iterator it, and buf
 * (to_bio: into the bio). Used under dmk_lock: it only copies.
 */
void dmk_bio_copy(struct bio *bio, struct bvec_iter it, size_t offset, void *buf, size_t len,
		  bool to_bio)
{
	struct bvec_iter iter;
	struct bio_vec bv, part;
	size_t pos = 0, done = 0, skip;

	__bio_for_each_segment(bv, bio, iter, it) {
		if (done == len)
			break;
		if (pos + bv.bv_len <= offset + done) {
			pos += bv.bv_len;
			continue;
		}
		/* a copy: the loop advances by bv's own length */
		part = bv;
		skip = offset + done - pos;
		part.bv_offset += skip;
		part.bv_len = min_t(size_t, bv.bv_len - skip, len - done);
		if (to_bio)
			memcpy_to_bvec(&part, (char *)buf + done);
		else
			memcpy_from_bvec((char *)buf + done, &part);
		done += part.bv_len;
		pos += bv.bv_len;
	}
}

static bool dmk_check_idle(bool (*idle)(void *arg), void *arg)
{
	unsigned long flags;
	bool r;

	spin_lock_irqsave(&dmk_lock, flags);
	r = idle(arg);
	spin_unlock_irqrestore(&dmk_lock, flags);
	return r;
}

/* dtr: sleeps until idle(arg) holds (checked under dmk_lock). */
void dmk_wait_idle(bool (*idle)(void *arg), void *arg)
{
	while (!wait_event_timeout(engine.idle, dmk_check_idle(idle, arg), HZ / 10))
		dmk_kick();
	flush_workqueue(engine.wq);
}

int dmk_engine_init(void)
{
	int r;

	INIT_LIST_HEAD(&engine.issue);
	INIT_LIST_HEAD(&engine.done);
	INIT_LIST_HEAD(&engine.starved);
	INIT_LIST_HEAD(&engine.to_free);
	INIT_LIST_HEAD(&engine.released);
	init_waitqueue_head(&engine.idle);
	INIT_WORK(&engine.work, dmk_engine_run);
	r = dmk_pending_pool_create();
	if (r)
		return r;
	engine.client = dm_io_client_create();
	if (IS_ERR(engine.client)) {
		r = PTR_ERR(engine.client);
		goto bad_client;
	}
	r = bioset_init(&engine.bios, 64, 0, 0);
	if (r)
		goto bad_bioset;
	engine.wq = alloc_ordered_workqueue("kdmkitd", WQ_MEM_RECLAIM);
	if (!engine.wq) {
		r = -ENOMEM;
		goto bad_wq;
	}
	return 0;

bad_wq:
	bioset_exit(&engine.bios);
bad_bioset:
	dm_io_client_destroy(engine.client);
bad_client:
	dmk_pending_pool_destroy();
	return r;
}

void dmk_engine_exit(void)
{
	destroy_workqueue(engine.wq);
	bioset_exit(&engine.bios);
	dm_io_client_destroy(engine.client);
	dmk_pending_pool_destroy();
}
