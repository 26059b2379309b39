// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * What a target type calls outside its bios: the registry it registers
 * with (Linux drivers/md/dm-target.c), and dm_get_device and friends on its
 * table and devices (in Linux, dm-table.c and dm.c), with the core's
 * messages (core-as/devref.ts resolveDevice).
 */
#include "dm-core.h"
#include "../targets/targets.h"

static LIST_HEAD(target_types);

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

struct target_type *dmc_find_target_type(const char *name)
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
		if (dmc_loading_for &&
		    (mapped == dmc_loading_for || depends_on(mapped, dmc_loading_for))) {
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
