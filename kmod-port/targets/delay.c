// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-delay <dev> <offset> <delay> [<write dev> <write offset> <write delay>
 *             [<flush dev> <flush offset> <flush delay>]]:
 * a linear mapping that holds each bio for a while before sending it on
 * (core-as/targets/delay.ts, Linux dm-delay.c). Three classes, read, write
 * (also DISCARD) and flush, each with its own device, offset and delay in
 * milliseconds; with 3 arguments all share them, with 6 flushes follow the
 * write class. A held bio is released once its deadline passed, in arrival
 * order, by a timer; suspending releases everything at once.
 */
#include "dmk.h"
#include "args.h"
#include "devref.h"
#include "io.h"
#include "msg.h"
#include "targets.h"

#define READ_CLASS	0
#define WRITE_CLASS	1
#define FLUSH_CLASS	2

/* One direction's destination and delay, and how many of its bios are held (ops). */
struct delay_class {
	struct dm_dev *dev;
	bool own_dev;		/* false when copied from the class before */
	sector_t start;
	unsigned int delay;
	unsigned int ops;
};

struct delay_c {
	unsigned int argc;
	struct delay_class class[3];
	struct list_head held;	/* held bios, oldest first (under dmk_lock) */
	struct timer_list timer;
};

struct delay_bio {
	struct dmk_bio_info info;	/* for dmk_resume_deferred */
	struct list_head node;
	unsigned long deadline;
	int class;
};

/* delay_class_ctr: <dev> <offset> <delay> at argv[i..i+3); what names the class in messages. */
static int delay_class_ctr(struct dm_target *ti, struct delay_class *c, char **argv,
			   unsigned int i, const char *what)
{
	u64 start, delay;
	int r;

	if (!dmk_parse_u64(argv[i + 1], &start)) {
		dmk_set_error(ti, "invalid %sdevice sector '%s'", what, argv[i + 1]);
		return -EINVAL;
	}
	if (!dmk_parse_u64(argv[i + 2], &delay) || delay > U32_MAX) {
		dmk_set_error(ti, "invalid %sdelay '%s' (milliseconds, 0-4294967295)", what,
			      argv[i + 2]);
		return -EINVAL;
	}
	r = dmk_get_device(ti, argv[i], start, ti->len, &c->dev);
	if (r) {
		if (*what)
			dmk_set_error(ti, "%sdevice: %s", what, ti->error);
		return r;
	}
	c->own_dev = true;
	c->start = start;
	c->delay = (unsigned int)delay;
	return 0;
}

static void delay_put_devices(struct dm_target *ti, struct delay_c *dc)
{
	int i;

	for (i = 0; i < 3; i++) {
		if (dc->class[i].own_dev)
			dm_put_device(ti, dc->class[i].dev);
	}
}

static void delay_release_timer(struct timer_list *t);

static int delay_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct delay_c *dc;
	int r;

	if (argc != 3 && argc != 6 && argc != 9) {
		dmk_set_error(ti,
			      "requires exactly 3, 6 or 9 arguments: <dev> <offset> <delay> [<write dev> <write offset> <write delay> [<flush dev> <flush offset> <flush delay>]], got %u",
			      argc);
		return -EINVAL;
	}
	dc = kzalloc(sizeof(*dc), GFP_KERNEL);
	if (!dc) {
		ti->error = "cannot allocate delay context";
		return -ENOMEM;
	}
	dc->argc = argc;
	r = delay_class_ctr(ti, &dc->class[READ_CLASS], argv, 0, "");
	if (r)
		goto bad;
	/* Fewer arguments: the next class copies the one before (with its own ops count). */
	if (argc >= 6) {
		r = delay_class_ctr(ti, &dc->class[WRITE_CLASS], argv, 3, "write ");
		if (r)
			goto bad;
	} else {
		dc->class[WRITE_CLASS] = dc->class[READ_CLASS];
		dc->class[WRITE_CLASS].own_dev = false;
	}
	if (argc == 9) {
		r = delay_class_ctr(ti, &dc->class[FLUSH_CLASS], argv, 6, "flush ");
		if (r)
			goto bad;
	} else {
		dc->class[FLUSH_CLASS] = dc->class[WRITE_CLASS];
		dc->class[FLUSH_CLASS].own_dev = false;
	}
	INIT_LIST_HEAD(&dc->held);
	timer_setup(&dc->timer, delay_release_timer, 0);
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;	/* no write-zeroes bios, as in Linux */
	ti->per_io_data_size = sizeof(struct delay_bio);
	ti->accounts_remapped_io = true;	/* held bios go on with dm_submit_bio_remap */
	ti->private = dc;
	return 0;
