// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Per-block ordering of the writes an ebs target has in flight
 * (core-as/ebs/write-order.ts; the buffer lock of dm-bufio in Linux).
 *
 * A write that reads a block before rewriting it (read-modify-write) must
 * not interleave with any other write to that block, or one of them is
 * lost. So a write waits for every earlier write in flight that overlaps it
 * in blocks, when either of the two is an RMW; whole-block writes need no
 * order among themselves. Waits only point at earlier writes, so they cannot
 * deadlock, and overlapping writes go out in arrival order.
 *
 * The core keeps, for each write, the list of later writes waiting for it;
 * here the in-flight list is kept in arrival order instead, and a write
 * leaving looks at the writes after it: the same pairs, without allocating.
 * Runs under dmk_lock.
 */
#include "write-order.h"

static bool ebs_overlaps(const struct ebs_ordered *a, const struct ebs_ordered *b)
{
	return a->first < b->end && b->first < a->end;
}

static bool ebs_must_wait(const struct ebs_ordered *later, const struct ebs_ordered *earlier)
{
	return (later->rmw || earlier->rmw) && ebs_overlaps(later, earlier);
}

void ebs_order_init(struct ebs_order *o)
{
	INIT_LIST_HEAD(&o->in_flight);
	o->rmw_in_flight = 0;
}

/* enter: registers a write; true if it may start now, false if go() will be called later. */
bool ebs_order_enter(struct ebs_order *o, struct ebs_ordered *w)
{
	struct ebs_ordered *other;

	w->blockers = 0;
	if (w->rmw || o->rmw_in_flight > 0) {
		list_for_each_entry(other, &o->in_flight, node) {
			if (ebs_must_wait(w, other))
				w->blockers++;
		}
	}
	list_add_tail(&w->node, &o->in_flight);
	if (w->rmw)
		o->rmw_in_flight++;
	return w->blockers == 0;
}

/* leave: a write finished; later writes that waited only for it start. */
void ebs_order_leave(struct ebs_order *o, struct ebs_ordered *w)
{
	struct ebs_ordered *later = w, *next;
	LIST_HEAD(ready);

	list_for_each_entry_continue(later, &o->in_flight, node) {
		if (later->blockers > 0 && ebs_must_wait(later, w) && --later->blockers == 0)
			list_add_tail(&later->ready_node, &ready);
	}
	list_del_init(&w->node);
	if (w->rmw)
		o->rmw_in_flight--;
	list_for_each_entry_safe(later, next, &ready, ready_node) {
		list_del_init(&later->ready_node);
		later->go(later);
	}
}
