/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The exception store interface (core-as/snapshot/store.ts, the kernel's
 * struct dm_exception_store_type): where copied chunks live on the COW device
 * and how that mapping survives. Implementations: persistent (P, PO) and
 * transient (N). Everything but create/read_metadata/destroy runs under
 * dmk_lock.
 */
#ifndef DMK_STORE_H
#define DMK_STORE_H

#include "dmk.h"

struct dmk_store;
struct dmk_snapshot;
struct dmk_pending;

struct dmk_store_type {
	/*
	 * readMetadata, done synchronously in ctr as the kernel does. Returns 0,
	 * or -EIO / -EINVAL with the reason in error; *valid tells whether the
	 * header says the snapshot is valid.
	 */
	int (*read_metadata)(struct dmk_store *st, char *error, size_t len, bool *valid);
	/* Chooses the COW chunk for pe (pe->new_chunk); false when the COW device is full. */
	bool (*prepare_exception)(struct dmk_store *st, struct dmk_pending *pe);
	/* Records a finished copy; ends with dmk_snapshot_pending_complete(), in order. */
	void (*commit_exception)(struct dmk_store *st, struct dmk_pending *pe, bool valid);
	/* The snapshot became invalid: persist that. */
	void (*drop_snapshot)(struct dmk_store *st);
	void (*usage)(struct dmk_store *st);
	/* The store's part of the TABLE status: " P 8", " PO 8", " N 8". */
	unsigned int (*status_table)(struct dmk_store *st, char *result, unsigned int sz,
				     unsigned int maxlen);
	/* snapshot-merge support (persistent stores only). */
	bool can_merge;
	void (*prepare_merge)(struct dmk_store *st);
	void (*commit_merge)(struct dmk_store *st, u64 n);
	/* No internal I/O of the store in flight (dtr waits for it). */
	bool (*idle)(struct dmk_store *st);
	void (*destroy)(struct dmk_store *st);
};

struct dmk_store {
	const struct dmk_store_type *type;
	/* Chunk size in sectors; 0 until known (a persistent store may take it from its header). */
	u64 chunk_size;
	unsigned int chunk_shift;
	/* The snapshot that owns the store now (a reload may hand it to a new one). */
	struct dmk_snapshot *snap;
	/* PO: "Overflow" rather than invalidation when the COW device fills up. */
	bool overflow_supported;
	/* Usage, refreshed by usage(). */
	u64 sectors_allocated;
	u64 total_sectors;
	u64 metadata_sectors;
};

void dmk_store_set_chunk_size(struct dmk_store *st, u64 chunk_size);

struct dmk_store *dmk_persistent_store_create(struct dmk_snapshot *snap);
struct dmk_store *dmk_transient_store_create(struct dmk_snapshot *snap);

#endif /* DMK_STORE_H */
