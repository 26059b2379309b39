// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Runs one vector through the C targets: the host of test/vectors/runners/
 * core.js and the checks of test/vectors/lib/drive.js, in C. Each statement
 * runs to completion (I/O inside begin/end is submitted together first);
 * when requests wait only for time, the clock jumps to the next timer, as
 * the core's test host does. At the end every device is removed and the
 * targets must have freed all they allocated.
 */
#include "run.h"
#include "../io.h"
#include "../snapshot/pending.h"

struct hio {
	struct bio bio;
	bool done;
	int err;
	unsigned char *buf;
};

struct runner {
	struct vector *v;
	struct hio **ios;	/* requests of the statement (or block) in progress */
	int nios;
	char *detail;
	size_t detail_len;
	jmp_buf bail;
};

static const struct {
	const char *name;
	int err;
} errno_names[] = {
	{ "EPERM", EPERM }, { "ENOENT", ENOENT }, { "EIO", EIO }, { "ENXIO", ENXIO },
	{ "ENOMEM", ENOMEM }, { "EBUSY", EBUSY }, { "EEXIST", EEXIST }, { "ENODEV", ENODEV },
	{ "EINVAL", EINVAL }, { "ENOSPC", ENOSPC }, { "EOPNOTSUPP", EOPNOTSUPP },
};

static const char *errno_name(int err)
{
	static char other[16];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(errno_names); i++) {
		if (errno_names[i].err == err)
			return errno_names[i].name;
	}
	snprintf(other, sizeof(other), "E%d", err);
	return other;
}

__printf(3, 4) static void __attribute__((noreturn))
step_fail(struct runner *r, const struct vstep *st, const char *fmt, ...)
{
	size_t n = snprintf(r->detail, r->detail_len, "line %d: %s: ", st->line, st->text);
	va_list ap;

	va_start(ap, fmt);
	if (n < r->detail_len)
		vsnprintf(r->detail + n, r->detail_len - n, fmt, ap);
	va_end(ap);
	longjmp(r->bail, 1);
}

/* checkOutcome: err is 0 for success, else a positive errno with message msg. */
static void check_outcome(struct runner *r, const struct vstep *st, int err, const char *msg)
{
	if (st->expect != E_ERRNO) {
		if (err)
			step_fail(r, st, "expected success, got %s%s%s", errno_name(err),
				  msg && *msg ? " " : "", msg ? msg : "");
		return;
	}
	if (!err)
		step_fail(r, st, "expected %s%s%s, got success", st->errno_name,
			  st->message ? " " : "", st->message ? st->message : "");
	if (strcmp(errno_name(err), st->errno_name))
		step_fail(r, st, "expected %s, got %s%s%s", st->errno_name, errno_name(err),
			  msg && *msg ? " " : "", msg ? msg : "");
	if (st->message && strcmp(st->message, msg ? msg : ""))
		step_fail(r, st, "expected message '%s', got '%s'", st->message, msg ? msg : "");
}

static struct hdev *find_dev(struct runner *r, const struct vstep *st, int *err)
{
	struct hdev *d = dmc_find(st->dev);

	*err = 0;
	if (!d) {
		snprintf(dmc_msg, sizeof(dmc_msg), "device %s does not exist", st->dev);
		*err = ENXIO;
	}
	(void)r;
	return d;
}

/* ---- I/O */

static void hio_done(struct bio *bio)
{
	struct hio *io = container_of(bio, struct hio, bio);

	io->done = true;
	io->err = blk_status_to_errno(bio->bi_status);
}

/* host.io(): starts a request, or fails it at once as dm_submit rejects it. */
static struct hio *start_io(struct runner *r, const struct vstep *st)
{
	struct hio *io = calloc(1, sizeof(*io));
	struct hdev *dev = find_dev(r, st, &io->err);
	unsigned int op = REQ_OP_READ;
	size_t bytes = st->count << SECTOR_SHIFT;

	if (!dev) {
		io->done = true;
		return io;
	}
	switch (st->op) {
	case V_WRITE:
		op = REQ_OP_WRITE;
		break;
	case V_FLUSH:
		op = REQ_OP_FLUSH;
		break;
	case V_DISCARD:
		op = REQ_OP_DISCARD;
		break;
	case V_ZEROES:
		op = REQ_OP_WRITE_ZEROES;
		break;
	default:
		break;
	}
	io->err = dmc_range_error(dev, op, st->op == V_FLUSH ? 0 : st->sector,
				  st->op == V_FLUSH ? 0 : st->count);
	if (io->err) {
		io->done = true;
		return io;
	}
	io->buf = calloc(1, bytes ? bytes : 1);
	if (st->op == V_WRITE)
		pattern_fill(io->buf, bytes, st->seed);
	io->bio.bi_bdev = &dev->bdev;
	io->bio.bi_opf = op == REQ_OP_FLUSH ? REQ_OP_WRITE | REQ_PREFLUSH | REQ_SYNC : op;
	if (st->fua)
		io->bio.bi_opf |= REQ_FUA;
	if (st->op != V_FLUSH) {
		io->bio.bi_iter.bi_sector = st->sector;
		io->bio.bi_iter.bi_size = (unsigned int)bytes;
	}
	io->bio.shim_data = io->buf;
	io->bio.bi_end_io = hio_done;
	dmc_submit(dev, &io->bio);
	return io;
}

