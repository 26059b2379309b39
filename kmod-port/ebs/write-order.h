/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Per-block ordering of an ebs target's writes (core-as/ebs/write-order.ts). */
#ifndef DMK_EBS_WRITE_ORDER_H
#define DMK_EBS_WRITE_ORDER_H

#include "dmk.h"

/* A write over the underlying blocks [first, end). */
struct ebs_ordered {
	struct list_head node;	/* in its order's in_flight list, in arrival order */
	struct list_head ready_node;	/* briefly, while leave() collects writes to start */
	u64 first;
	u64 end;
	bool rmw;
	int blockers;		/* earlier writes it still waits for */
	void (*go)(struct ebs_ordered *w);	/* every write it waited for has finished */
};

struct ebs_order {
	struct list_head in_flight;
	int rmw_in_flight;
};

void ebs_order_init(struct ebs_order *o);
bool ebs_order_enter(struct ebs_order *o, struct ebs_ordered *w);
void ebs_order_leave(struct ebs_order *o, struct ebs_ordered *w);

#endif /* DMK_EBS_WRITE_ORDER_H */
