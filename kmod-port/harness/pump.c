// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The block layer, the disks and the clock, for the harness.
 *
 * Bios that reach a disk wait in a queue. pump_step() executes the whole
 * queue at once in FIFO order; in the reversed order it completes only the
 * newest bio each round (a stack: an old bio waits while anything newer can
 * move); in the shuffled order the whole queue in a seeded shuffle. In the shuffled order a
 * device is also slow at random: about one bio in three stays queued for a
 * later round (at least one runs each round), so a bio can still be in
 * flight while much later work completes around it. Work items (the
 * engine's worker, timers' follow-ups) run one at a time between batches;
 * in the reversed order they run before the disks, in the others after.
 * The stalling order is FIFO, and the CPU that submits a request stalls
 * after mapping its first piece (pump_stall(), below).
 * Time only moves when the harness says so: `time MS` in a vector, or a
 * jump to the next timer when requests wait for nothing else.
 */
#include "harness.h"

static struct hdisk *disks;
static struct bio **queue;
static size_t queued, queue_cap;
static LIST_HEAD(works);
static LIST_HEAD(timers);
static struct run_options opts;
static u32 shuffle_state;
static char problems[4096];
static size_t problems_len;

unsigned long jiffies;

void violation(const char *fmt, ...)
{
	va_list ap;

	if (problems_len >= sizeof(problems) - 4)
		return;
	if (problems_len)
		problems_len += snprintf(problems + problems_len, sizeof(problems) - problems_len, "; ");
	va_start(ap, fmt);
	problems_len += vsnprintf(problems + problems_len, sizeof(problems) - problems_len, fmt, ap);
	va_end(ap);
	if (problems_len >= sizeof(problems))
		problems_len = sizeof(problems) - 1;
}

const char *violations(void)
{
	return problems_len ? problems : NULL;
}

/* ---- disks */

struct hdisk *disk_add(const char *name, u64 sectors)
{
	struct hdisk *d = calloc(1, sizeof(*d)), **tail;

	snprintf(d->name, sizeof(d->name), "%s", name);
	d->sectors = sectors;
	d->bytes = calloc(sectors ? sectors : 1, 512);
	if (!d->bytes)
		shim_fatal("cannot allocate disk %s of %llu sectors", name, (unsigned long long)sectors);
	d->bdev.shim_kind = SHIM_DISK;
	d->bdev.shim_obj = d;
	for (tail = &disks; *tail; tail = &(*tail)->next)
		;
	*tail = d;
	return d;
}

struct hdisk *disk_find(const char *name)
{
	struct hdisk *d;

	for (d = disks; d; d = d->next) {
		if (!strcmp(d->name, name))
			return d;
	}
	return NULL;
}

void disks_free(void)
{
	struct hdisk *d;

	while (disks) {
		d = disks;
		disks = d->next;
		free(d->bytes);
		free(d);
	}
}

/* Inside a completion, a work item or a timer: what runs there must not start a stall. */
static int in_callback;

/* What a disk does with a bio; past the end it fails, as bio_check_eod makes it. */
static void disk_complete(struct bio *bio)
{
	struct hdisk *d = bio->bi_bdev->shim_obj;
	unsigned int op = bio_op(bio);
	u64 sector = bio->bi_iter.bi_sector, count = bio_sectors(bio);
	unsigned char *data = bio->shim_data + bio->bi_iter.bi_bvec_done;
	size_t off = sector << SECTOR_SHIFT, len = count << SECTOR_SHIFT;

	bio->bi_status = BLK_STS_OK;
	if (count && (sector > d->sectors || count > d->sectors - sector)) {
		bio->bi_status = BLK_STS_IOERR;
		bio_endio(bio);
		return;
	}
	if (d->aligned && count && (op == REQ_OP_WRITE || op == REQ_OP_WRITE_ZEROES) &&
	    (sector % d->aligned || count % d->aligned))
		violation("%s %llu+%llu on %s is not aligned to %u sectors",
			  op == REQ_OP_WRITE ? "WRITE" : "WRITE_ZEROES", (unsigned long long)sector,
			  (unsigned long long)count, d->name, d->aligned);
	switch (op) {
	case REQ_OP_READ:
		memcpy(data, d->bytes + off, len);
		break;
	case REQ_OP_WRITE:
		if (len)
			memcpy(d->bytes + off, data, len);
		break;
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		memset(d->bytes + off, 0, len);
		break;
	default:
		bio->bi_status = BLK_STS_IOERR;
		break;
	}
	bio_endio(bio);
}

static void disk_execute(struct bio *bio)
{
	in_callback++;
	disk_complete(bio);
	in_callback--;
}

sector_t shim_disk_sectors(struct hdisk *d)
{
	return d->sectors;
}

/* ---- the queue and the order */

void pump_reset(const struct run_options *o)
{
	opts = *o;
	shuffle_state = o->seed;
	queued = 0;
	INIT_LIST_HEAD(&works);
	INIT_LIST_HEAD(&timers);
	jiffies = 0;
	problems_len = 0;
	problems[0] = '\0';
}

