/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * kshim.h - the kernel API the dmkit targets use, for userspace.
 *
 * Just enough of <linux/bio.h>, <linux/device-mapper.h>, <linux/dm-io.h>,
 * workqueues, timers, lists and allocation for the target files to compile
 * unchanged and run in one thread, driven by the harness (its dm.c,
 * dm-table.c, dm-ioctl.c and dm-target.c play drivers/md's; pump.c plays the
 * block layer, the disks and the clock).
 *
 * Besides standing in, the shim checks the rules the kernel would enforce
 * by crashing or deadlocking: a spinlock taken twice, and anything that may
 * sleep (GFP_KERNEL/GFP_NOIO allocation, synchronous dm-io, kvfree, waiting)
 * while a spinlock is held, stop the harness with a message.
 */
#ifndef DMK_KSHIM_H
#define DMK_KSHIM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <limits.h>
#include <errno.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the harness assumes a little-endian host"
#endif

/* ---- basic types and macros */

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef unsigned long long u64;	/* as in the kernel, on every architecture */
typedef int32_t s32;
typedef long long s64;
typedef u64 sector_t;
typedef u32 blk_opf_t;
typedef u8 blk_status_t;
typedef unsigned int fmode_t;
typedef u32 __le32;
typedef u64 __le64;
typedef unsigned int gfp_t;

#define U32_MAX		UINT32_MAX
#define U64_MAX		UINT64_MAX
#define SECTOR_SHIFT	9
#define HZ		1000
#define __init
#define __exit
#define THIS_MODULE	NULL
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define struct_size(p, member, n)	(sizeof(*(p)) + (size_t)(n) * sizeof((p)->member[0]))
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#define min(a, b)	((a) < (b) ? (a) : (b))
#define min_t(t, a, b)	((t)(a) < (t)(b) ? (t)(a) : (t)(b))
#define max(a, b)	((a) > (b) ? (a) : (b))
#define le32_to_cpu(x)	((u32)(x))
#define cpu_to_le32(x)	((u32)(x))
#define le64_to_cpu(x)	((u64)(x))
#define cpu_to_le64(x)	((u64)(x))
#define IS_ERR(p)	((unsigned long)(p) >= (unsigned long)-4095)
#define PTR_ERR(p)	((long)(p))
#define IOPRIO_DEFAULT	0
/* The kernel log: DMERR and DMWARN lines are kept for a vector's kernel-log statement (kshim.c). */
#define DMERR(fmt, ...)	shim_dmerr(fmt, ##__VA_ARGS__)
#define DMWARN(fmt, ...)	shim_dmerr(fmt, ##__VA_ARGS__)
__printf(1, 2) void shim_dmerr(const char *fmt, ...);
/* The lines logged since the last call, joined by " | " (out may be NULL: just forget them). */
void shim_take_kernel_log(char *out, size_t len);

struct module;

__printf(1, 2) void shim_fatal(const char *fmt, ...) __attribute__((noreturn));

static inline u64 div64_u64_rem(u64 dividend, u64 divisor, u64 *remainder)
{
	*remainder = dividend % divisor;
	return dividend / divisor;
}

int scnprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);

/* ---- atomics (one thread) */

typedef struct {
	int counter;
} atomic_t;

#define ATOMIC_INIT(i)	{ (i) }
static inline void atomic_set(atomic_t *a, int v) { a->counter = v; }
static inline int atomic_read(const atomic_t *a) { return a->counter; }
static inline void atomic_inc(atomic_t *a) { a->counter++; }
static inline int atomic_inc_return(atomic_t *a) { return ++a->counter; }

/* ---- spinlocks: a second acquisition, or a sleep while held, is a kernel deadlock */

typedef struct {
	int held;
} spinlock_t;

#define DEFINE_SPINLOCK(x)	spinlock_t x = { 0 }
void shim_lock(spinlock_t *l);
void shim_unlock(spinlock_t *l);
void shim_might_sleep(const char *what);
#define spin_lock_irqsave(l, flags)	do { (flags) = 0; shim_lock(l); } while (0)
#define spin_unlock_irqrestore(l, flags) do { (void)(flags); shim_unlock(l); } while (0)

