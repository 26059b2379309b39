// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The complete-exception table of a snapshot (dm_exception_table "complete";
 * a Map in core-as/snapshot/exceptions.ts): a hash of chunk -> chunk. Entries
 * are allocated by the caller (at load, or with their pending exception), so
 * nothing here allocates under dmk_lock.
 */
#include "exceptions.h"

#define DMK_MIN_BUCKETS	64
#define DMK_MAX_BUCKETS	65536

/* Sized from the number of chunks the snapshot can hold, within bounds. */
struct dmk_exception_table *dmk_exception_table_create(u64 chunks)
{
	struct dmk_exception_table *t;
	unsigned int n = DMK_MIN_BUCKETS, i;

	while (n < DMK_MAX_BUCKETS && (u64)n < chunks)
		n <<= 1;
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return NULL;
	t->buckets = kvcalloc(n, sizeof(*t->buckets), GFP_KERNEL);
	if (!t->buckets) {
		kfree(t);
		return NULL;
	}
	for (i = 0; i < n; i++)
		INIT_HLIST_HEAD(&t->buckets[i]);
	t->mask = n - 1;
	return t;
}

void dmk_exception_table_destroy(struct dmk_exception_table *t)
{
	struct dmk_exception *e;
	struct hlist_node *tmp;
	unsigned int i;

	if (!t)
		return;
	for (i = 0; i <= t->mask; i++) {
		hlist_for_each_entry_safe(e, tmp, &t->buckets[i], node) {
			hlist_del(&e->node);
			kfree(e);
		}
	}
	kvfree(t->buckets);
	kfree(t);
}

static struct dmk_exception *dmk_exception_find(struct dmk_exception_table *t, u64 old_chunk)
{
	struct dmk_exception *e;

	hlist_for_each_entry(e, &t->buckets[old_chunk & t->mask], node) {
		if (e->old_chunk == old_chunk)
			return e;
	}
	return NULL;
}

/* get: the COW chunk, or -1 */
s64 dmk_exception_get(struct dmk_exception_table *t, u64 old_chunk)
{
	struct dmk_exception *e = dmk_exception_find(t, old_chunk);

	return e ? (s64)e->new_chunk : -1;
}

bool dmk_exception_has(struct dmk_exception_table *t, u64 old_chunk)
{
	return dmk_exception_find(t, old_chunk);
}

/* set: takes e over (an existing entry for the chunk is updated and e freed). */
void dmk_exception_set(struct dmk_exception_table *t, struct dmk_exception *e)
{
	struct dmk_exception *old = dmk_exception_find(t, e->old_chunk);

	if (old) {
		old->new_chunk = e->new_chunk;
		kfree(e);
		return;
	}
	hlist_add_head(&e->node, &t->buckets[e->old_chunk & t->mask]);
	t->size++;
}

void dmk_exception_delete(struct dmk_exception_table *t, u64 old_chunk)
{
	struct dmk_exception *e = dmk_exception_find(t, old_chunk);

	if (!e)
		return;
	hlist_del(&e->node);
	kfree(e);
	t->size--;
}
