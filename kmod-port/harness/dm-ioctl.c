// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Mapped devices and the dmsetup verbs on them (Linux drivers/md/dm-ioctl.c,
 * with dm.c's dm_suspend and dm_resume; core-as/index.ts): create, load,
 * suspend, resume, remove, message, table and status, each failing with the
 * core's message in dmc_msg.
 */
#include "dm-core.h"

char dmc_msg[MSG_LEN];

static struct hdev *devices;
struct hdev *dmc_loading_for;

int dmc_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dmc_msg, sizeof(dmc_msg), fmt, ap);
	va_end(ap);
	return -err;
}

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
		return dmc_fail(EINVAL, "%s", bad);
	if (dmc_find(name))
		return dmc_fail(EEXIST, "device %s already exists", name);
	if (disk_find(name))
		return dmc_fail(EEXIST, "%s is the name of a backing device", name);
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

	dmc_loading_for = dev;
	t = dmc_parse_table(dev, text, &err);
	dmc_loading_for = NULL;
	if (!t) {
		snprintf(why, sizeof(why), "%s", dmc_msg);
		return dmc_fail(err, "%s: %s", dev->name, why);
	}
	dmc_table_users(t, +1);
	t->discards = dmc_table_takes_discards(t);
	if (dev->inactive)
		dmc_table_retire(dev->inactive);
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
		return dmc_fail(EBUSY, "%d request(s) still in flight after suspend",
				dev->inflight);
	return 0;
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
			return dmc_fail(-r, "%s: line %d: %s: %s", dev->name, ti->shim_line,
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
				dmc_table_retire(old);
			return r;
		}
	}
	dev->suspended = false;
	dmc_release_held(dev);
	if (old)
		dmc_table_retire(old);
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
		return dmc_fail(EBUSY, "device %s is busy: open %d time(s)", dev->name,
				dev->open_count);
	if (dev->users > 0)
		return dmc_fail(EBUSY, "device %s is busy: used by %d other table(s)", dev->name,
				dev->users);
	if (dev->inflight > 0 || !bio_list_empty(&dev->held))
		return dmc_fail(EBUSY, "device %s is busy: I/O in flight", dev->name);
	if (dev->live)
		dmc_table_retire(dev->live);
	if (dev->inactive)
		dmc_table_retire(dev->inactive);
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

int dmc_message(struct hdev *dev, u64 sector, int argc, char **argv)
{
	struct dm_target *ti;
	char result[256] = "";
	int r;

	if (!dev->live)
		return dmc_fail(ENODEV, "device %s has no live table", dev->name);
	if (sector >= dev->live->size)
		return dmc_fail(EINVAL, "sector %llu is past the end of %s",
				(unsigned long long)sector, dev->name);
	ti = dmc_find_target(dev->live, sector);
	if (!ti->type->message)
		return dmc_fail(EINVAL, "target %s does not take messages", ti->shim_name);
	r = ti->type->message(ti, argc, argv, result, sizeof(result));
	if (r)
		return dmc_fail(-r, "%s", ti->error ? ti->error : "message refused");
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
		dmc_fail(ENODEV, "device %s has no live table", dev->name);
		return ENODEV;
	}
	if (op == REQ_OP_FLUSH)
		return 0;
	size = dev->live->size;
	if (sector <= size && count <= size - sector)
		return 0;
	dmc_fail(EINVAL, "request for sectors %llu+%llu is past the end of %s (%llu sectors)",
		 (unsigned long long)sector, (unsigned long long)count, dev->name,
		 (unsigned long long)size);
	return op == REQ_OP_WRITE || op == REQ_OP_WRITE_ZEROES ? ENOSPC : EINVAL;
}
