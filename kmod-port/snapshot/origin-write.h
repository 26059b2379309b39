/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Copies before origin writes (core-as/snapshot/origin-write.ts). */
#ifndef DMK_ORIGIN_WRITE_H
#define DMK_ORIGIN_WRITE_H

#include "dmk.h"

/* Something waiting for every pending exception under an extent to finish (a merge step). */
struct dmk_exception_waiter {
	struct list_head node;
	void (*retry)(struct dmk_exception_waiter *w);
};

int dmk_origin_write(struct block_device *origin, struct bio *bio, sector_t sector,
		     unsigned int count);
unsigned int dmk_origin_write_needs(struct block_device *origin, sector_t sector,
				    unsigned int count);
int dmk_origin_write_extent(struct block_device *origin, sector_t sector, u64 size, u64 step);
unsigned int dmk_origin_write_extent_needs(struct block_device *origin, sector_t sector,
					   u64 size, u64 step);
void dmk_origin_write_retry_later(struct bio *bio);

void dmk_wait_for_exceptions(struct dmk_exception_waiter *w);
void dmk_stop_waiting_for_exceptions(struct dmk_exception_waiter *w);
void dmk_exception_done(struct block_device *origin);

#endif /* DMK_ORIGIN_WRITE_H */
