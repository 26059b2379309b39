/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The userspace harness: what stands around the target files in place of
 * the kernel. dm-target.c, dm-table.c, dm-ioctl.c and dm.c are
 * device-mapper (the target registry, tables, mapped devices, cloning and
 * splitting requests, as core-as/io.ts and table.ts do it and with the
 * core's messages; dm-core.h is what they share), pump.c is the block layer
 * and the disks with a selectable completion order, kshim.c the rest of the
 * kernel API.
 */
#ifndef DMK_HARNESS_H
#define DMK_HARNESS_H

#include "kshim.h"

#define MSG_LEN 1024

/* ---- backing disks (pump.c) */

struct hdisk {
	char name[128];
	u64 sectors;
	unsigned char *bytes;
	unsigned int aligned;	/* writes reaching it must be aligned to this many sectors (0: any) */
	struct block_device bdev;
	struct hdisk *next;
};

struct hdisk *disk_add(const char *name, u64 sectors);
struct hdisk *disk_find(const char *name);
void disks_free(void);

/* ---- completion order (pump.c) */

enum order { ORDER_FIFO, ORDER_REVERSE, ORDER_SHUFFLE, ORDER_STALL };

struct run_options {
	enum order order;
	u32 seed;		/* for ORDER_SHUFFLE */
	unsigned int reserve;	/* dmk_reserve_low for this run */
	enum atomic_failures atomic;	/* how often atomic mempool allocations fail */
};

void pump_reset(const struct run_options *opts);
void pump_queue_disk_bio(struct bio *bio);
bool pump_step(void);			/* one unit of work; false when idle */
void pump_until_idle(void);
void pump_stall(void);			/* the submitting CPU stalls (ORDER_STALL) */
bool pump_fire_next_timer(void);	/* jumps the clock to the next timer; false if none */
void pump_set_time(unsigned long ms);
void pump_queue_work(struct work_struct *work);
void pump_add_timer(struct timer_list *t);
void pump_del_timer(struct timer_list *t);
void violation(const char *fmt, ...) __printf(1, 2);
const char *violations(void);

/* ---- mapped devices (dm-ioctl.c), tables (dm-table.c), requests (dm.c), targets (dm-target.c) */

struct dm_table {
	struct hdev *md;
	unsigned int n;
	struct dm_target *targets;
	sector_t size;
	bool retired;
	bool discards;		/* the queue takes discards (see dmc_table_takes_discards) */
	/* How the block layer cuts discards for the queue (stacked limits, in sectors). */
	sector_t max_discard_sectors;
	sector_t discard_granularity;
};

struct hdev {
	char name[128];
	struct block_device bdev;
	struct dm_table *live;
	struct dm_table *inactive;
	bool suspended;
	int open_count;
	int users;		/* live or inactive tables of other devices that stack on this one */
	int inflight;		/* requests dispatched to a table and not yet completed */
	struct bio_list held;	/* requests that arrived while suspended */
	unsigned int events;	/* dm_table_event calls of its live table (dmsetup info's event number) */
	struct hdev *next;
};

/* Control calls: 0 or a negative errno, the reason in dmc_msg (as the core's message buffer). */
extern char dmc_msg[MSG_LEN];
int dmc_create(const char *name, struct hdev **result);
struct hdev *dmc_find(const char *name);
int dmc_load(struct hdev *dev, const char *text);
int dmc_suspend(struct hdev *dev);
int dmc_resume(struct hdev *dev);
int dmc_remove(struct hdev *dev);
int dmc_message(struct hdev *dev, u64 sector, int argc, char **argv);
int dmc_table(struct hdev *dev, char *out, size_t len);
int dmc_status(struct hdev *dev, char *out, size_t len);
int dmc_range_error(struct hdev *dev, unsigned int op, u64 sector, u64 count);
void dmc_submit(struct hdev *dev, struct bio *bio);
void dmc_teardown(void);
void dmc_register_targets(void);
void dmc_print_target_names(void);
void dmc_unregister_targets(void);

/* ---- allocation accounting (kshim.c) */

long shim_live_allocations(void);

/* ---- utilities */

void sha256(const void *data, size_t len, unsigned char out[32]);
void sha256_hex(const void *data, size_t len, char out[65]);
void pattern_fill(unsigned char *buf, size_t len, u32 seed);

#endif /* DMK_HARNESS_H */
