// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The kernel API of kshim.h, for one thread: allocation (counted, so a run
 * can check the targets freed everything), spinlocks that catch recursion
 * and sleeping, bios, dm-io, workqueues and timers over pump.c.
 */
#include "harness.h"

sector_t shim_disk_sectors(struct hdisk *d);

/* DMERR's lines since the last take, " | " between them; a full buffer keeps the first ones. */
static char kernel_log[8192];
static size_t kernel_log_len;

void shim_dmerr(const char *fmt, ...)
{
	size_t room = sizeof(kernel_log) - kernel_log_len;
	va_list ap;
	int n;

	if (kernel_log_len && room > 4) {
		memcpy(kernel_log + kernel_log_len, " | ", 4);
		kernel_log_len += 3;
		room -= 3;
	} else if (kernel_log_len) {
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(kernel_log + kernel_log_len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		kernel_log_len += (size_t)n < room ? (size_t)n : room - 1;
}

void shim_take_kernel_log(char *out, size_t len)
{
	if (out && len)
		snprintf(out, len, "%s", kernel_log);
	kernel_log[0] = '\0';
	kernel_log_len = 0;
}

void shim_fatal(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "harness: fatal: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

int scnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!size)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0)
		return 0;
	return (size_t)n >= size ? (int)size - 1 : n;
}

/* ---- locks */

static int locks_held;

void shim_lock(spinlock_t *l)
{
	if (l->held)
		shim_fatal("a spinlock taken while already held (a deadlock in the kernel)");
	l->held = 1;
	locks_held++;
}

void shim_unlock(spinlock_t *l)
{
	if (!l->held)
		shim_fatal("a spinlock released that was not held");
	l->held = 0;
	locks_held--;
}

void shim_might_sleep(const char *what)
{
	if (locks_held)
		shim_fatal("%s may sleep, but a spinlock is held", what);
}

/* ---- memory */

static long live_allocations;

long shim_live_allocations(void)
{
	return live_allocations;
}

void *kmalloc(size_t size, gfp_t flags)
{
	void *p;

	if (flags & __GFP_DIRECT_RECLAIM)
		shim_might_sleep("an allocation that may reclaim (GFP_KERNEL/GFP_NOIO)");
	p = (flags & __GFP_ZERO) ? calloc(1, size ? size : 1) : malloc(size ? size : 1);
	if (!p)
		shim_fatal("out of memory (%zu bytes)", size);
	live_allocations++;
	return p;
}

void *kzalloc(size_t size, gfp_t flags)
{
	return kmalloc(size, flags | __GFP_ZERO);
}

void *kvmalloc(size_t size, gfp_t flags)
{
	return kmalloc(size, flags);
}

void *kvzalloc(size_t size, gfp_t flags)
{
	return kzalloc(size, flags);
}

void *kvcalloc(size_t n, size_t size, gfp_t flags)
{
	return kzalloc(n * size, flags);
}

void kfree(const void *p)
{
	if (!p)
		return;
	live_allocations--;
	free((void *)p);
}

void kvfree(const void *p)
{
	shim_might_sleep("kvfree (vfree)");
	kfree(p);
}

/* ---- mempools (the harness's allocator never fails, so the held-back elements stay unused) */

static enum atomic_failures atomic_failures;
static u32 atomic_state;

void shim_set_atomic_failures(enum atomic_failures mode, u32 seed)
{
	atomic_failures = mode;
	atomic_state = seed;
}

/* Whether an allocation that may not sleep finds memory short, as the run says. */
static bool atomic_allocation_fails(void)
{
	if (atomic_failures == ATOMIC_FAIL_ALWAYS)
		return true;
	if (atomic_failures != ATOMIC_FAIL_SOMETIMES)
		return false;
	atomic_state = atomic_state * 1664525u + 1013904223u;
	return (atomic_state >> 8) % 3 == 0;
}

