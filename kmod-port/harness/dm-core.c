// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Device-mapper for the harness: mapped devices, tables, and requests cloned
 * and split over a table's targets (Linux drivers/md/dm.c, dm-table.c,
 * dm-ioctl.c). Semantics and messages follow the core (core-as/index.ts,
 * table.ts, io.ts, devref.ts) so vectors compare the same text; where the
 * core and Linux order things differently, this follows Linux, since the
 * targets under test are kernel code (a table is destroyed after the one
 * replacing it resumed; a killed clone does not see end_io).
 */
#include "harness.h"
#include "../targets/targets.h"

char dmc_msg[MSG_LEN];

static struct hdev *devices;
static LIST_HEAD(target_types);
/* The device whose table is being constructed: a table may not stack on its own device. */
static struct hdev *loading_for;

__printf(2, 3) static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dmc_msg, sizeof(dmc_msg), fmt, ap);
	va_end(ap);
	return -err;
}

/* ---- the target registry (dm_register_target) */

int dm_register_target(struct target_type *t)
{
	list_add_tail(&t->list, &target_types);
	return 0;
}

void dm_unregister_target(struct target_type *t)
{
	list_del(&t->list);
}

/* target-names.json: a type name no longer than 15 bytes (dm-ioctl's DM_MAX_TYPE_NAME). */
static const struct {
	const char *linux_name;
	const char *module_name;
} renamed[] = {
	{ "snapshot-origin", "dmkit-origin" },
	{ "snapshot-merge", "dmkit-merge" },
};

static struct target_type *find_type(const char *name)
{
	struct target_type *t;
	char full[160];
	size_t i;

	/* Tables name targets as Linux does; the module registers them as dmkit-<name>. */
	snprintf(full, sizeof(full), "dmkit-%s", name);
	for (i = 0; i < ARRAY_SIZE(renamed); i++) {
		if (!strcmp(name, renamed[i].linux_name))
			snprintf(full, sizeof(full), "%s", renamed[i].module_name);
	}
	list_for_each_entry(t, &target_types, list) {
		if (!strcmp(t->name, full))
			return t;
	}
	return NULL;
}

static struct target_type *all_types[] = {
	&dmk_linear_target, &dmk_striped_target, &dmk_zero_target, &dmk_error_target,
	&dmk_snapshot_target, &dmk_origin_target, &dmk_merge_target, &dmk_ebs_target,
	&dmk_flakey_target, &dmk_delay_target,
};

/* --target-names: "<name tables use> <name the module registers>", one per target. */
void dmc_print_target_names(void)
{
	size_t i, k;

	for (i = 0; i < ARRAY_SIZE(all_types); i++) {
		const char *module = all_types[i]->name, *linux_name = module + strlen("dmkit-");

		for (k = 0; k < ARRAY_SIZE(renamed); k++) {
			if (!strcmp(module, renamed[k].module_name))
				linux_name = renamed[k].linux_name;
		}
		printf("%s %s\n", linux_name, module);
	}
}

void dmc_register_targets(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(all_types); i++)
		dm_register_target(all_types[i]);
}

void dmc_unregister_targets(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(all_types); i++)
		dm_unregister_target(all_types[i]);
}

/* ---- devices a target maps onto (dm_get_device; core-as/devref.ts resolveDevice) */

static bool table_uses(struct dm_table *t, struct hdev *dev);

static bool depends_on(struct hdev *d, struct hdev *dev)
{
	return (d->live && table_uses(d->live, dev)) || (d->inactive && table_uses(d->inactive, dev));
}

static bool table_uses(struct dm_table *t, struct hdev *dev)
{
	struct dm_dev *dd;
	struct hdev *m;
	unsigned int i;

	for (i = 0; i < t->n; i++) {
		for (dd = t->targets[i].shim_devs; dd; dd = dd->shim_next) {
			if (dd->bdev->shim_kind != SHIM_MAPPED)
				continue;
			m = dd->bdev->shim_obj;
			if (m == dev || depends_on(m, dev))
				return true;
		}
	}
	return false;
}

static char get_device_error[MSG_LEN];