void pump_queue_disk_bio(struct bio *bio)
{
	if (queued == queue_cap) {
		queue_cap = queue_cap ? queue_cap * 2 : 64;
		queue = realloc(queue, queue_cap * sizeof(*queue));
	}
	queue[queued++] = bio;
}

void pump_queue_work(struct work_struct *work)
{
	list_add_tail(&work->entry, &works);
}

static void order_batch(struct bio **batch, size_t n)
{
	struct bio *tmp;
	size_t i, j;

	if (opts.order == ORDER_SHUFFLE) {
		for (i = n; i > 1; i--) {
			shuffle_state = shuffle_state * 1664525u + 1013904223u;
			j = shuffle_state % i;
			tmp = batch[i - 1];
			batch[i - 1] = batch[j];
			batch[j] = tmp;
		}
	}
}

static bool run_one_work(void)
{
	struct work_struct *w;

	if (list_empty(&works))
		return false;
	w = list_first_entry(&works, struct work_struct, entry);
	list_del_init(&w->entry);
	w->pending = false;
	in_callback++;
	w->func(w);
	in_callback--;
	return true;
}

static u32 next_random(void)
{
	shuffle_state = shuffle_state * 1664525u + 1013904223u;
	return shuffle_state >> 8;
}

static bool run_disk_batch(void)
{
	struct bio **batch;
	size_t n = queued, i, run = 0;

	if (!n)
		return false;
	if (opts.order == ORDER_REVERSE) {
		disk_execute(queue[--queued]);
		return true;
	}
	batch = malloc(n * sizeof(*batch));
	memcpy(batch, queue, n * sizeof(*batch));
	queued = 0;
	order_batch(batch, n);
	/* The shuffled order lets some bios wait for a later round (never all of them). */
	for (i = 0; i < n; i++) {
		if (opts.order == ORDER_SHUFFLE && (run > 0 || i + 1 < n) && next_random() % 3 == 0)
			pump_queue_disk_bio(batch[i]);
		else
			batch[run++] = batch[i];
	}
	for (i = 0; i < run; i++)
		disk_execute(batch[i]);
	free(batch);
	return true;
}

/* The disks complete the reads they hold, in FIFO order; writes stay queued. */
static void run_queued_reads(void)
{
	size_t n = queued, i, kept = 0;
	struct bio **batch;

	if (!n)
		return;
	batch = malloc(n * sizeof(*batch));
	memcpy(batch, queue, n * sizeof(*batch));
	queued = 0;
	for (i = 0; i < n; i++) {
		if (bio_op(batch[i]) == REQ_OP_READ)
			batch[kept++] = batch[i];
		else
			pump_queue_disk_bio(batch[i]);
	}
	for (i = 0; i < kept; i++)
		disk_execute(batch[i]);
	free(batch);
}

/*
 * The stalling order: the CPU that maps a request stalls after its first
 * piece while the others work. The worker runs, the disks complete the
 * reads they hold, and the worker runs again (a snapshot copy has read its
 * chunk and issued its write) before the next piece is mapped. That is as
 * long as a stall may last with Linux's order kept (every piece of a
 * request mapped before any copy it started completes): the copy's write,
 * a whole-chunk write and any commit wait until the request is all mapped.
 * Work that waits for the worker instead of being done in map (the old
 * reserve's starved path) is overtaken here, as it was in the kernel.
 */
void pump_stall(void)
{
	if (opts.order != ORDER_STALL || in_callback)
		return;
	while (run_one_work())
		;
	run_queued_reads();
	while (run_one_work())
		;
}

bool pump_step(void)
{
	if (opts.order == ORDER_REVERSE)
		return run_one_work() || run_disk_batch();
	return run_disk_batch() || run_one_work();
}

void pump_until_idle(void)
{
	while (pump_step())
		;
}

void shim_run_until_idle(void)
{
	pump_until_idle();
}

/* ---- timers and the clock */

void pump_add_timer(struct timer_list *t)
{
	list_add_tail(&t->entry, &timers);
}

void pump_del_timer(struct timer_list *t)
{
	list_del_init(&t->entry);
}

static void fire_due(void)
{
	struct timer_list *t;
	bool fired = true;

	while (fired) {
		fired = false;
		list_for_each_entry(t, &timers, entry) {
			if (time_after_eq(jiffies, t->expires)) {
				list_del_init(&t->entry);
				t->pending = false;
				in_callback++;
				t->function(t);
				in_callback--;
				fired = true;
				break;
			}
		}
	}
}

void pump_set_time(unsigned long ms)
{
	if (ms > jiffies)
		jiffies = ms;
	fire_due();
}

bool pump_fire_next_timer(void)
{
	struct timer_list *t;
	unsigned long next = 0;
	bool any = false;

	list_for_each_entry(t, &timers, entry) {
		if (!any || time_before(t->expires, next))
			next = t->expires;
		any = true;
	}
	if (!any)
		return false;
	pump_set_time(next);
	return true;
}