mempool_t *mempool_create_kmalloc_pool(int min_nr, size_t size)
{
	mempool_t *pool = kzalloc(sizeof(*pool), GFP_KERNEL);

	pool->size = size;
	pool->min_nr = min_nr;
	pool->elements = kzalloc(min_nr * sizeof(void *), GFP_KERNEL);
	while (pool->curr_nr < min_nr)
		pool->elements[pool->curr_nr++] = kmalloc(size, GFP_KERNEL);
	return pool;
}

void *mempool_alloc(mempool_t *pool, gfp_t flags)
{
	if (flags & __GFP_DIRECT_RECLAIM)
		shim_might_sleep("mempool_alloc (GFP_NOIO/GFP_KERNEL)");
	else if (atomic_allocation_fails())
		return NULL;
	return kmalloc(pool->size, flags & ~__GFP_DIRECT_RECLAIM);
}

/* Back to the pool while it holds fewer than min_nr, else to the allocator (any context). */
void mempool_free(void *element, mempool_t *pool)
{
	if (!element)
		return;
	if (pool->curr_nr < pool->min_nr)
		pool->elements[pool->curr_nr++] = element;
	else
		kfree(element);
}

void mempool_destroy(mempool_t *pool)
{
	if (!pool)
		return;
	while (pool->curr_nr)
		kfree(pool->elements[--pool->curr_nr]);
	kfree(pool->elements);
	kfree(pool);
}

/* ---- bios */

int blk_status_to_errno(blk_status_t status)
{
	switch (status) {
	case BLK_STS_OK:
		return 0;
	case BLK_STS_NOTSUPP:
		return EOPNOTSUPP;
	case BLK_STS_NOSPC:
		return ENOSPC;
	default:
		return EIO;
	}
}

sector_t bdev_nr_sectors(struct block_device *bdev)
{
	struct hdev *dev;

	if (bdev->shim_kind == SHIM_DISK)
		return shim_disk_sectors(bdev->shim_obj);
	dev = bdev->shim_obj;
	return dev->live ? dev->live->size : 0;
}

void bio_endio(struct bio *bio)
{
	if (bio->bi_end_io)
		bio->bi_end_io(bio);
}

void zero_fill_bio(struct bio *bio)
{
	memset(bio->shim_data + bio->bi_iter.bi_bvec_done, 0, bio->bi_iter.bi_size);
}

/* submit_bio_noacct: to a disk's queue, or into the mapped device it names. */
void submit_bio_noacct(struct bio *bio)
{
	if (!bio->bi_bdev)
		shim_fatal("a bio submitted with no device");
	if (bio->bi_bdev->shim_kind == SHIM_DISK)
		pump_queue_disk_bio(bio);
	else
		dmc_submit(bio->bi_bdev->shim_obj, bio);
}

struct bio *bio_alloc_clone(struct block_device *bdev, struct bio *src, gfp_t gfp,
			    struct bio_set *bs)
{
	struct bio *bio = kzalloc(sizeof(*bio), gfp);

	(void)bs;
	bio->bi_bdev = bdev;
	bio->bi_opf = src->bi_opf;
	bio->bi_iter = src->bi_iter;
	bio->shim_data = src->shim_data;
	bio->shim_alloc = 1;
	return bio;
}

void bio_advance(struct bio *bio, unsigned int bytes)
{
	if (bytes > bio->bi_iter.bi_size)
		shim_fatal("bio_advance(%u) past the end of a %u-byte bio", bytes, bio->bi_iter.bi_size);
	bio->bi_iter.bi_sector += bytes >> SECTOR_SHIFT;
	bio->bi_iter.bi_size -= bytes;
	bio->bi_iter.bi_bvec_done += bytes;
}

void bio_put(struct bio *bio)
{
	if (!bio->shim_alloc)
		shim_fatal("bio_put on a bio the harness did not allocate");
	kfree(bio);
}

/* ---- dm-io: one bio per region, notify (or return) when all are done */

struct dmio_job {
	unsigned int remaining;
	unsigned long error_bits;
	io_notify_fn fn;
	void *context;
};

struct dmio_bio {
	struct bio bio;
	struct dmio_job *job;
	unsigned int region;
};

struct dm_io_client *dm_io_client_create(void)
{
	return kzalloc(sizeof(struct dm_io_client), GFP_KERNEL);
}