int dm_get_device(struct dm_target *ti, const char *path, fmode_t mode, struct dm_dev **result)
{
	struct hdev *mapped = dmc_find(path);
	struct block_device *bdev;
	struct hdisk *disk;
	struct dm_dev *d;

	shim_might_sleep("dm_get_device");
	if (mapped) {
		if (!mapped->live) {
			snprintf(get_device_error, sizeof(get_device_error),
				 "device %s has no live table", path);
			ti->error = get_device_error;
			return -ENODEV;
		}
		if (loading_for && (mapped == loading_for || depends_on(mapped, loading_for))) {
			snprintf(get_device_error, sizeof(get_device_error),
				 "device %s would stack on itself", path);
			ti->error = get_device_error;
			return -EINVAL;
		}
		bdev = &mapped->bdev;
	} else {
		disk = disk_find(path);
		if (!disk) {
			snprintf(get_device_error, sizeof(get_device_error), "unknown device %s", path);
			ti->error = get_device_error;
			return -ENODEV;
		}
		bdev = &disk->bdev;
	}
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	d->bdev = bdev;
	d->mode = mode;
	snprintf(d->name, sizeof(d->name), "%s", path);
	d->shim_next = ti->shim_devs;
	ti->shim_devs = d;
	*result = d;
	return 0;
}

void dm_put_device(struct dm_target *ti, struct dm_dev *d)
{
	struct dm_dev **p;

	for (p = &ti->shim_devs; *p; p = &(*p)->shim_next) {
		if (*p == d) {
			*p = d->shim_next;
			kfree(d);
			return;
		}
	}
	shim_fatal("dm_put_device: %s is not a device of this target", d->name);
}

fmode_t dm_table_get_mode(struct dm_table *t)
{
	(void)t;
	return 3;	/* FMODE_READ | FMODE_WRITE */
}

/* The device of the target's table is suspended (dm_suspended_md). */
int dm_suspended(struct dm_target *ti)
{
	return ti->table->md->suspended;
}

sector_t dm_table_get_size(struct dm_table *t)
{
	return t->size;
}

/* A target raised a device event (a snapshot went invalid): counted on its device. */
void dm_table_event(struct dm_table *t)
{
	if (t->md)
		t->md->events++;
}

int dm_set_target_max_io_len(struct dm_target *ti, sector_t len)
{
	if (len > U32_MAX)
		return -EINVAL;
	ti->max_io_len = (u32)len;
	return 0;
}

/* ---- tables (core-as/table.ts) */

static void table_destroy_targets(struct dm_table *t)
{
	unsigned int i;

	for (i = 0; i < t->n; i++) {
		struct dm_target *ti = &t->targets[i];

		if (ti->type->dtr)
			ti->type->dtr(ti);
		if (ti->shim_devs)
			violation("%s: dtr left %s open", ti->shim_name, ti->shim_devs->name);
		free((void *)ti->shim_name);
	}
	free(t->targets);
	free(t);
}

static void table_users(struct dm_table *t, int delta)
{
	struct hdev *seen[64];
	unsigned int nseen = 0, i, k;
	struct dm_dev *dd;
	struct hdev *m;

	for (i = 0; i < t->n; i++) {
		for (dd = t->targets[i].shim_devs; dd; dd = dd->shim_next) {
			if (dd->bdev->shim_kind != SHIM_MAPPED)
				continue;
			m = dd->bdev->shim_obj;
			for (k = 0; k < nseen && seen[k] != m; k++)
				;
			if (k < nseen || nseen == ARRAY_SIZE(seen))
				continue;
			seen[nseen++] = m;
			m->users += delta;
		}
	}
}

/* The table stops being live or inactive: its devices are free again, its targets destroyed. */
static void table_retire(struct dm_table *t)
{
	if (t->retired)
		return;
	t->retired = true;
	table_users(t, -1);
	table_destroy_targets(t);
}

static int split_words(char *line, char **words, int max)
{
	int n = 0;
	char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			*p++ = '\0';
		if (!*p)
			return n;
		if (n == max)
			return -1;
		words[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
	}
}

