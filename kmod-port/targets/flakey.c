// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-flakey <dev> <offset> <up interval> <down interval>
 *              [<#feature args> [<feature>...]]:
 * a linear mapping that misbehaves on a schedule (core-as/targets/flakey.ts,
 * Linux 6.1 dm-flakey.c plus upstream's error_reads). Up for `up` seconds,
 * then down for `down` seconds, counted in jiffies from table load. While
 * down:
 *   no features          every read and write fails (EIO)
 *   error_reads          reads fail
 *   drop_writes          writes succeed without reaching the device
 *   error_writes         writes fail
 *   corrupt_bio_byte N d v f   byte N (from 1) of each matching read (d=r,
 *                        after it completes) or write (d=w, before it is
 *                        sent) becomes v; f: only bios whose bi_opf has all
 *                        these bits
 * FLUSH and DISCARD count as writes, as bio_data_dir() says.
 */
#include "dmk.h"
#include "args.h"
#include "devref.h"
#include "io.h"
#include "msg.h"
#include "targets.h"

#define MAX_FEATURE_ARGS	6
/* Per-bio state: mapped while down (a read's end_io may corrupt), or a write's byte N replaced. */
#define TRACK_NONE		-1
#define TRACK_DOWN		1
#define TRACK_CORRUPTED		0x100	/* + the original byte, put back at end_io */

struct flakey_c {
	struct dm_dev *dev;
	sector_t start;
	unsigned int up;
	unsigned int down;
	unsigned long start_time;
	bool all_fail;		/* no feature arguments: everything fails while down */
	bool error_reads;
	bool drop_writes;
	bool error_writes;
	u32 corrupt_byte;	/* 0: feature off; else 1-based byte number */
	bool corrupt_writes;
	u8 corrupt_value;
	u32 corrupt_flags;
};

struct flakey_bio {
	int tracked;
	struct bvec_iter iter;	/* the data as mapped (the device may advance the bio) */
};

/* corrupt_bio_byte <Nth_byte> <r|w> <value> <flags>, its parameters at argv[i..i+4). */
static int flakey_parse_corrupt(struct dm_target *ti, struct flakey_c *fc, char **argv,
				unsigned int i, unsigned int end)
{
	u64 nth, value, flags;

	if (fc->corrupt_byte) {
		ti->error = "feature corrupt_bio_byte duplicated";
		return -EINVAL;
	}
	if (end - i < 4) {
		dmk_set_error(ti, "feature corrupt_bio_byte requires 4 parameters: %s",
			      "<Nth_byte> <r|w> <value> <flags>");
		return -EINVAL;
	}
	if (!dmk_parse_u64(argv[i], &nth) || nth == 0 || nth > U32_MAX) {
		dmk_set_error(ti, "invalid corrupt bio byte '%s' (1-4294967295)", argv[i]);
		return -EINVAL;
	}
	if (strcasecmp(argv[i + 1], "r") && strcasecmp(argv[i + 1], "w")) {
		dmk_set_error(ti, "invalid corrupt bio direction '%s' (r or w)", argv[i + 1]);
		return -EINVAL;
	}
	if (!dmk_parse_u64(argv[i + 2], &value) || value > 255) {
		dmk_set_error(ti, "invalid corrupt value '%s' to write into bio byte (0-255)",
			      argv[i + 2]);
		return -EINVAL;
	}
	if (!dmk_parse_u64(argv[i + 3], &flags) || flags > U32_MAX) {
		dmk_set_error(ti, "invalid corrupt bio flags mask '%s'", argv[i + 3]);
		return -EINVAL;
	}
	fc->corrupt_byte = (u32)nth;
	fc->corrupt_writes = !strcasecmp(argv[i + 1], "w");
	fc->corrupt_value = (u8)value;
	fc->corrupt_flags = (u32)flags;
	return 0;
}

static int flakey_incompatible(struct dm_target *ti, const char *feature, const char *flag)
{
	dmk_set_error(ti, "%s is incompatible with corrupt_bio_byte with the %s flag set", feature,
		      flag);
	return -EINVAL;
}

/* parse_features: argv[4] counts the feature words that follow, and nothing may follow them. */
static int flakey_parse_features(struct dm_target *ti, struct flakey_c *fc, unsigned int argc,
				 char **argv)
{
	unsigned int i = 5, end, given;
	const char *word;
	u64 n;
	int r;

	if (argc == 4) {
		fc->all_fail = true;
		return 0;
	}
	if (!dmk_parse_u64(argv[4], &n) || n > MAX_FEATURE_ARGS) {
		dmk_set_error(ti, "invalid number of feature args '%s' (0-6)", argv[4]);
		return -EINVAL;
	}
	end = 5 + (unsigned int)n;
	given = argc - 5;
	if (end > argc) {
		dmk_set_error(ti, "not enough feature arguments: %llu announced, %u given", n,
			      given);
		return -EINVAL;
	}
	if (end < argc) {
		char rest[128] = "";
		size_t used = 0;
		unsigned int k;

		for (k = end; k < argc && used < sizeof(rest); k++)
			used += scnprintf(rest + used, sizeof(rest) - used, "%s%s",
					  k > end ? " " : "", argv[k]);
		dmk_set_error(ti, "unexpected arguments after the features: '%s'", rest);
		return -EINVAL;
	}
	if (n == 0)
		fc->all_fail = true;
	while (i < end) {
		word = argv[i++];
		if (!strcasecmp(word, "error_reads")) {
			if (fc->error_reads) {
				ti->error = "feature error_reads duplicated";
				return -EINVAL;
			}
			fc->error_reads = true;
		} else if (!strcasecmp(word, "drop_writes")) {
			if (fc->drop_writes) {
				ti->error = "feature drop_writes duplicated";
				return -EINVAL;
			}
			if (fc->error_writes) {
				dmk_set_error(ti, "feature %s conflicts with feature %s",
					      "drop_writes", "error_writes");
				return -EINVAL;
			}
			fc->drop_writes = true;
		} else if (!strcasecmp(word, "error_writes")) {
			if (fc->error_writes) {
				ti->error = "feature error_writes duplicated";
				return -EINVAL;
			}
			if (fc->drop_writes) {
				dmk_set_error(ti, "feature %s conflicts with feature %s",
					      "error_writes", "drop_writes");
				return -EINVAL;
			}
			fc->error_writes = true;
		} else if (!strcasecmp(word, "corrupt_bio_byte")) {
			r = flakey_parse_corrupt(ti, fc, argv, i, end);
			if (r)
				return r;
			i += 4;
		} else {
			dmk_set_error(ti, "unrecognised flakey feature '%s'", word);
			return -EINVAL;
		}
	}
	if (fc->corrupt_byte && fc->corrupt_writes && fc->drop_writes)
		return flakey_incompatible(ti, "drop_writes", "WRITE");
	if (fc->corrupt_byte && fc->corrupt_writes && fc->error_writes)
		return flakey_incompatible(ti, "error_writes", "WRITE");
	if (fc->corrupt_byte && !fc->corrupt_writes && fc->error_reads)
		return flakey_incompatible(ti, "error_reads", "READ");
	return 0;
}

static int flakey_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct flakey_c *fc;
	u64 start, up, down;
	int r;

	if (argc < 4) {
		dmk_set_error(ti,
			      "invalid argument count: expected <dev> <offset> <up interval> <down interval> [<#feature args> [<arg>...]], got %u arguments",
			      argc);
		return -EINVAL;
	}
	fc = kzalloc(sizeof(*fc), GFP_KERNEL);
	if (!fc) {
		ti->error = "cannot allocate flakey context";
		return -ENOMEM;
	}
	fc->start_time = jiffies;
	r = -EINVAL;
	if (!dmk_parse_u64(argv[1], &start)) {
		dmk_set_error(ti, "invalid device sector '%s'", argv[1]);
		goto bad;
	}
	fc->start = start;
	if (!dmk_parse_u64(argv[2], &up) || up > U32_MAX) {
		dmk_set_error(ti, "invalid up interval '%s' (seconds, 0-4294967295)", argv[2]);
		goto bad;
	}
	if (!dmk_parse_u64(argv[3], &down) || down > U32_MAX) {
		dmk_set_error(ti, "invalid down interval '%s' (seconds, 0-4294967295)", argv[3]);
		goto bad;
	}
	if (up + down == 0) {
		ti->error = "total (up + down) interval is zero";
		goto bad;
	}
	if (up + down > U32_MAX) {
		ti->error = "interval overflow: up + down must fit in 32 bits";
		goto bad;
	}
	fc->up = (unsigned int)up;
	fc->down = (unsigned int)down;
	r = flakey_parse_features(ti, fc, argc, argv);
	if (r)
		goto bad;
	r = dmk_get_device(ti, argv[0], fc->start, ti->len, &fc->dev);
	if (r)
		goto bad;
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;	/* no write-zeroes bios, as in Linux */
	ti->per_io_data_size = sizeof(struct flakey_bio);
	ti->private = fc;
	return 0;
bad:
	kfree(fc);
	return r;
}

static void flakey_dtr(struct dm_target *ti)
{
	struct flakey_c *fc = ti->private;

	dm_put_device(ti, fc->dev);
	kfree(fc);
}

/* Whole seconds since table load, against the up/down cycle. */
static bool flakey_is_down(struct flakey_c *fc)
{
	unsigned long elapsed = (jiffies - fc->start_time) / HZ;

	return elapsed % ((unsigned long)fc->up + fc->down) >= fc->up;
}

static int flakey_remap(struct dm_target *ti, struct flakey_c *fc, struct bio *bio)
{
	bio_set_dev(bio, fc->dev->bdev);
	if (bio_sectors(bio))
		bio->bi_iter.bi_sector = fc->start + dm_target_offset(ti, bio->bi_iter.bi_sector);
	return DM_MAPIO_REMAPPED;
}

static bool flakey_corruption_applies(struct flakey_c *fc, struct bio *bio,
				      struct bvec_iter *iter)
{
	return (bio->bi_opf & fc->corrupt_flags) == fc->corrupt_flags &&
	       (u64)(fc->corrupt_byte - 1) < iter->bi_size;
}

static int flakey_map(struct dm_target *ti, struct bio *bio)
{
	struct flakey_c *fc = ti->private;
	struct flakey_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	u8 byte;

	pb->tracked = TRACK_NONE;
	pb->iter = bio->bi_iter;
	if (!flakey_is_down(fc))
		return flakey_remap(ti, fc, bio);
	if (bio_op(bio) == REQ_OP_READ) {
		if (fc->all_fail || fc->error_reads)
			return DM_MAPIO_KILL;
		pb->tracked = TRACK_DOWN;
		return flakey_remap(ti, fc, bio);
	}
	if (fc->drop_writes) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (fc->error_writes) {
		bio_io_error(bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (fc->all_fail)
		return DM_MAPIO_KILL;
	if (fc->corrupt_byte && fc->corrupt_writes && bio_op(bio) == REQ_OP_WRITE &&
	    flakey_corruption_applies(fc, bio, &pb->iter)) {
		dmk_bio_copy(bio, pb->iter, fc->corrupt_byte - 1, &byte, 1, false);
		pb->tracked = TRACK_CORRUPTED + byte;
		dmk_bio_copy(bio, pb->iter, fc->corrupt_byte - 1, &fc->corrupt_value, 1, true);
	}
	return flakey_remap(ti, fc, bio);
}

static int flakey_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct flakey_c *fc = ti->private;
	struct flakey_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	u8 byte;

	if (pb->tracked >= TRACK_CORRUPTED) {
		/* the caller's data is left as it was, as upstream's bio copy achieves */
		byte = (u8)(pb->tracked - TRACK_CORRUPTED);
		dmk_bio_copy(bio, pb->iter, fc->corrupt_byte - 1, &byte, 1, true);
	} else if (pb->tracked == TRACK_DOWN && !*error && fc->corrupt_byte &&
		   !fc->corrupt_writes && flakey_corruption_applies(fc, bio, &pb->iter)) {
		dmk_bio_copy(bio, pb->iter, fc->corrupt_byte - 1, &fc->corrupt_value, 1, true);
	}
	return DM_ENDIO_DONE;
}

static void flakey_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			  char *result, unsigned int maxlen)
{
	struct flakey_c *fc = ti->private;
	unsigned int sz = 0, words;

	result[0] = '\0';
	if (type != STATUSTYPE_TABLE)
		return;
	/* Linux 6.1 prints each word followed by a space, the last one included. */
	DMEMIT("%s %llu %u %u ", fc->dev->name, (unsigned long long)fc->start, fc->up, fc->down);
	words = (fc->error_reads ? 1 : 0) + (fc->drop_writes || fc->error_writes ? 1 : 0) +
		(fc->corrupt_byte ? 5 : 0);
	DMEMIT("%u ", words);
	if (fc->error_reads)
		DMEMIT("error_reads ");
	if (fc->drop_writes)
		DMEMIT("drop_writes ");
	else if (fc->error_writes)
		DMEMIT("error_writes ");
	if (fc->corrupt_byte)
		DMEMIT("corrupt_bio_byte %u %c %u %u ", fc->corrupt_byte,
		       fc->corrupt_writes ? 'w' : 'r', fc->corrupt_value, fc->corrupt_flags);
}

static int flakey_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct flakey_c *fc = ti->private;

	return fn(ti, fc->dev, fc->start, ti->len, data);
}

struct target_type dmk_flakey_target = {
	.name = "dmkit-flakey",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = flakey_ctr,
	.dtr = flakey_dtr,
	.map = flakey_map,
	.end_io = flakey_end_io,
	.status = flakey_status,
	.iterate_devices = flakey_iterate_devices,
};
