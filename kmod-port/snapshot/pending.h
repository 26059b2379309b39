/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* A chunk being copied to the COW device and what waits for it (core-as/snapshot/pending.ts). */
#ifndef DMK_PENDING_H
#define DMK_PENDING_H

#include "dmk.h"
#include "io.h"

struct dmk_snapshot;
struct dmk_exception;

struct dmk_pending {
	struct dmk_waiter waiter;
	struct hlist_node node;		/* in its snapshot's pending table */
	/* In one list at a time: the reserve, out_of_order, the store's queue, drain_waiters. */
	struct list_head list;
	struct dmk_snapshot *snap;
	u64 old_chunk;
	u64 new_chunk;
	bool started;
	bool copy_error;
	bool commit_valid;		/* the store's queueValid */
	u64 sequence;			/* allocation order: commits happen in this order */
	struct bio_list snapshot_bios;	/* snapshot writes remapped onto the new chunk */
	struct bio_list origin_bios;	/* origin writes that wait for the copy */
	struct bio *full_bio;		/* a snapshot write covering the whole chunk */
	void *buf;
	struct dmk_io io;
	struct dmk_exception *e;	/* its entry in the complete table, allocated with it */
};

struct dmk_pending *dmk_pending_take(struct dmk_snapshot *s, u64 old_chunk);
void dmk_pending_put(struct dmk_pending *pe);
void dmk_pending_start_copy(struct dmk_pending *pe);
void dmk_pending_start_full_write(struct dmk_pending *pe, struct bio *bio);
void dmk_pending_free_buffer(struct dmk_pending *pe);

int dmk_pending_pool_create(void);
void dmk_pending_pool_destroy(void);
unsigned int dmk_pending_reserve_count(void);
bool dmk_pending_reserve_ensure(unsigned int n);
void dmk_pending_reserve_fill(unsigned int n);
void dmk_pending_alloc_in_map(unsigned int need, unsigned long *flags);

#endif /* DMK_PENDING_H */
