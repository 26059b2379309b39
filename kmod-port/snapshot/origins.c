// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Origins (core-as/snapshot/origins.ts, dm-snap.c's _origins): for each
 * origin block device, its snapshots in registration order and how many
 * origin targets use it. An origin write consults every active snapshot of
 * its device; origin targets split writes at their smallest chunk size.
 * Registration runs in ctr/dtr; the rest under dmk_lock.
 */
#include "origins.h"
#include "snapshot.h"

struct dmk_origin {
	struct list_head node;
	struct block_device *bdev;
	struct list_head snapshots;
	unsigned int origin_targets;
};

static LIST_HEAD(dmk_origins);

static struct dmk_origin *dmk_origin_find(struct block_device *bdev)
{
	struct dmk_origin *o;

	list_for_each_entry(o, &dmk_origins, node) {
		if (o->bdev == bdev)
			return o;
	}
	return NULL;
}

/* find(dev, true), with the new entry allocated before the lock is taken. */
static struct dmk_origin *dmk_origin_get(struct block_device *bdev, struct dmk_origin **spare)
{
	struct dmk_origin *o = dmk_origin_find(bdev);

	if (o)
		return o;
	o = *spare;
	*spare = NULL;
	o->bdev = bdev;
	INIT_LIST_HEAD(&o->snapshots);
	list_add_tail(&o->node, &dmk_origins);
	return o;
}

static void dmk_origin_drop_if_empty(struct dmk_origin *o)
{
	if (list_empty(&o->snapshots) && !o->origin_targets) {
		list_del(&o->node);
		kfree(o);
	}
}

/*
 * validateHandover (__validate_exception_handover): a reload takes the
 * exceptions over from the live snapshot of the same origin on the same COW
 * device; beside one that is not live yet, or two, it is refused. Returns the
 * refusal or NULL, with *from the snapshot to take over from. Under dmk_lock.
 */
static char *dmk_validate_handover(struct dmk_snapshot *s, struct dmk_snapshot **from)
{
	struct dmk_origin *o = dmk_origin_find(s->origin->bdev);
	struct dmk_snapshot *other, *src = NULL, *dest = NULL, *merging = NULL;
	int count = 0;

	*from = NULL;
	if (!o)
		return NULL;
	list_for_each_entry(other, &o->snapshots, origin_node) {
		if (other->is_merge)
			merging = other;
		if (other == s || other->cow->bdev != s->cow->bdev)
			continue;
		if (other->active)
			src = other;
		else
			dest = other;
		count++;
	}
	if (count == 2 || dest)
		return "Snapshot cow pairing for exception table handover failed";
	if (src && s->is_merge) {
		if (merging)
			return "A snapshot is already merging.";
		if (!src->store->type->can_merge)
			return "Snapshot exception store does not support snapshot-merge.";
	}
	*from = src;
	return NULL;
}

/* registerSnapshot, after validateHandover: a reload takes the exceptions over at resume. */
int dmk_register_snapshot(struct dmk_snapshot *s)
{
	struct dmk_origin *spare = kzalloc(sizeof(*spare), GFP_KERNEL);
	struct dmk_origin *o;
	unsigned long flags;
	char *refused;

	if (!spare)
		return -ENOMEM;
	spin_lock_irqsave(&dmk_lock, flags);
	refused = dmk_validate_handover(s, &s->handover_from);
	if (refused) {
		spin_unlock_irqrestore(&dmk_lock, flags);
		kfree(spare);
		s->ti->error = refused;
		return -EINVAL;
	}
	o = dmk_origin_get(s->origin->bdev, &spare);
	list_add_tail(&s->origin_node, &o->snapshots);
	s->registered = true;
	spin_unlock_irqrestore(&dmk_lock, flags);
	kfree(spare);
	return 0;
}

/* Under dmk_lock. */
void dmk_unregister_snapshot(struct dmk_snapshot *s)
{
	struct dmk_origin *o = dmk_origin_find(s->origin->bdev);
	struct dmk_snapshot *other;

	if (!s->registered || !o)
		return;
	list_del_init(&s->origin_node);
	s->registered = false;
	/* A reload waiting to take this one's exceptions over finds nothing to take. */
	list_for_each_entry(o, &dmk_origins, node) {
		list_for_each_entry(other, &o->snapshots, origin_node) {
			if (other->handover_from == s)
				other->handover_from = NULL;
		}
	}
	o = dmk_origin_find(s->origin->bdev);
	if (o)
		dmk_origin_drop_if_empty(o);
}

int dmk_register_origin(struct block_device *bdev)
{
	struct dmk_origin *spare = kzalloc(sizeof(*spare), GFP_KERNEL);
	struct dmk_origin *o;
	unsigned long flags;

	if (!spare)
		return -ENOMEM;
	spin_lock_irqsave(&dmk_lock, flags);
	o = dmk_origin_get(bdev, &spare);
	o->origin_targets++;
	spin_unlock_irqrestore(&dmk_lock, flags);
	kfree(spare);
	return 0;
}

void dmk_unregister_origin(struct block_device *bdev)
{
	struct dmk_origin *o;
	unsigned long flags;

	spin_lock_irqsave(&dmk_lock, flags);
	o = dmk_origin_find(bdev);
	if (o) {
		o->origin_targets--;
		dmk_origin_drop_if_empty(o);
	}
	spin_unlock_irqrestore(&dmk_lock, flags);
}

/* snapshotsOf: the snapshots of a device, or NULL if none ever registered. */
struct list_head *dmk_snapshots_of(struct block_device *bdev)
{
	struct dmk_origin *o = dmk_origin_find(bdev);

	return o ? &o->snapshots : NULL;
}

/*
 * findSnapshotsSharingCow (__find_snapshots_sharing_cow, as snapshot_preresume
 * uses it): among the snapshots of s's origin on s's COW device, s included,
 * the active one is a handover's source, the other its destination. Under dmk_lock.
 */
void dmk_find_snapshots_sharing_cow(struct dmk_snapshot *s, struct dmk_snapshot **src,
				    struct dmk_snapshot **dest)
{
	struct dmk_origin *o = dmk_origin_find(s->origin->bdev);
	struct dmk_snapshot *other;

	*src = NULL;
	*dest = NULL;
	if (!o)
		return;
	list_for_each_entry(other, &o->snapshots, origin_node) {
		if (other->cow->bdev != s->cow->bdev)
			continue;
		if (other->active)
			*src = other;
		else
			*dest = other;
	}
}

/* __minimum_chunk_size: origin writes never span a chunk of any snapshot (0: no limit). */
u64 dmk_minimum_chunk_size(struct block_device *bdev)
{
	struct dmk_origin *o = dmk_origin_find(bdev);
	struct dmk_snapshot *s;
	u64 min = 0, c;

	if (!o)
		return 0;
	list_for_each_entry(s, &o->snapshots, origin_node) {
		c = s->store ? s->store->chunk_size : 0;
		if (c && (!min || c < min))
			min = c;
	}
	return min;
}
