/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Completed exceptions: origin chunk -> COW chunk (core-as/snapshot/exceptions.ts). */
#ifndef DMK_EXCEPTIONS_H
#define DMK_EXCEPTIONS_H

#include "dmk.h"

struct dmk_exception {
	struct hlist_node node;
	u64 old_chunk;
	u64 new_chunk;
};

struct dmk_exception_table {
	struct hlist_head *buckets;
	unsigned int mask;
	unsigned int size;
};

struct dmk_exception_table *dmk_exception_table_create(u64 chunks);
void dmk_exception_table_destroy(struct dmk_exception_table *t);
s64 dmk_exception_get(struct dmk_exception_table *t, u64 old_chunk);
bool dmk_exception_has(struct dmk_exception_table *t, u64 old_chunk);
void dmk_exception_set(struct dmk_exception_table *t, struct dmk_exception *e);
void dmk_exception_delete(struct dmk_exception_table *t, u64 old_chunk);

#endif /* DMK_EXCEPTIONS_H */
