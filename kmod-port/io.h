/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The engine under the snapshot targets: internal I/O (core-as/io.ts
 * submitInternal / Waiter), deferred bios (resumeDeferred) and the one lock
 * that plays the part of the core's single thread.
 */
#ifndef DMK_IO_H
#define DMK_IO_H

#include "dmk.h"

/* What a target's map logic decided (core-as/target.ts MAP_*), plus one the C port needs. */
#define DMK_MAP_REMAPPED	0	/* the bio now names its destination */
#define DMK_MAP_SUBMITTED	1	/* finished by the target (bio->bi_status) */
#define DMK_MAP_KILL		2	/* fail with EIO */
#define DMK_MAP_DEFERRED	3	/* kept by the target until dmk_resume_deferred() */
#define DMK_MAP_NEED_MEMORY	4	/* nothing changed: the reserve is short (see pending.c) */

/*
 * All snapshot state (every snapshot, origin and exception store) is guarded
 * by this lock, taken with interrupts off because bio completions take it too.
 * Nothing sleeps, allocates or submits I/O under it: submissions and bio
 * releases are queued and issued by the engine's worker once it is dropped.
 */
extern spinlock_t dmk_lock;

struct dmk_io;

/* Whoever waits for internal I/O (bi_end_io): a pending exception, a store, a merge. */
struct dmk_waiter {
	void (*io_done)(struct dmk_waiter *w, struct dmk_io *io, int status);
	unsigned int inflight;	/* its internal I/Os not yet handed back */
};

/* One internal I/O. Owned by its waiter, which reuses it step after step. */
struct dmk_io {
	struct list_head list;
	struct dmk_waiter *waiter;
	struct block_device *bdev;
	unsigned int op;
	unsigned int flags;
	sector_t sector;
	unsigned int count;
	void *buf;		/* NULL on a READ or ZERO: the engine allocates, the waiter frees */
	struct bio *data_bio;	/* or: the data of this bio, from data_offset bytes on */
	unsigned int data_offset;
	long cookie;
	int status;		/* 0 or a positive errno, as the core's statuses */
};

/* Work of the worker's (a retried origin write, a merge step) that waits for memory. */
struct dmk_starved {
	struct list_head list;
	/* Under dmk_lock: how many reserved pending exceptions retry() may take. */
	unsigned int (*needed)(struct dmk_starved *st);
	/* Under dmk_lock: the work again; it may queue itself again if short. */
	void (*retry)(struct dmk_starved *st);
};

/*
 * What the engine keeps for a bio a target defers: part of the target's
 * per-bio data (the whole of it for the snapshot targets).
 */
struct dmk_bio_info {
	struct bio *bio;
	struct dm_target *ti;
	struct list_head release_node;
	int release;			/* DMK_MAP_* applied when the bio is released */
	struct hlist_node tracked_node;	/* a snapshot read of an origin chunk in flight */
	u64 tracked_chunk;
	bool tracked;
	struct dmk_starved starved;
	/* A snapshot discard zeroing its chunk's exception (zero_exception) waits on this. */
	struct dmk_waiter zero_waiter;
	struct dmk_io zero_io;
};

/* The per-bio data of the snapshot targets, which is a struct dmk_bio_info and nothing else. */
static inline struct dmk_bio_info *dmk_bio_info(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct dmk_bio_info));
}

void dmk_bio_info_init(struct dmk_bio_info *info, struct dm_target *ti, struct bio *bio);

void dmk_submit_internal(struct dmk_io *io, struct dmk_waiter *w, struct dm_dev *to,
			 unsigned int op, unsigned int flags, sector_t sector, unsigned int count,
			 void *buf, long cookie);
void dmk_submit_internal_bio(struct dmk_io *io, struct dmk_waiter *w, struct dm_dev *to,
			     unsigned int op, unsigned int flags, sector_t sector, struct bio *bio,
			     unsigned int offset, unsigned int count, long cookie);
void dmk_release(struct dmk_bio_info *info, int r);

/* resumeDeferred, for the snapshot targets' bios. */
static inline void dmk_resume_deferred(struct bio *bio, int r)
{
	dmk_release(dmk_bio_info(bio), r);
}

void dmk_defer_starved(struct dmk_starved *st);
bool dmk_starved_waiting(void);
int dmk_map_result(struct bio *bio, int r);

int dmk_sync_io(struct dm_dev *dev, unsigned int op, unsigned int flags, sector_t sector,
		unsigned int count, void *buf);
void *dmk_buf_alloc(size_t bytes);
void dmk_buf_free(void *buf);
void dmk_buf_free_locked(void *buf);
void dmk_bio_copy(struct bio *bio, struct bvec_iter it, size_t offset, void *buf, size_t len,
		  bool to_bio);

void dmk_wait_idle(bool (*idle)(void *arg), void *arg);

/* How many freed pending exceptions are kept for reuse (0: every one is allocated anew). */
extern unsigned int dmk_reserve_low;

int dmk_engine_init(void);
void dmk_engine_exit(void);

#endif /* DMK_IO_H */