/* ---- memory */

#define __GFP_DIRECT_RECLAIM	0x400u
#define __GFP_ZERO		0x100u
#define __GFP_NOFAIL		0x8000u
#define __GFP_NOWARN		0x200u
#define GFP_NOWAIT		0u
#define GFP_ATOMIC		0x20u
#define GFP_NOIO		(__GFP_DIRECT_RECLAIM)
#define GFP_KERNEL		(__GFP_DIRECT_RECLAIM | 0x40u | 0x80u)

void *kmalloc(size_t size, gfp_t flags);
void *kzalloc(size_t size, gfp_t flags);
void *kvmalloc(size_t size, gfp_t flags);
void *kvzalloc(size_t size, gfp_t flags);
void *kvcalloc(size_t n, size_t size, gfp_t flags);
void kfree(const void *p);
void kvfree(const void *p);
static inline bool is_vmalloc_addr(const void *p) { (void)p; return false; }

/*
 * Mempools, as the kernel's: min_nr elements are held back for when the
 * allocator fails; mempool_alloc with __GFP_DIRECT_RECLAIM may sleep.
 */
typedef struct {
	size_t size;
	int min_nr;
	int curr_nr;
	void **elements;
} mempool_t;

mempool_t *mempool_create_kmalloc_pool(int min_nr, size_t size);
/* Whether mempool_alloc without reclaim (GFP_NOWAIT) finds memory short: never, always, 1 in 3. */
enum atomic_failures { ATOMIC_FAIL_NEVER, ATOMIC_FAIL_ALWAYS, ATOMIC_FAIL_SOMETIMES };
void shim_set_atomic_failures(enum atomic_failures mode, u32 seed);
void *mempool_alloc(mempool_t *pool, gfp_t flags);
void mempool_free(void *element, mempool_t *pool);
void mempool_destroy(mempool_t *pool);
static inline unsigned int memalloc_noio_save(void) { return 0; }
static inline void memalloc_noio_restore(unsigned int flags) { (void)flags; }

/* ---- lists */

struct list_head {
	struct list_head *next, *prev;
};

#define LIST_HEAD_INIT(name)	{ &(name), &(name) }
#define LIST_HEAD(name)		struct list_head name = LIST_HEAD_INIT(name)

static inline void INIT_LIST_HEAD(struct list_head *l) { l->next = l; l->prev = l; }