/* Runs the world until the request is done; time jumps to the next timer when nothing else moves. */
static void wait_io(struct hio *io)
{
	while (!io->done && (pump_step() || pump_fire_next_timer()))
		;
}

static void check_io(struct runner *r, const struct vstep *st, struct hio *io)
{
	char hex[65];

	if (!io->done)
		step_fail(r, st, "the request never completed");
	if (io->err) {
		check_outcome(r, st, io->err, NULL);
		return;
	}
	if (st->expect == E_ERRNO)
		step_fail(r, st, "expected %s, got success", st->errno_name);
	if (st->expect == E_SHA256) {
		sha256_hex(io->buf, st->count << SECTOR_SHIFT, hex);
		if (strcmp(hex, st->hex))
			step_fail(r, st, "expected sha256:%s, got sha256:%s", st->hex, hex);
	}
}

static void free_io(struct hio *io)
{
	free(io->buf);
	free(io);
}

/* ---- status text as vectors compare it: trailing blanks cut, lines joined by " | " */

static void normalize(char *text, char *out, size_t len)
{
	char *line, *next;
	size_t used = 0, n, keep = 0;

	out[0] = '\0';
	for (line = text; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		n = strlen(line);
		while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
			line[--n] = '\0';
		used += snprintf(out + used, used < len ? len - used : 0, "%s%s",
				 line == text ? "" : " | ", line);
		if (n)
			keep = used;
	}
	if (keep < len)
		out[keep] = '\0';
}

/* ---- control statements */

static int do_create(const struct vstep *st)
{
	struct hdev *dev;
	char why[MSG_LEN];
	int r = dmc_create(st->dev, &dev);

	if (r)
		return -r;
	r = dmc_load(dev, st->table);
	if (r) {
		snprintf(why, sizeof(why), "%s", dmc_msg);
		dmc_remove(dev);	/* dmsetup create removes a device whose table failed */
		snprintf(dmc_msg, sizeof(dmc_msg), "%s", why);
		return -r;
	}
	return -dmc_resume(dev);
}

static int wait_merge(struct runner *r, const struct vstep *st, struct hdev *dev)
{
	char text[4096], *w[8], first[4096];
	unsigned long long a, b, c;
	int n;

	for (;;) {
		pump_until_idle();
		dmc_status(dev, text, sizeof(text));
		if (strchr(text, '\n'))
			*strchr(text, '\n') = '\0';
		snprintf(first, sizeof(first), "%s", text);
		n = 0;
		for (char *s = strtok(text, " "); s && n < 8; s = strtok(NULL, " "))
			w[n++] = s;
		if (n < 3 || strcmp(w[2], "snapshot-merge")) {
			snprintf(dmc_msg, sizeof(dmc_msg),
				 "%s has no snapshot-merge segment at sector 0: '%s'", dev->name, first);
			return EINVAL;
		}
		if (n == 4 && (!strcmp(w[3], "Invalid")))
			goto failed;
		if (n == 5 && !strcmp(w[3], "Merge") && !strcmp(w[4], "failed"))
			goto failed;
		if (n != 5 || sscanf(w[3], "%llu/%llu", &a, &b) != 2 || sscanf(w[4], "%llu", &c) != 1) {
			snprintf(dmc_msg, sizeof(dmc_msg), "cannot read the merge progress of %s: '%s'",
				 dev->name, first);
			return EIO;
		}
		if (a == c)
			return 0;
		if (!pump_step() && !pump_fire_next_timer()) {
			snprintf(dmc_msg, sizeof(dmc_msg),
				 "merge of %s stopped before it finished: '%s'", dev->name, first);
			return EIO;
		}
	}
failed:
	snprintf(dmc_msg, sizeof(dmc_msg), "merge of %s failed", dev->name);
	return EIO;
	(void)r;
	(void)st;
}