bad:
	delay_put_devices(ti, dc);
	kfree(dc);
	return r;
}

/* Sends on every held bio due now (all of them when all), in arrival order; under dmk_lock. */
static void delay_release(struct delay_c *dc, bool all)
{
	struct delay_bio *db, *tmp;
	unsigned long next = 0;
	bool more = false;

	list_for_each_entry_safe(db, tmp, &dc->held, node) {
		if (all || time_after_eq(jiffies, db->deadline)) {
			list_del(&db->node);
			dc->class[db->class].ops--;
			dmk_release(&db->info, DMK_MAP_REMAPPED);
		} else if (!more || time_before(db->deadline, next)) {
			next = db->deadline;
			more = true;
		}
	}
	if (more)
		mod_timer(&dc->timer, next);
}

static void delay_release_timer(struct timer_list *t)
{
	struct delay_c *dc = from_timer(dc, t, timer);
	unsigned long flags;

	spin_lock_irqsave(&dmk_lock, flags);
	delay_release(dc, false);
	spin_unlock_irqrestore(&dmk_lock, flags);
}

/* delay_presuspend: whatever is held goes on now. */
static void delay_presuspend(struct dm_target *ti)
{
	struct delay_c *dc = ti->private;
	unsigned long flags;

	spin_lock_irqsave(&dmk_lock, flags);
	delay_release(dc, true);
	spin_unlock_irqrestore(&dmk_lock, flags);
	del_timer_sync(&dc->timer);
}

static void delay_dtr(struct dm_target *ti)
{
	struct delay_c *dc = ti->private;

	delay_presuspend(ti);
	delay_put_devices(ti, dc);
	kfree(dc);
}

static int delay_map(struct dm_target *ti, struct bio *bio)
{
	struct delay_c *dc = ti->private;
	struct delay_bio *db = dm_per_bio_data(bio, sizeof(*db));
	int index = bio_op(bio) == REQ_OP_READ ? READ_CLASS :
		    (bio->bi_opf & REQ_PREFLUSH) && !bio_sectors(bio) ? FLUSH_CLASS : WRITE_CLASS;
	struct delay_class *c = &dc->class[index];
	unsigned long flags;

	bio_set_dev(bio, c->dev->bdev);
	if (bio_sectors(bio))
		bio->bi_iter.bi_sector = c->start + dm_target_offset(ti, bio->bi_iter.bi_sector);
	if (!c->delay)
		return DM_MAPIO_REMAPPED;
	dmk_bio_info_init(&db->info, ti, bio);
	db->class = index;
	db->deadline = jiffies + msecs_to_jiffies(c->delay);
	spin_lock_irqsave(&dmk_lock, flags);
	c->ops++;
	list_add_tail(&db->node, &dc->held);
	if (!timer_pending(&dc->timer) || time_before(db->deadline, dc->timer.expires))
		mod_timer(&dc->timer, db->deadline);
	spin_unlock_irqrestore(&dmk_lock, flags);
	return DM_MAPIO_SUBMITTED;
}

static void delay_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			 char *result, unsigned int maxlen)
{
	struct delay_c *dc = ti->private;
	unsigned int sz = 0, i, n;
	unsigned long flags;

	result[0] = '\0';
	if (type == STATUSTYPE_INFO) {
		spin_lock_irqsave(&dmk_lock, flags);
		DMEMIT("%u %u %u", dc->class[READ_CLASS].ops, dc->class[WRITE_CLASS].ops,
		       dc->class[FLUSH_CLASS].ops);
		spin_unlock_irqrestore(&dmk_lock, flags);
		return;
	}
	if (type != STATUSTYPE_TABLE)
		return;
	n = dc->argc / 3;
	for (i = 0; i < n; i++)
		DMEMIT("%s%s %llu %u", i ? " " : "", dc->class[i].dev->name,
		       (unsigned long long)dc->class[i].start, dc->class[i].delay);
}

static int delay_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct delay_c *dc = ti->private;
	int i, r = 0;

	for (i = 0; i < 3 && !r; i++) {
		if (dc->class[i].own_dev)
			r = fn(ti, dc->class[i].dev, dc->class[i].start, ti->len, data);
	}
	return r;
}

struct target_type dmk_delay_target = {
	.name = "dmkit-delay",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = delay_ctr,
	.dtr = delay_dtr,
	.map = delay_map,
	.presuspend = delay_presuspend,
	.status = delay_status,
	.iterate_devices = delay_iterate_devices,
};