static inline void __list_add(struct list_head *n, struct list_head *prev, struct list_head *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

static inline void list_add(struct list_head *n, struct list_head *head)
{
	__list_add(n, head, head->next);
}

static inline void list_add_tail(struct list_head *n, struct list_head *head)
{
	__list_add(n, head->prev, head);
}

static inline void list_del(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	e->next = NULL;
	e->prev = NULL;
}

static inline void list_del_init(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	INIT_LIST_HEAD(e);
}

static inline bool list_empty(const struct list_head *head) { return head->next == head; }

static inline void __list_splice(const struct list_head *list, struct list_head *prev,
				 struct list_head *next)
{
	struct list_head *first = list->next, *last = list->prev;

	first->prev = prev;
	prev->next = first;
	last->next = next;
	next->prev = last;
}

static inline void list_splice_init(struct list_head *list, struct list_head *head)
{
	if (!list_empty(list)) {
		__list_splice(list, head, head->next);
		INIT_LIST_HEAD(list);
	}
}

static inline void list_splice_tail(struct list_head *list, struct list_head *head)
{
	if (!list_empty(list))
		__list_splice(list, head->prev, head);
}

static inline void list_splice_tail_init(struct list_head *list, struct list_head *head)
{
	if (!list_empty(list)) {
		__list_splice(list, head->prev, head);
		INIT_LIST_HEAD(list);
	}
}

#define list_entry(ptr, type, member)		container_of(ptr, type, member)
#define list_first_entry(ptr, type, member)	list_entry((ptr)->next, type, member)
#define list_next_entry(pos, member)		list_entry((pos)->member.next, typeof(*(pos)), member)
#define list_for_each_safe(pos, n, head) \
	for (pos = (head)->next, n = pos->next; pos != (head); pos = n, n = pos->next)
#define list_for_each_entry(pos, head, member) \
	for (pos = list_first_entry(head, typeof(*pos), member); &pos->member != (head); \
	     pos = list_next_entry(pos, member))
#define list_for_each_entry_continue(pos, head, member) \
	for (pos = list_next_entry(pos, member); &pos->member != (head); \
	     pos = list_next_entry(pos, member))
#define list_for_each_entry_safe(pos, n, head, member) \
	for (pos = list_first_entry(head, typeof(*pos), member), n = list_next_entry(pos, member); \
	     &pos->member != (head); pos = n, n = list_next_entry(n, member))

struct hlist_node {
	struct hlist_node *next, **pprev;
};

struct hlist_head {
	struct hlist_node *first;
};

static inline void INIT_HLIST_HEAD(struct hlist_head *h) { h->first = NULL; }
static inline void INIT_HLIST_NODE(struct hlist_node *n) { n->next = NULL; n->pprev = NULL; }

static inline void hlist_add_head(struct hlist_node *n, struct hlist_head *h)
{
	n->next = h->first;
	if (h->first)
		h->first->pprev = &n->next;
	h->first = n;
	n->pprev = &h->first;
}

static inline void hlist_del(struct hlist_node *n)
{
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	n->next = NULL;
	n->pprev = NULL;
}

static inline void hlist_del_init(struct hlist_node *n)
{
	if (n->pprev)
		hlist_del(n);
}

#define hlist_entry_safe(ptr, type, member) \
	({ typeof(ptr) ____ptr = (ptr); ____ptr ? container_of(____ptr, type, member) : NULL; })
#define hlist_for_each_entry(pos, head, member) \
	for (pos = hlist_entry_safe((head)->first, typeof(*(pos)), member); pos; \
	     pos = hlist_entry_safe((pos)->member.next, typeof(*(pos)), member))
#define hlist_for_each_entry_safe(pos, n, head, member) \
	for (pos = hlist_entry_safe((head)->first, typeof(*pos), member); \
	     pos && ({ n = pos->member.next; 1; }); \
	     pos = hlist_entry_safe(n, typeof(*pos), member))

/* ---- block devices and bios */

struct page;		/* a struct page * in a bio_vec is just a byte address here */

struct block_device {
	int shim_kind;		/* SHIM_DISK or SHIM_MAPPED */
	void *shim_obj;
};

#define SHIM_DISK	1
#define SHIM_MAPPED	2

sector_t bdev_nr_sectors(struct block_device *bdev);

#define REQ_OP_BITS	8
#define REQ_OP_MASK	((1u << REQ_OP_BITS) - 1)
#define REQ_OP_READ	0u
#define REQ_OP_WRITE	1u
#define REQ_OP_FLUSH	2u
#define REQ_OP_DISCARD	3u
#define REQ_OP_WRITE_ZEROES 9u
#define REQ_SYNC	(1u << 11)
#define REQ_FUA		(1u << 17)
#define REQ_PREFLUSH	(1u << 18)
#define REQ_RAHEAD	(1u << 19)
#define READ		0
#define WRITE		1

#define BLK_STS_OK	0
#define BLK_STS_NOTSUPP	1
#define BLK_STS_NOSPC	3
#define BLK_STS_IOERR	10

int blk_status_to_errno(blk_status_t status);

struct bvec_iter {
	sector_t bi_sector;
	unsigned int bi_size;
	unsigned int bi_idx;
	unsigned int bi_bvec_done;	/* here: the byte offset into the bio's data */
};

struct bio_vec {
	struct page *bv_page;
	unsigned int bv_len;
	unsigned int bv_offset;
};

struct bio;
typedef void (bio_end_io_t)(struct bio *);

struct bio {
	struct bio *bi_next;
	struct block_device *bi_bdev;
	blk_opf_t bi_opf;
	blk_status_t bi_status;
	struct bvec_iter bi_iter;
	bio_end_io_t *bi_end_io;
	void *bi_private;
	/* shim: the data, flat; the iterator's bi_bvec_done is the offset into it */
	unsigned char *shim_data;
	int shim_alloc;		/* allocated by bio_alloc_clone: bio_put frees it */
};

struct bio_list {
	struct bio *head, *tail;
};

struct bio_set {
	int unused;
};

static inline unsigned int bio_op(const struct bio *bio) { return bio->bi_opf & REQ_OP_MASK; }
static inline unsigned int bio_sectors(const struct bio *bio) { return bio->bi_iter.bi_size >> 9; }
static inline sector_t bio_end_sector(const struct bio *bio)
{
	return bio->bi_iter.bi_sector + bio_sectors(bio);
}
static inline int bio_data_dir(const struct bio *bio) { return (bio_op(bio) & 1) ? WRITE : READ; }
static inline void bio_set_dev(struct bio *bio, struct block_device *bdev) { bio->bi_bdev = bdev; }
static inline unsigned long to_bytes(sector_t n) { return n << SECTOR_SHIFT; }

#define SHIM_PAGE_SIZE	4096u

/* The segment at the iterator: up to the next page boundary of the data, as the kernel's are. */
static inline struct bio_vec shim_bvec(const struct bio *bio, struct bvec_iter it)
{
	uintptr_t at = (uintptr_t)(bio->shim_data + it.bi_bvec_done);
	unsigned int in_page = SHIM_PAGE_SIZE - (at & (SHIM_PAGE_SIZE - 1));
	struct bio_vec bv = {
		(struct page *)(at & ~(uintptr_t)(SHIM_PAGE_SIZE - 1)),
		it.bi_size < in_page ? it.bi_size : in_page,
		(unsigned int)(at & (SHIM_PAGE_SIZE - 1)),
	};

	return bv;
}

static inline void shim_iter_advance(struct bvec_iter *it, unsigned int bytes)
{
	it->bi_sector += bytes >> SECTOR_SHIFT;
	it->bi_size -= bytes;
	it->bi_bvec_done += bytes;
}

/* As the kernel's macro: the step advances by the segment variable's bv_len. */
#define __bio_for_each_segment(bvl, bio, iter, start) \
	for (iter = (start); (iter).bi_size && ((bvl) = shim_bvec((bio), (iter)), 1); \
	     shim_iter_advance(&(iter), (bvl).bv_len))
#define bio_for_each_segment(bvl, bio, iter) __bio_for_each_segment(bvl, bio, iter, (bio)->bi_iter)

static inline void memcpy_to_bvec(struct bio_vec *bv, const char *from)
{
	memcpy((char *)bv->bv_page + bv->bv_offset, from, bv->bv_len);
}

static inline void memcpy_from_bvec(char *to, struct bio_vec *bv)
{
	memcpy(to, (char *)bv->bv_page + bv->bv_offset, bv->bv_len);
}

void bio_endio(struct bio *bio);
static inline void bio_io_error(struct bio *bio)
{
	bio->bi_status = BLK_STS_IOERR;
	bio_endio(bio);
}
void zero_fill_bio(struct bio *bio);
void submit_bio_noacct(struct bio *bio);
struct bio *bio_alloc_clone(struct block_device *bdev, struct bio *src, gfp_t gfp,
			    struct bio_set *bs);
void bio_advance(struct bio *bio, unsigned int bytes);
void bio_put(struct bio *bio);
static inline int bioset_init(struct bio_set *bs, unsigned int size, unsigned int front,
			      int flags)
{
	(void)bs; (void)size; (void)front; (void)flags;
	return 0;
}
static inline void bioset_exit(struct bio_set *bs) { (void)bs; }

static inline void bio_list_init(struct bio_list *bl) { bl->head = bl->tail = NULL; }
static inline bool bio_list_empty(const struct bio_list *bl) { return bl->head == NULL; }

static inline void bio_list_add(struct bio_list *bl, struct bio *bio)
{
	bio->bi_next = NULL;
	if (bl->tail)
		bl->tail->bi_next = bio;
	else
		bl->head = bio;
	bl->tail = bio;
}

static inline struct bio *bio_list_pop(struct bio_list *bl)
{
	struct bio *bio = bl->head;

	if (bio) {
		bl->head = bl->head->bi_next;
		if (!bl->head)
			bl->tail = NULL;
		bio->bi_next = NULL;
	}
	return bio;
}

/* ---- device-mapper (include/linux/device-mapper.h) */

struct dm_table;
struct dm_target;

typedef enum { STATUSTYPE_INFO, STATUSTYPE_TABLE, STATUSTYPE_IMA } status_type_t;

struct dm_dev {
	struct block_device *bdev;
	fmode_t mode;
	char name[128];
	struct dm_dev *shim_next;	/* the target's devices, for the harness */
};

typedef int (*iterate_devices_callout_fn)(struct dm_target *ti, struct dm_dev *dev,
					  sector_t start, sector_t len, void *data);

struct queue_limits {
	unsigned int logical_block_size;
	unsigned int physical_block_size;
	unsigned int io_min;
	unsigned int max_discard_sectors;
	unsigned int max_hw_discard_sectors;
	unsigned int discard_granularity;
};

static inline void blk_limits_io_min(struct queue_limits *limits, unsigned int min)
{
	limits->io_min = min;
}

struct target_type {
	u64 features;
	const char *name;
	struct module *module;
	unsigned int version[3];
	int (*ctr)(struct dm_target *ti, unsigned int argc, char **argv);
	void (*dtr)(struct dm_target *ti);
	int (*map)(struct dm_target *ti, struct bio *bio);
	int (*end_io)(struct dm_target *ti, struct bio *bio, blk_status_t *error);
	void (*presuspend)(struct dm_target *ti);
	void (*postsuspend)(struct dm_target *ti);
	int (*preresume)(struct dm_target *ti);
	void (*resume)(struct dm_target *ti);
	void (*status)(struct dm_target *ti, status_type_t type, unsigned int status_flags,
		       char *result, unsigned int maxlen);
	int (*message)(struct dm_target *ti, unsigned int argc, char **argv, char *result,
		       unsigned int maxlen);
	int (*iterate_devices)(struct dm_target *ti, iterate_devices_callout_fn fn, void *data);
	void (*io_hints)(struct dm_target *ti, struct queue_limits *limits);
	struct list_head list;
};

struct dm_target {
	struct dm_table *table;
	struct target_type *type;
	sector_t begin;
	sector_t len;
	u32 max_io_len;
	unsigned int num_flush_bios;
	unsigned int num_discard_bios;
	unsigned int num_secure_erase_bios;
	unsigned int num_write_zeroes_bios;
	unsigned int per_io_data_size;
	void *private;
	char *error;
	bool flush_supported;
	bool discards_supported;
	bool accounts_remapped_io;
	/* shim */
	const char *shim_name;		/* the type as the table names it ("linear") */
	int shim_line;			/* its line in the table text, for messages */
	struct dm_dev *shim_devs;
};

#define DM_MAPIO_SUBMITTED	0
#define DM_MAPIO_REMAPPED	1
#define DM_MAPIO_REQUEUE	2
#define DM_MAPIO_KILL		4
#define DM_ENDIO_DONE		0
#define DM_ENDIO_INCOMPLETE	1

#define DMEMIT(x...) sz += ((sz >= maxlen) ? 0 : scnprintf(result + sz, maxlen - sz, x))
#define dm_target_offset(ti, sector) ((sector) - (ti)->begin)

int dm_register_target(struct target_type *t);
void dm_unregister_target(struct target_type *t);
int dm_get_device(struct dm_target *ti, const char *path, fmode_t mode, struct dm_dev **result);
void dm_put_device(struct dm_target *ti, struct dm_dev *d);
fmode_t dm_table_get_mode(struct dm_table *t);
sector_t dm_table_get_size(struct dm_table *t);
void dm_table_event(struct dm_table *t);
int dm_suspended(struct dm_target *ti);
int dm_set_target_max_io_len(struct dm_target *ti, sector_t len);
void *dm_per_bio_data(struct bio *bio, size_t data_size);
struct bio *dm_bio_from_per_bio_data(void *data, size_t data_size);
unsigned int dm_bio_get_target_bio_nr(const struct bio *bio);
void dm_accept_partial_bio(struct bio *bio, unsigned int n_sectors);
void dm_submit_bio_remap(struct bio *clone, struct bio *tgt_clone);

/* ---- dm-io (include/linux/dm-io.h) */

struct dm_io_region {
	struct block_device *bdev;
	sector_t sector;
	sector_t count;
};

struct page_list;

enum dm_io_mem_type {
	DM_IO_PAGE_LIST,
	DM_IO_BIO,
	DM_IO_VMA,
	DM_IO_KMEM,
};

struct dm_io_memory {
	enum dm_io_mem_type type;
	unsigned int offset;
	union {
		struct page_list *pl;
		struct bio *bio;
		void *vma;
		void *addr;
	} ptr;
};

typedef void (*io_notify_fn)(unsigned long error, void *context);

struct dm_io_notify {
	io_notify_fn fn;
	void *context;
};

struct dm_io_client {
	int unused;
};

struct dm_io_request {
	blk_opf_t bi_opf;
	struct dm_io_memory mem;
	struct dm_io_notify notify;
	struct dm_io_client *client;
};

struct dm_io_client *dm_io_client_create(void);
void dm_io_client_destroy(struct dm_io_client *client);
int dm_io(struct dm_io_request *req, unsigned int num_regions, struct dm_io_region *region,
	  unsigned long *sync_error_bits, unsigned short ioprio);

/* ---- workqueues, wait queues, timers, jiffies */

struct work_struct;
typedef void (*work_func_t)(struct work_struct *work);

struct work_struct {
	work_func_t func;
	bool pending;
	struct list_head entry;
};

struct workqueue_struct {
	const char *name;
};

#define WQ_MEM_RECLAIM	(1u << 3)
#define INIT_WORK(w, f)	do { (w)->func = (f); (w)->pending = false; INIT_LIST_HEAD(&(w)->entry); } while (0)
struct workqueue_struct *alloc_ordered_workqueue(const char *name, unsigned int flags);
bool queue_work(struct workqueue_struct *wq, struct work_struct *work);
void flush_workqueue(struct workqueue_struct *wq);
void destroy_workqueue(struct workqueue_struct *wq);

typedef struct {
	int unused;
} wait_queue_head_t;

static inline void init_waitqueue_head(wait_queue_head_t *wq) { (void)wq; }
static inline void wake_up_all(wait_queue_head_t *wq) { (void)wq; }
/* Sleeping here means: let the harness run everything it can, then the condition must hold. */
bool shim_wait(bool (*cond)(void *arg), void *arg);
#define wait_event_timeout(wq, condition, timeout) \
	({ shim_might_sleep("wait_event_timeout"); \
	   shim_run_until_idle(); \
	   if (!(condition)) \
		shim_fatal("wait_event_timeout(%s): never true once everything ran (a deadlock)", \
			   #condition); \
	   (long)1; })
void shim_run_until_idle(void);

extern unsigned long jiffies;

static inline unsigned long msecs_to_jiffies(unsigned int ms) { return ms; }
#define time_after_eq(a, b)	((long)((a) - (b)) >= 0)
#define time_before(a, b)	((long)((a) - (b)) < 0)

struct timer_list {
	void (*function)(struct timer_list *t);
	unsigned long expires;
	bool pending;
	struct list_head entry;
};

void timer_setup(struct timer_list *t, void (*fn)(struct timer_list *t), unsigned int flags);
int mod_timer(struct timer_list *t, unsigned long expires);
int del_timer_sync(struct timer_list *t);
static inline bool timer_pending(const struct timer_list *t) { return t->pending; }
#define from_timer(var, t, field)	container_of(t, typeof(*var), field)

#endif /* DMK_KSHIM_H */