void dm_io_client_destroy(struct dm_io_client *client)
{
	kfree(client);
}

static void dmio_endio(struct bio *bio)
{
	struct dmio_bio *db = container_of(bio, struct dmio_bio, bio);
	struct dmio_job *job = db->job;

	if (bio->bi_status)
		job->error_bits |= 1ul << db->region;
	kfree(db);
	if (--job->remaining)
		return;
	if (job->fn) {
		job->fn(job->error_bits, job->context);
		kfree(job);
	}
}

int dm_io(struct dm_io_request *req, unsigned int num_regions, struct dm_io_region *region,
	  unsigned long *sync_error_bits, unsigned short ioprio)
{
	bool sync = !req->notify.fn;
	struct dmio_job *job;
	unsigned long errors;
	unsigned int i;

	(void)ioprio;
	if (sync)
		shim_might_sleep("a synchronous dm_io");
	if (req->mem.type == DM_IO_PAGE_LIST)
		shim_fatal("dm_io: page lists are not supported by the harness");
	job = kzalloc(sizeof(*job), GFP_NOIO);
	job->remaining = num_regions + 1;	/* held while submitting */
	job->fn = req->notify.fn;
	job->context = req->notify.context;
	for (i = 0; i < num_regions; i++) {
		struct dmio_bio *db = kzalloc(sizeof(*db), GFP_NOIO);
		struct bio *bio = &db->bio;

		db->job = job;
		db->region = i;
		bio->bi_bdev = region[i].bdev;
		bio->bi_opf = req->bi_opf;
		bio->bi_iter.bi_sector = region[i].sector;
		bio->bi_iter.bi_size = region[i].count << SECTOR_SHIFT;
		if (req->mem.type == DM_IO_BIO) {
			bio->shim_data = req->mem.ptr.bio->shim_data;
			bio->bi_iter.bi_bvec_done = req->mem.ptr.bio->bi_iter.bi_bvec_done;
		} else {
			bio->shim_data = (unsigned char *)req->mem.ptr.addr + req->mem.offset;
		}
		bio->bi_end_io = dmio_endio;
		submit_bio_noacct(bio);
	}
	if (!sync) {
		if (--job->remaining == 0) {
			job->fn(job->error_bits, job->context);
			kfree(job);
		}
		return 0;
	}
	job->remaining--;
	while (job->remaining && (pump_step() || pump_fire_next_timer()))
		;
	if (job->remaining)
		shim_fatal("a synchronous dm_io never completed");
	errors = job->error_bits;
	kfree(job);
	if (sync_error_bits)
		*sync_error_bits = errors;
	return errors ? -EIO : 0;
}

/* ---- workqueues and timers */

struct workqueue_struct *alloc_ordered_workqueue(const char *name, unsigned int flags)
{
	struct workqueue_struct *wq = kzalloc(sizeof(*wq), GFP_KERNEL);

	(void)flags;
	wq->name = name;
	return wq;
}

bool queue_work(struct workqueue_struct *wq, struct work_struct *work)
{
	(void)wq;
	if (work->pending)
		return false;
	work->pending = true;
	pump_queue_work(work);
	return true;
}

void flush_workqueue(struct workqueue_struct *wq)
{
	(void)wq;
	shim_might_sleep("flush_workqueue");
	pump_until_idle();
}

void destroy_workqueue(struct workqueue_struct *wq)
{
	flush_workqueue(wq);
	kfree(wq);
}

void timer_setup(struct timer_list *t, void (*fn)(struct timer_list *t), unsigned int flags)
{
	(void)flags;
	t->function = fn;
	t->pending = false;
	INIT_LIST_HEAD(&t->entry);
}

int mod_timer(struct timer_list *t, unsigned long expires)
{
	int was = t->pending;

	t->expires = expires;
	if (!t->pending) {
		t->pending = true;
		pump_add_timer(t);
	}
	return was;
}

int del_timer_sync(struct timer_list *t)
{
	int was = t->pending;

	shim_might_sleep("del_timer_sync");
	if (t->pending) {
		t->pending = false;
		pump_del_timer(t);
	}
	return was;
}