static void run_control(struct runner *r, const struct vstep *st)
{
	char text[8192], got[8192], hex[65];
	struct hdisk *disk;
	struct hdev *dev = NULL;
	int err = 0;

	if (st->op != V_CREATE && st->op != V_HASH && st->op != V_TIME && st->op != V_KERNEL_LOG)
		dev = find_dev(r, st, &err);
	switch (st->op) {
	case V_CREATE:
		err = do_create(st);
		break;
	case V_RELOAD:
		if (dev)
			err = -dmc_load(dev, st->table);
		break;
	case V_SUSPEND:
		if (dev)
			err = -dmc_suspend(dev);
		break;
	case V_RESUME:
		if (dev)
			err = -dmc_resume(dev);
		break;
	case V_REMOVE:
		if (dev)
			err = -dmc_remove(dev);
		break;
	case V_MESSAGE:
		if (dev)
			err = -dmc_message(dev, st->sector, st->nwords, st->words);
		break;
	case V_STATUS:
	case V_TABLE_IS:
		if (!dev)
			step_fail(r, st, "no device %s", st->dev);
		pump_until_idle();
		if (st->op == V_STATUS)
			dmc_status(dev, text, sizeof(text));
		else
			dmc_table(dev, text, sizeof(text));
		normalize(text, got, sizeof(got));
		if (strcmp(got, st->etext))
			step_fail(r, st, "expected '%s', got '%s'", st->etext, got);
		return;
	case V_HASH:
		pump_until_idle();
		disk = disk_find(st->disk);
		sha256_hex(disk->bytes, disk->sectors << SECTOR_SHIFT, hex);
		if (strcmp(hex, st->hex))
			step_fail(r, st, "expected sha256:%s, got sha256:%s", st->hex, hex);
		return;
	case V_WAIT_MERGE:
		if (dev)
			err = wait_merge(r, st, dev);
		break;
	case V_TIME:
		pump_set_time(st->ms);
		pump_until_idle();
		return;
	case V_KERNEL_LOG:
		pump_until_idle();
		shim_take_kernel_log(got, sizeof(got));
		if (strcmp(got, st->etext))
			step_fail(r, st, "expected '%s', got '%s'", st->etext, got);
		return;
	default:
		step_fail(r, st, "the harness does not know this statement");
	}
	check_outcome(r, st, err, err ? dmc_msg : NULL);
	pump_until_idle();
}

static void forget_ios(struct runner *r)
{
	int i;

	for (i = 0; i < r->nios; i++) {
		if (r->ios[i])
			free_io(r->ios[i]);
	}
	free(r->ios);
	r->ios = NULL;
	r->nios = 0;
}

static void run_group(struct runner *r, const struct vstep *g)
{
	struct hio **ios = calloc(g->nsteps, sizeof(*ios));
	int i;

	r->ios = ios;
	r->nios = g->nsteps;
	for (i = 0; i < g->nsteps; i++) {
		if (vector_is_io(g->steps[i].op))
			ios[i] = start_io(r, &g->steps[i]);
		else
			run_control(r, &g->steps[i]);
	}
	for (i = 0; i < g->nsteps; i++) {
		if (ios[i])
			wait_io(ios[i]);
	}
	for (i = 0; i < g->nsteps; i++) {
		if (ios[i])
			check_io(r, &g->steps[i], ios[i]);
	}
	forget_ios(r);
}

static void run_steps(struct runner *r)
{
	struct hio *io;
	int i;

	for (i = 0; i < r->v->nsteps; i++) {
		const struct vstep *st = &r->v->steps[i];

		if (st->op == V_GROUP) {
			run_group(r, st);
		} else if (vector_is_io(st->op)) {
			io = start_io(r, st);
			r->ios = calloc(1, sizeof(*r->ios));
			r->ios[0] = io;
			r->nios = 1;
			wait_io(io);
			check_io(r, st, io);
			forget_ios(r);
			pump_until_idle();
		} else {
			run_control(r, st);
		}
	}
}

static long allocations_before;

void world_begin(const struct run_options *o)
{
	pump_reset(o);
	shim_take_kernel_log(NULL, 0);
	allocations_before = shim_live_allocations();
	dmk_reserve_low = o->reserve;
	shim_set_atomic_failures(o->atomic, o->seed);
	if (dmk_engine_init())
		shim_fatal("the engine did not start");
	dmc_register_targets();
}

static void setup(const struct vector *v, const struct run_options *o)
{
	int i;

	world_begin(o);
	for (i = 0; i < v->ndisks; i++) {
		const struct vdisk *vd = &v->disks[i];
		struct hdisk *d = disk_add(vd->name, vd->sectors);

		d->aligned = vd->aligned;
		if (vd->has_seed)
			pattern_fill(d->bytes, vd->sectors << SECTOR_SHIFT, vd->seed);
	}
}

/* Removes everything; what was left over or broken along the way fails the run. */
bool world_end(char *detail, size_t len, bool report)
{
	long leaked;
	const char *problems;

	pump_until_idle();
	dmc_teardown();
	dmk_engine_exit();
	dmc_unregister_targets();
	disks_free();
	leaked = shim_live_allocations() - allocations_before;
	problems = violations();
	if (!report)
		return true;
	if (problems) {
		snprintf(detail, len, "%s", problems);
		return false;
	}
	if (leaked) {
		snprintf(detail, len, "%ld allocation(s) of the targets were never freed", leaked);
		return false;
	}
	return true;
}

bool run_vector(struct vector *v, const struct run_options *o, char *detail, size_t len)
{
	struct runner r = { .v = v, .detail = detail, .detail_len = len };

	setup(v, o);
	if (setjmp(r.bail)) {
		world_end(NULL, 0, false);
		forget_ios(&r);	/* after teardown: a request still in flight is failed or done by then */
		return false;
	}
	run_steps(&r);
	return world_end(detail, len, true);
}
