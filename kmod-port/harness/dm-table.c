// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Tables (Linux drivers/md/dm-table.c; core-as/table.ts): parsing and
 * constructing one, finding the target of a sector, what its queue takes
 * in discards, and retiring it.
 */
#include "dm-core.h"

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

void dmc_table_users(struct dm_table *t, int delta)
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
void dmc_table_retire(struct dm_table *t)
{
	if (t->retired)
		return;
	t->retired = true;
	dmc_table_users(t, -1);
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
struct dm_table *dmc_parse_table(struct hdev *md, const char *text, int *err)
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
			dmc_fail(EINVAL, "line %d: expected <start> <length> <target> [<arguments>...]", line_no);
			goto bad;
		}
		if (!parse_u64(w[0], &start)) {
			dmc_fail(EINVAL, "line %d: invalid start sector '%s'", line_no, w[0]);
			goto bad;
		}
		if (!parse_u64(w[1], &len)) {
			dmc_fail(EINVAL, "line %d: invalid length '%s'", line_no, w[1]);
			goto bad;
		}
		if (len == 0) {
			dmc_fail(EINVAL, "line %d: zero-length segment", line_no);
			goto bad;
		}
		if (start != next) {
			if (t->n == 0)
				dmc_fail(EINVAL, "line %d: the first segment must start at sector 0, not %s",
					 line_no, w[0]);
			else
				dmc_fail(EINVAL,
					 "line %d: segment starts at %s but the previous one ends at %llu (segments must be contiguous)",
					 line_no, w[0], (unsigned long long)next);
			goto bad;
		}
		if (len > U64_MAX - start) {
			dmc_fail(EINVAL, "line %d: segment end passes 2^64 sectors", line_no);
			goto bad;
		}
		type = dmc_find_target_type(w[2]);
		if (!type) {
			dmc_fail(EINVAL, "line %d: unknown target type '%s'", line_no, w[2]);
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
			dmc_fail(*err, "line %d: %s: %s", line_no, w[2], ti->error);
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
		dmc_fail(EINVAL, "table is empty");
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
bool dmc_table_takes_discards(struct dm_table *t)
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

/* dm_table_find_target: the target whose segment holds sector. */
struct dm_target *dmc_find_target(struct dm_table *t, sector_t sector)
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