static bool parse_u64(const char *w, u64 *v)
{
	size_t len = strlen(w), i;
	u64 x = 0;

	if (len == 0 || len > 20)
		return false;
	for (i = 0; i < len; i++) {
		unsigned int d = (unsigned char)w[i] - '0';

		if (d > 9 || x > (U64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*v = x;
	return true;
}

#define MAX_WORDS 256

/* parseTable: on failure returns NULL with the errno in *err and the reason in dmc_msg. */
static struct dm_table *parse_table(struct hdev *md, const char *text, int *err)
{
	struct dm_table *t = calloc(1, sizeof(*t));
	char *copy = strdup(text), *line, *save = NULL;
	char *w[MAX_WORDS];
	int line_no = 0, n, r;
	unsigned int cap = 0;
	u64 start, len, next = 0;
	struct dm_target *ti;
	struct target_type *type;

	t->md = md;
	*err = EINVAL;
	for (line = copy; line; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		line_no++;
		n = split_words(line, w, MAX_WORDS);
		if (n == 0 || (n > 0 && w[0][0] == '#'))
			continue;
		if (n < 3) {
			fail(EINVAL, "line %d: expected <start> <length> <target> [<arguments>...]", line_no);
			goto bad;
		}
		if (!parse_u64(w[0], &start)) {
			fail(EINVAL, "line %d: invalid start sector '%s'", line_no, w[0]);
			goto bad;
		}
		if (!parse_u64(w[1], &len)) {
			fail(EINVAL, "line %d: invalid length '%s'", line_no, w[1]);
			goto bad;
		}
		if (len == 0) {
			fail(EINVAL, "line %d: zero-length segment", line_no);
			goto bad;
		}
		if (start != next) {
			if (t->n == 0)
				fail(EINVAL, "line %d: the first segment must start at sector 0, not %s",
				     line_no, w[0]);
			else
				fail(EINVAL,
				     "line %d: segment starts at %s but the previous one ends at %llu (segments must be contiguous)",
				     line_no, w[0], (unsigned long long)next);
			goto bad;
		}
		if (len > U64_MAX - start) {
			fail(EINVAL, "line %d: segment end passes 2^64 sectors", line_no);
			goto bad;
		}
		type = find_type(w[2]);
		if (!type) {
			fail(EINVAL, "line %d: unknown target type '%s'", line_no, w[2]);
			goto bad;
		}
		if (t->n == cap) {
			cap = cap ? cap * 2 : 4;
			t->targets = realloc(t->targets, cap * sizeof(*t->targets));
		}
		ti = &t->targets[t->n];
		memset(ti, 0, sizeof(*ti));
		ti->table = t;
		ti->type = type;
		ti->begin = start;
		ti->len = len;
		ti->error = "Unknown error";
		ti->shim_name = strdup(w[2]);
		ti->shim_line = line_no;
		r = type->ctr(ti, n - 3, w + 3);
		if (r) {
			if (ti->shim_devs)
				violation("%s: a failed ctr left %s open", w[2], ti->shim_devs->name);
			/* The errno Linux's ctr gives for I/O errors and a foreign COW header; else EINVAL. */
			*err = r == -EIO || r == -ENXIO ? -r : EINVAL;
			fail(*err, "line %d: %s: %s", line_no, w[2], ti->error);
			free((void *)ti->shim_name);
			goto bad;
		}
		t->n++;
		next = start + len;
		t->size = next;
	}
	free(copy);
	if (t->n == 0) {
		free(t->targets);
		free(t);
		fail(EINVAL, "table is empty");
		return NULL;
	}
	return t;
bad:
	free(copy);
	table_destroy_targets(t);
	return NULL;
}

/* Whether a device below takes discards: disks do; a mapped device if its live table does. */
static int device_not_discard_capable(struct dm_target *ti, struct dm_dev *dev, sector_t start,
				      sector_t len, void *data)
{
	struct hdev *m;

	if (dev->bdev->shim_kind == SHIM_DISK)
		return 0;
	m = dev->bdev->shim_obj;
	return !(m->live && m->live->discards);
}

/*
 * dm_table_supports_discards: every target sends discards on, and either
 * takes them itself (discards_supported) or every device below takes them.
 * When not, the block layer fails a discard before device-mapper sees it.
 */
static bool table_supports_discards(struct dm_table *t)
{
	unsigned int i;

	for (i = 0; i < t->n; i++) {
		struct dm_target *ti = &t->targets[i];

		if (!ti->num_discard_bios)
			return false;
		if (!ti->discards_supported &&
		    (!ti->type->iterate_devices ||
		     ti->type->iterate_devices(ti, device_not_discard_capable, NULL)))
			return false;
	}
	return true;
}

/* Stacks a device's discard limit into the target's (min over its devices). */
static int stack_discard_limit(struct dm_target *ti, struct dm_dev *dev, sector_t start,
			       sector_t len, void *data)
{
	unsigned int *max = data, below;
	struct hdev *m;

	if (dev->bdev->shim_kind == SHIM_DISK) {
		below = UINT32_MAX;
	} else {
		m = dev->bdev->shim_obj;
		below = m->live && m->live->discards ? UINT32_MAX : 0;
	}
	if (below < *max)
		*max = below;
	return 0;
}

/*
 * Whether the device's queue takes discards at all: the table allows them
 * (above), and the queue limits say how much, as dm_calculate_queue_limits
 * stacks them: a target with devices gets theirs, one without gets none
 * unless its io_hints raise it (upstream dm-zero does; 6.1 calls io_hints
 * only for targets with iterate_devices), and the device keeps the
 * smallest non-zero one, and the largest granularity (t's split limits).
 */
static bool table_takes_discards(struct dm_table *t)
{
	unsigned int i, any = 0;

	t->max_discard_sectors = UINT32_MAX;
	t->discard_granularity = 1;
	if (!table_supports_discards(t))
		return false;
	for (i = 0; i < t->n; i++) {
		struct dm_target *ti = &t->targets[i];
		struct queue_limits limits = { .logical_block_size = 512 };
		unsigned int max = UINT32_MAX;

		/* Linux 6.1 skips io_hints for a target without iterate_devices. */
		if (ti->type->iterate_devices) {
			ti->type->iterate_devices(ti, stack_discard_limit, &max);
			limits.max_discard_sectors = max;
			limits.max_hw_discard_sectors = max;
			if (ti->type->io_hints)
				ti->type->io_hints(ti, &limits);
		}
		any |= limits.max_discard_sectors;
		if (limits.max_discard_sectors && limits.max_discard_sectors < t->max_discard_sectors)
			t->max_discard_sectors = limits.max_discard_sectors;
		if ((limits.discard_granularity >> SECTOR_SHIFT) > t->discard_granularity)
			t->discard_granularity = limits.discard_granularity >> SECTOR_SHIFT;
	}
	return any != 0;
}

/* ---- mapped devices (core-as/index.ts) */

static const char *name_problem(const char *name)
{
	static char why[MSG_LEN];
	size_t i, len = strlen(name);

	if (len == 0)
		return "a device name must not be empty";
	if (len > 127) {
		snprintf(why, sizeof(why), "device name '%s' is longer than 127 characters", name);
		return why;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = name[i];

		if (c <= 32 || c == 127) {
			snprintf(why, sizeof(why),
				 "device name '%s' contains white space or control characters", name);
			return why;
		}
	}
	return NULL;
}

struct hdev *dmc_find(const char *name)
{
	struct hdev *d;

	for (d = devices; d; d = d->next) {
		if (!strcmp(d->name, name))
			return d;
	}
	return NULL;
}

int dmc_create(const char *name, struct hdev **result)
{
	const char *bad = name_problem(name);
	struct hdev *d, **tail;

	if (bad)
		return fail(EINVAL, "%s", bad);
	if (dmc_find(name))
		return fail(EEXIST, "device %s already exists", name);
	if (disk_find(name))
		return fail(EEXIST, "%s is the name of a backing device", name);
	d = calloc(1, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->bdev.shim_kind = SHIM_MAPPED;
	d->bdev.shim_obj = d;
	bio_list_init(&d->held);
	for (tail = &devices; *tail; tail = &(*tail)->next)
		;
	*tail = d;
	*result = d;
	return 0;
}

/* dmsetup load: parse + construct into the inactive slot. */
int dmc_load(struct hdev *dev, const char *text)
{
	struct dm_table *t;
	char why[MSG_LEN];
	int err;

	loading_for = dev;
	t = parse_table(dev, text, &err);
	loading_for = NULL;
	if (!t) {
		snprintf(why, sizeof(why), "%s", dmc_msg);
		return fail(err, "%s: %s", dev->name, why);
	}
	table_users(t, +1);
	t->discards = table_takes_discards(t);
	if (dev->inactive)
		table_retire(dev->inactive);
	dev->inactive = t;
	dmc_msg[0] = '\0';
	return 0;
}

static void presuspend(struct dm_table *t)
{
	unsigned int i;

	for (i = 0; t && i < t->n; i++) {
		if (t->targets[i].type->presuspend)
			t->targets[i].type->presuspend(&t->targets[i]);
	}
}

static void postsuspend(struct dm_table *t)
{
	unsigned int i;

	for (i = 0; t && i < t->n; i++) {
		if (t->targets[i].type->postsuspend)
			t->targets[i].type->postsuspend(&t->targets[i]);
	}
}

/* dm_suspend: held I/O is let go (presuspend), in-flight I/O drains, new I/O is held. */
static void suspend_now(struct hdev *dev)
{
	if (dev->suspended)
		return;
	presuspend(dev->live);
	dev->suspended = true;
	while (dev->inflight > 0 && (pump_step() || pump_fire_next_timer()))
		;
	postsuspend(dev->live);
}

int dmc_suspend(struct hdev *dev)
{
	suspend_now(dev);
	if (dev->inflight > 0)
		return fail(EBUSY, "%d request(s) still in flight after suspend", dev->inflight);
	return 0;
}

static void dispatch(struct hdev *dev, struct bio *bio);

static void release_held(struct hdev *dev)
{
	struct bio_list held = dev->held;
	struct bio *bio;

	bio_list_init(&dev->held);
	while ((bio = bio_list_pop(&held))) {
		if (dev->suspended)
			bio_list_add(&dev->held, bio);	/* suspended again meanwhile: keep order */
		else
			dispatch(dev, bio);
	}
}

/* dm_table_resume_targets: every preresume must pass before any target resumes. */
static int resume_targets(struct hdev *dev, struct dm_table *t)
{
	struct dm_target *ti;
	unsigned int i;
	int r;

	for (i = 0; i < t->n; i++) {
		ti = &t->targets[i];
		r = ti->type->preresume ? ti->type->preresume(ti) : 0;
		if (r)
			return fail(-r, "%s: line %d: %s: %s", dev->name, ti->shim_line,
				    ti->shim_name, ti->error);
	}
	for (i = 0; i < t->n; i++) {
		if (t->targets[i].type->resume)
			t->targets[i].type->resume(&t->targets[i]);
	}
	return 0;
}

/*
 * dmsetup resume: a loaded table replaces the live one (the device is
 * suspended first, as the kernel does), the new targets resume, held I/O
 * goes on, and only then is the old table destroyed. A refused preresume
 * leaves the device suspended on the new table, as dm_resume does.
 */
int dmc_resume(struct hdev *dev)
{
	struct dm_table *old = NULL;
	int r;

	if (dev->inactive) {
		suspend_now(dev);
		old = dev->live;
		dev->live = dev->inactive;
		dev->inactive = NULL;
	}
	if (dev->suspended && dev->live) {
		r = resume_targets(dev, dev->live);
		if (r) {
			if (old)
				table_retire(old);
			return r;
		}
	}
	dev->suspended = false;
	release_held(dev);
	if (old)
		table_retire(old);
	return 0;
}

static void device_free(struct hdev *dev)
{
	struct hdev **p;

	for (p = &devices; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			break;
		}
	}
	free(dev);
}

int dmc_remove(struct hdev *dev)
{
	if (dev->open_count > 0)
		return fail(EBUSY, "device %s is busy: open %d time(s)", dev->name, dev->open_count);
	if (dev->users > 0)
		return fail(EBUSY, "device %s is busy: used by %d other table(s)", dev->name,
			    dev->users);
	if (dev->inflight > 0 || !bio_list_empty(&dev->held))
		return fail(EBUSY, "device %s is busy: I/O in flight", dev->name);
	if (dev->live)
		table_retire(dev->live);
	if (dev->inactive)
		table_retire(dev->inactive);
	device_free(dev);
	return 0;
}

/* End of a run: every device goes, upper ones first. */
void dmc_teardown(void)
{
	struct hdev *d;
	bool progress = true;

	while (devices && progress) {
		progress = false;
		for (d = devices; d; d = d->next) {
			if (d->users == 0 && d->inflight == 0 && bio_list_empty(&d->held)) {
				if (d->suspended)
					dmc_resume(d);
				dmc_remove(d);
				progress = true;
				break;
			}
		}
	}
	for (d = devices; d; d = d->next)
		violation("device %s could not be removed at the end (users %d, in flight %d)",
			  d->name, d->users, d->inflight);
}

static struct dm_target *find_target(struct dm_table *t, sector_t sector)
{
	unsigned int lo = 0, hi = t->n - 1, mid;

	while (lo < hi) {
		mid = (lo + hi + 1) / 2;
		if (t->targets[mid].begin <= sector)
			lo = mid;
		else
			hi = mid - 1;
	}
	return &t->targets[lo];
}

int dmc_message(struct hdev *dev, u64 sector, int argc, char **argv)
{
	struct dm_target *ti;
	char result[256] = "";
	int r;

	if (!dev->live)
		return fail(ENODEV, "device %s has no live table", dev->name);
	if (sector >= dev->live->size)
		return fail(EINVAL, "sector %llu is past the end of %s", (unsigned long long)sector,
			    dev->name);
	ti = find_target(dev->live, sector);
	if (!ti->type->message)
		return fail(EINVAL, "target %s does not take messages", ti->shim_name);
	r = ti->type->message(ti, argc, argv, result, sizeof(result));
	if (r)
		return fail(-r, "%s", ti->error ? ti->error : "message refused");
	dmc_msg[0] = '\0';
	return 0;
}

/* `start length type params` lines, as dmsetup table/status print them. */
static void describe(struct dm_table *t, status_type_t type, char *out, size_t len)
{
	char result[4096];
	size_t used = 0;
	unsigned int i;

	out[0] = '\0';
	for (i = 0; t && i < t->n; i++) {
		struct dm_target *ti = &t->targets[i];

		result[0] = '\0';
		if (ti->type->status)
			ti->type->status(ti, type, 0, result, sizeof(result));
		used += snprintf(out + used, used < len ? len - used : 0, "%llu %llu %s %s\n",
				 (unsigned long long)ti->begin, (unsigned long long)ti->len,
				 ti->shim_name, result);
	}
}

int dmc_table(struct hdev *dev, char *out, size_t len)
{
	describe(dev->live, STATUSTYPE_TABLE, out, len);
	return 0;
}

int dmc_status(struct hdev *dev, char *out, size_t len)
{
	describe(dev->live, STATUSTYPE_INFO, out, len);
	return 0;
}

/* rangeError: why [sector, sector + count) cannot be served by the live table, or 0. */
int dmc_range_error(struct hdev *dev, unsigned int op, u64 sector, u64 count)
{
	u64 size;

	if (!dev->live) {
		if (dev->suspended && dev->inactive)
			return 0;
		fail(ENODEV, "device %s has no live table", dev->name);
		return ENODEV;
	}
	if (op == REQ_OP_FLUSH)
		return 0;
	size = dev->live->size;
	if (sector <= size && count <= size - sector)
		return 0;
	fail(EINVAL, "request for sectors %llu+%llu is past the end of %s (%llu sectors)",
	     (unsigned long long)sector, (unsigned long long)count, dev->name,
	     (unsigned long long)size);
	return op == REQ_OP_WRITE || op == REQ_OP_WRITE_ZEROES ? ENOSPC : EINVAL;
}

/* ---- requests (core-as/io.ts; Linux dm.c's clone and split) */

struct hreq {
	struct bio *bio;
	struct hdev *dev;
	int pending;
	blk_status_t status;
};

struct hclone {
	struct hreq *req;
	struct dm_target *ti;
	unsigned int target_bio_nr;
	unsigned int *len_ptr;	/* the splitter's count of sectors the target takes */
	size_t pbd;		/* per-bio data bytes in front of this struct */
	struct bio bio;
};

static size_t pbd_bytes(unsigned int size)
{
	return (size + 15) & ~(size_t)15;
}

static struct hclone *clone_of(const struct bio *bio)
{
	return container_of(bio, struct hclone, bio);
}

void *dm_per_bio_data(struct bio *bio, size_t data_size)
{
	struct hclone *c = clone_of(bio);

	if (pbd_bytes(data_size) != c->pbd)
		shim_fatal("dm_per_bio_data(%zu) on a clone with %zu bytes of per-bio data",
			   data_size, c->pbd);
	return (char *)c - c->pbd;
}

struct bio *dm_bio_from_per_bio_data(void *data, size_t data_size)
{
	return &((struct hclone *)((char *)data + pbd_bytes(data_size)))->bio;
}

unsigned int dm_bio_get_target_bio_nr(const struct bio *bio)
{
	return clone_of(bio)->target_bio_nr;
}

/* The clone in its target's map right now (a map may end, and free, the clone itself). */
static struct hclone *mapping;

void dm_accept_partial_bio(struct bio *bio, unsigned int n_sectors)
{
	struct hclone *c = clone_of(bio);

	if (c != mapping)
		shim_fatal("dm_accept_partial_bio outside the target's map");
	if (bio->bi_opf & REQ_PREFLUSH)
		shim_fatal("dm_accept_partial_bio on a flush");
	if (n_sectors > bio_sectors(bio))
		shim_fatal("dm_accept_partial_bio(%u) on a bio of %u sectors", n_sectors,
			   bio_sectors(bio));
	*c->len_ptr = n_sectors;
	bio->bi_iter.bi_size = n_sectors << SECTOR_SHIFT;
}

void dm_submit_bio_remap(struct bio *clone, struct bio *tgt_clone)
{
	submit_bio_noacct(tgt_clone ? tgt_clone : clone);
}

static void finish_request(struct hreq *req)
{
	struct bio *bio = req->bio;

	req->dev->inflight--;
	bio->bi_status = req->status;
	free(req);
	bio_endio(bio);
}

static void clone_free(struct hclone *c)
{
	free((char *)c - c->pbd);
}

static void clone_done(struct hclone *c, blk_status_t status)
{
	struct hreq *req = c->req;

	clone_free(c);
	if (status && !req->status)
		req->status = status;
	if (--req->pending == 0)
		finish_request(req);
}

/* clone_endio: the target sees the status, then the request counts the clone done. */
static void clone_endio(struct bio *bio)
{
	struct hclone *c = clone_of(bio);
	blk_status_t status = bio->bi_status;
	int r;

	if (c->ti->type->end_io) {
		r = c->ti->type->end_io(c->ti, bio, &status);
		if (r == DM_ENDIO_INCOMPLETE)
			return;
		if (r != DM_ENDIO_DONE)
			shim_fatal("%s: end_io returned %d", c->ti->shim_name, r);
	}
	clone_done(c, status);
}

static struct hclone *new_clone(struct hreq *req, struct dm_target *ti, blk_opf_t opf,
				sector_t sector, unsigned int count, unsigned int nr)
{
	size_t pbd = pbd_bytes(ti->per_io_data_size);
	char *mem = calloc(1, pbd + sizeof(struct hclone));
	struct hclone *c = (struct hclone *)(mem + pbd);
	struct bio *src = req->bio;

	c->pbd = pbd;
	c->req = req;
	c->ti = ti;
	c->target_bio_nr = nr;
	c->bio.bi_opf = opf;
	c->bio.bi_bdev = &req->dev->bdev;
	c->bio.bi_iter.bi_sector = sector;
	c->bio.bi_iter.bi_size = count << SECTOR_SHIFT;
	c->bio.shim_data = src->shim_data;
	c->bio.bi_iter.bi_bvec_done = src->bi_iter.bi_bvec_done;
	if (count && (bio_op(src) == REQ_OP_READ || bio_op(src) == REQ_OP_WRITE))
		c->bio.bi_iter.bi_bvec_done += (sector - src->bi_iter.bi_sector) << SECTOR_SHIFT;
	c->bio.bi_end_io = clone_endio;
	req->pending++;
	return c;
}

/* __map_bio: the target's decision, then what device-mapper does with it. */
static unsigned int map_clone(struct hclone *c)
{
	unsigned int accepted = bio_sectors(&c->bio);
	struct dm_target *ti = c->ti;
	int r;

	c->len_ptr = &accepted;
	mapping = c;
	r = ti->type->map(ti, &c->bio);
	mapping = NULL;
	switch (r) {
	case DM_MAPIO_REMAPPED:
		submit_bio_noacct(&c->bio);
		break;
	case DM_MAPIO_SUBMITTED:
		break;
	case DM_MAPIO_KILL:
		clone_done(c, BLK_STS_IOERR);
		break;
	default:
		shim_fatal("%s: map returned %d", ti->shim_name, r);
	}
	return accepted;
}

/* Requests being dispatched: more than one when a map submits to another mapped device. */
static int dispatching;

/* READ and WRITE: one clone per segment piece, never crossing the target's max_io_len. */
static void split_data(struct hreq *req, struct dm_table *t)
{
	struct bio *bio = req->bio;
	sector_t sector = bio->bi_iter.bi_sector, end = bio_end_sector(bio), piece_end;
	struct dm_target *ti = find_target(t, sector);
	struct hclone *c;
	bool first = true;

	while (sector < end) {
		piece_end = ti->begin + ti->len;
		if (ti->max_io_len) {
			sector_t boundary = sector + ti->max_io_len -
					    (sector - ti->begin) % ti->max_io_len;

			if (boundary < piece_end)
				piece_end = boundary;
		}
		if (piece_end > end)
			piece_end = end;
		c = new_clone(req, ti, bio->bi_opf, sector, piece_end - sector, 0);
		sector += map_clone(c);
		if (sector == ti->begin + ti->len)
			ti++;
		/* The submitting CPU may stall after the first piece (a request, not its remaps). */
		if (first && sector < end && dispatching == 1)
			pump_stall();
		first = false;
	}
}

/*
 * Where the block layer ends a discard starting at sector (bio_discard_limit,
 * bio_split_discard): at most max_discard_sectors (rounded down to the
 * granularity), ending on a multiple of the granularity.
 */
static sector_t discard_piece_end(struct dm_table *t, sector_t sector)
{
	sector_t gran = t->discard_granularity, max = t->max_discard_sectors;
	sector_t stop;

	if (max >= gran)
		max -= max % gran;
	stop = sector + max;
	stop -= stop % gran;
	if (stop <= sector)
		stop = sector + gran - sector % gran;
	return stop;
}

/* DISCARD and WRITE_ZEROES: per segment piece, as many clones as the target asks for. */
static void split_range(struct hreq *req, struct dm_table *t)
{
	struct bio *bio = req->bio;
	sector_t sector = bio->bi_iter.bi_sector, end = bio_end_sector(bio), piece_end;
	struct dm_target *ti = find_target(t, sector);
	unsigned int n, nr;

	while (sector < end) {
		piece_end = ti->begin + ti->len;
		if (bio_op(bio) == REQ_OP_DISCARD && discard_piece_end(t, sector) < piece_end)
			piece_end = discard_piece_end(t, sector);
		if (piece_end > end)
			piece_end = end;
		n = bio_op(bio) == REQ_OP_DISCARD ? ti->num_discard_bios : ti->num_write_zeroes_bios;
		if (n == 0 && !req->status)
			req->status = BLK_STS_NOTSUPP;
		for (nr = 0; nr < n; nr++)
			map_clone(new_clone(req, ti, bio->bi_opf, sector, piece_end - sector, nr));
		sector = piece_end;
		if (sector == ti->begin + ti->len)
			ti++;
	}
}

/* An empty flush: every target's flush clones (__send_empty_flush). */
static void split_flush(struct hreq *req, struct dm_table *t)
{
	unsigned int i, nr;

	for (i = 0; i < t->n; i++) {
		for (nr = 0; nr < t->targets[i].num_flush_bios; nr++)
			map_clone(new_clone(req, &t->targets[i], REQ_OP_WRITE | REQ_PREFLUSH | REQ_SYNC,
					    0, 0, nr));
	}
}

static void dispatch(struct hdev *dev, struct bio *bio)
{
	struct dm_table *t = dev->live;
	struct hreq *req;

	/* A request past the end (the table shrank while it was held) fails as the block layer fails it. */
	if (!t || (bio->bi_iter.bi_size && bio_end_sector(bio) > t->size)) {
		bio_io_error(bio);
		return;
	}
	if (bio_op(bio) == REQ_OP_DISCARD && bio->bi_iter.bi_size && !t->discards) {
		bio->bi_status = BLK_STS_NOTSUPP;
		bio_endio(bio);
		return;
	}
	req = calloc(1, sizeof(*req));
	req->bio = bio;
	req->dev = dev;
	req->pending = 1;	/* held by dispatch, so clones finishing at once cannot finish it early */
	dev->inflight++;
	dispatching++;
	if (bio->bi_iter.bi_size == 0) {
		if (bio->bi_opf & REQ_PREFLUSH)
			split_flush(req, t);
	} else if (bio_op(bio) == REQ_OP_DISCARD || bio_op(bio) == REQ_OP_WRITE_ZEROES) {
		split_range(req, t);
	} else {
		split_data(req, t);
	}
	dispatching--;
	if (--req->pending == 0)
		finish_request(req);
}

/* A bio for a mapped device: held while it is suspended. */
void dmc_submit(struct hdev *dev, struct bio *bio)
{
	if (dev->suspended)
		bio_list_add(&dev->held, bio);
	else
		dispatch(dev, bio);
}
