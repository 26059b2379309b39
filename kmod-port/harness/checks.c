// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Checks of what the golden vectors cannot set up, each in a fresh world:
 * a table length near 2^64, a COW device whose exceptions point where no
 * exception can be, and snapshots placed after another segment, whose I/O
 * runs past the end of their origin. The core has the same cases
 * (test/fuzz/tables.test.js and cow.test.js) and gives the same errors and
 * messages; expectations are worked out by hand below (the COW images are built byte by byte, after the format
 * notes of snapshot/persistent-store.c).
 */
#include "run.h"
#include "../io.h"

static int failures, passes;

static void check(bool ok, const char *what, const char *got)
{
	printf("%s  %s%s%s\n", ok ? "pass" : "FAIL", what, ok ? "" : ": got ", ok ? "" : got);
	if (ok)
		passes++;
	else
		failures++;
}

static void begin(void)
{
	struct run_options o = { .order = ORDER_FIFO, .reserve = 16 };

	world_begin(&o);
}

static void end(const char *what)
{
	char detail[1024];

	if (!world_end(detail, sizeof(detail), true))
		check(false, what, detail);
}

/* dmsetup create: 0 or a positive errno, the message in dmc_msg. */
static int create(const char *name, const char *table, struct hdev **dev)
{
	char why[MSG_LEN];
	int r = dmc_create(name, dev);

	if (r)
		return -r;
	r = dmc_load(*dev, table);
	if (r) {
		snprintf(why, sizeof(why), "%s", dmc_msg);
		dmc_remove(*dev);
		*dev = NULL;
		snprintf(dmc_msg, sizeof(dmc_msg), "%s", why);
		return -r;
	}
	return -dmc_resume(*dev);
}

/* A create that must fail with err and exactly this message. */
static void create_fails(const char *name, const char *table, int err, const char *msg,
			 const char *what)
{
	char got[MSG_LEN + 32];
	struct hdev *dev;
	int r = create(name, table, &dev);

	snprintf(got, sizeof(got), "errno %d, '%s'", r, r ? dmc_msg : "");
	check(r == err && !strcmp(dmc_msg, msg), what, got);
	if (!r)
		dmc_remove(dev);
}

struct done {
	bool done;
	int err;
};

static void io_done(struct bio *bio)
{
	struct done *d = bio->bi_private;

	d->done = true;
	d->err = blk_status_to_errno(bio->bi_status);
}

/* One request through a mapped device, run to completion: 0 or a positive errno. */
static int io(struct hdev *dev, unsigned int op, u64 sector, unsigned int count, void *buf)
{
	struct done d = { false, 0 };
	struct bio bio;

	memset(&bio, 0, sizeof(bio));
	bio.bi_bdev = &dev->bdev;
	bio.bi_opf = op;
	bio.bi_iter.bi_sector = sector;
	bio.bi_iter.bi_size = count << SECTOR_SHIFT;
	bio.shim_data = buf;
	bio.bi_end_io = io_done;
	bio.bi_private = &d;
	dmc_submit(dev, &bio);
	while (!d.done && pump_step())
		;
	return d.done ? d.err : -1;
}

/* ---- ebs: core-as/targets/ebs.ts refuses a length that overflows when rounded to blocks */

static void ebs_length_overflow(void)
{
	struct hdev *dev;
	char got[MSG_LEN + 32];
	int r;

	begin();
	disk_add("a", 4096);
	/* 2^64 - 1 and 2^64 - 7 round up to 2^64 with blocks of 8 sectors: 0 in 64 bits */
	create_fails("big", "0 18446744073709551615 ebs a 0 8 8", EINVAL,
		     "big: line 1: ebs: target length 18446744073709551615 does not fit in whole underlying blocks",
		     "ebs: a length of 2^64 - 1 with 8-sector blocks is refused");
	create_fails("big", "0 18446744073709551609 ebs a 0 8 8", EINVAL,
		     "big: line 1: ebs: target length 18446744073709551609 does not fit in whole underlying blocks",
		     "ebs: a length of 2^64 - 7 with 8-sector blocks is refused");
	/* 2^64 - 8 is whole blocks: no overflow, the device is too small */
	r = create("big", "0 18446744073709551608 ebs a 0 8 8", &dev);
	snprintf(got, sizeof(got), "errno %d, '%s'", r, dmc_msg);
	check(r == EINVAL && strstr(dmc_msg, "device a is too small"),
	      "ebs: a length of 2^64 - 8 is checked against the device instead", got);
	end("ebs length checks");
}

/* ---- the COW loader: core-as/snapshot/persistent-store.ts badNewChunk */

/*
 * Chunks of one sector: an area holds 512 / 16 = 32 exceptions, so the
 * metadata areas are chunks 1, 34, 67, ... (1 + 33 * i) and the data chunks
 * of area 0 are 2..33. The COW device has 40 chunks.
 */
#define COW_CHUNKS	40

static void cow_header(unsigned char *cow)
{
	__le32 *h = (__le32 *)cow;

	h[0] = cpu_to_le32(0x70416e53);	/* "SnAp" */
	h[1] = cpu_to_le32(1);		/* valid */
	h[2] = cpu_to_le32(1);		/* version */
	h[3] = cpu_to_le32(1);		/* chunk size */
}

static void cow_entry(unsigned char *cow, u64 area_chunk, u64 i, u64 old_chunk, u64 new_chunk)
{
	__le64 *e = (__le64 *)(cow + (area_chunk << SECTOR_SHIFT)) + 2 * i;

	e[0] = cpu_to_le64(old_chunk);
	e[1] = cpu_to_le64(new_chunk);
}

/* An origin and a valid COW image, no exceptions yet (full_area0: 32 valid ones in area 0). */
static struct hdisk *cow_disk(bool full_area0)
{
	struct hdisk *o = disk_add("o", 64), *c = disk_add("c", COW_CHUNKS);
	u64 i;

	for (i = 0; i < 64 << SECTOR_SHIFT; i++)
		o->bytes[i] = (unsigned char)(i / 512 + 1);
	cow_header(c->bytes);
	for (i = 0; full_area0 && i < 32; i++)
		cow_entry(c->bytes, 1, i, 32 + i, 2 + i);
	return c;
}

static void cow_refused(u64 area, u64 i, u64 new_chunk, bool full_area0, const char *why,
			const char *what)
{
	char msg[MSG_LEN];
	struct hdisk *c;

	begin();
	c = cow_disk(full_area0);
	if (area == 0)
		cow_entry(c->bytes, 1, 0, 0, 2);
	cow_entry(c->bytes, area == 0 ? 1 : 34, i, 5, new_chunk);
	snprintf(msg, sizeof(msg),
		 "s: line 1: snapshot: failed to read snapshot metadata: invalid or corrupt snapshot: metadata area %llu, exception %llu: %s",
		 (unsigned long long)area, (unsigned long long)i, why);
	create_fails("s", "0 64 snapshot o c P 1", ENXIO, msg, what);
	end(what);
}

static void cow_bad_exceptions(void)
{
	unsigned char buf[512];
	struct hdisk *c;
	struct hdev *s;
	int r, r2;

	cow_refused(0, 1, 40, false,
		    "COW chunk 40 lies past the end of the COW device (40 chunks)",
		    "COW loader: an exception past the end of the COW device is refused");
	cow_refused(0, 1, 1, false, "COW chunk 1 is a metadata area",
		    "COW loader: an exception on metadata area 0 is refused");
	cow_refused(1, 0, 34, true, "COW chunk 34 is a metadata area",
		    "COW loader: an exception on metadata area 1 (read after a full area 0) is refused");

	/* The last chunk of the device and a data chunk of area 1 are fine. */
	begin();
	c = cow_disk(true);
	cow_entry(c->bytes, 34, 0, 3, 39);
	memset(c->bytes + 39 * 512, 0xab, 512);
	r = create("s", "0 64 snapshot o c P 1", &s);
	check(r == 0, "COW loader: exceptions on the last chunk and in area 1 load", dmc_msg);
	if (!r) {
		r2 = io(s, REQ_OP_READ, 3, 1, buf);
		check(!r2 && buf[0] == 0xab && buf[511] == 0xab,
		      "COW loader: the loaded exception is in effect (chunk 3 reads COW chunk 39)",
		      "other data");
	}
	end("COW loader control");
}

/* ---- I/O past the end of the origin: core-as/io.ts, the block layer's bio_check_eod */

static void past_origin_end(void)
{
	unsigned char buf[512] = { 0 };
	char status[256], got[300];
	struct hdev *m;
	int r;

	/* The core's case: snapshot-merge maps by device sector, 4111 lies past b's 4096. */
	begin();
	disk_add("b", 4096);
	disk_add("cow2", 2048);
	r = create("m", "0 16 zero\n16 4096 snapshot-merge b cow2 P 8", &m);
	check(r == 0, "past the end: a snapshot-merge after a zero segment loads", dmc_msg);
	if (!r) {
		check(io(m, REQ_OP_READ, 4111, 1, buf) == EIO,
		      "past the end: a snapshot-merge read past its origin fails with EIO", "");
		check(io(m, REQ_OP_WRITE, 4111, 1, buf) == EIO,
		      "past the end: a snapshot-merge write past its origin fails with EIO", "");
		check(io(m, REQ_OP_READ, 2056, 1, buf) == 0,
		      "past the end: a snapshot-merge read inside its origin succeeds", "");
	}
	end("snapshot-merge past the end");

	/*
	 * A snapshot write past the origin's end starts a copy of a chunk that is
	 * not there (dm-snap's start_copy reads the whole chunk): the read fails,
	 * the write fails and the snapshot is invalid.
	 */
	begin();
	disk_add("b", 4096);
	disk_add("cow2", 2048);
	r = create("m", "0 16 zero\n16 4096 snapshot b cow2 P 8", &m);
	check(r == 0, "past the end: a snapshot after a zero segment loads", dmc_msg);
	if (!r) {
		check(io(m, REQ_OP_WRITE, 4111, 1, buf) == EIO,
		      "past the end: a snapshot write whose copy reads past the origin fails with EIO",
		      "");
		dmc_status(m, status, sizeof(status));
		snprintf(got, sizeof(got), "'%s'", status);
		check(strstr(status, "16 4096 snapshot Invalid") != NULL,
		      "past the end: the failed copy leaves the snapshot invalid", got);
	}
	end("snapshot past the end");
}

/*
 * ---- handover while the source is busy: core-as/targets/snapshot.ts preresume
 * (test/core/snapshot-handover-source-suspended.test.js has the same cases)
 */

#define SNAP_TABLE "0 64 snapshot o c P 8"
#define NOT_SUSPENDED "s: line 1: snapshot: Unable to perform snapshot handover until source is suspended."

static void check_status(struct hdev *dev, const char *want, const char *what)
{
	char status[256], got[300];

	dmc_status(dev, status, sizeof(status));
	snprintf(got, sizeof(got), "'%s'", status);
	check(!strcmp(status, want), what, got);
}

static void check_refused(int r, int err, const char *msg, const char *what)
{
	char got[MSG_LEN + 32];

	snprintf(got, sizeof(got), "errno %d, '%s'", r, r ? dmc_msg : "");
	check(r == err && !strcmp(dmc_msg, msg), what, got);
}

/*
 * A merging device over a snapshot a with 4 exceptions, one merge step each,
 * its merge I/O not run yet. Removing a (*a NULL) runs that I/O: a table's
 * destructor here waits until everything ran.
 */
static struct hdev *merging(struct hdev **a_out)
{
	unsigned char buf[512];
	struct hdev *a, *m;
	int i, r;

	disk_add("o", 64);
	disk_add("c", 128);
	r = create("a", SNAP_TABLE, &a);
	for (i = 0; !r && i < 4; i++) {
		memset(buf, 100 + i, sizeof(buf));
		r = io(a, REQ_OP_WRITE, i * 16, 1, buf);
	}
	r = r ? r : -dmc_create("m", &m);
	r = r ? r : -dmc_load(m, "0 64 snapshot-merge o c P 8");
	r = r ? r : -dmc_suspend(a);
	r = r ? r : -dmc_resume(m);
	if (!a_out)
		r = r ? r : -dmc_remove(a);
	else
		*a_out = a;
	check(r == 0, "handover: a snapshot-merge takes a snapshot's store over", dmc_msg);
	return r ? NULL : m;
}

static void handover_source_busy(void)
{
	unsigned char buf[512];
	struct done d = { false, 0 };
	struct bio bio;
	struct hdev *a, *m, *s;
	int r;

	begin();
	m = merging(NULL);
	if (m) {
		check_refused(create("s", SNAP_TABLE, &s), EINVAL, NOT_SUSPENDED,
			      "handover: refused while the source merges, not suspended");
		while (pump_step())
			;
		check_status(m, "0 64 snapshot-merge 16/128 16\n",
			     "handover: the source's merge still runs to the end");
	}
	end("handover from a merging device");

	begin();
	disk_add("o", 64);
	disk_add("c", 128);
	r = create("a", SNAP_TABLE, &a);
	check(r == 0, "handover: the source loads", dmc_msg);
	if (!r) {
		/* A partial chunk write: its copy is in flight, not run yet. */
		memset(&bio, 0, sizeof(bio));
		memset(buf, 77, sizeof(buf));
		bio.bi_bdev = &a->bdev;
		bio.bi_opf = REQ_OP_WRITE;
		bio.bi_iter.bi_size = 512;
		bio.shim_data = buf;
		bio.bi_end_io = io_done;
		bio.bi_private = &d;
		dmc_submit(a, &bio);
		check_refused(create("s", SNAP_TABLE, &s), EINVAL, NOT_SUSPENDED,
			      "handover: refused while the source copies a chunk, not suspended");
		while (!d.done && pump_step())
			;
		check(d.done && !d.err, "handover: the source's write completes", "");
		r = -dmc_suspend(a);
		r = r ? r : -dmc_resume(s);
		check(r == 0, "handover: a retry after suspending the source takes the store over",
		      dmc_msg);
		check_status(s, "0 64 snapshot 24/128 16\n", "handover: the new snapshot has the copied chunk");
		check_status(a, "0 64 snapshot Invalid\n", "handover: the source is invalid after it");
	}
	end("handover from a snapshot copying a chunk");

	begin();
	disk_add("o", 64);
	disk_add("c", 128);
	r = create("a", SNAP_TABLE, &a);
	r = r ? r : -dmc_suspend(a);
	r = r ? r : -dmc_create("s", &s);
	r = r ? r : -dmc_load(s, SNAP_TABLE);
	check(r == 0, "handover: a reload waits for its resume", dmc_msg);
	if (!r) {
		check_refused(-dmc_resume(a), EINVAL,
			      "a: line 1: snapshot: Unable to resume snapshot source until handover completes.",
			      "handover: the source may not resume before the handover");
		check(dmc_resume(s) == 0 && dmc_resume(a) == 0,
		      "handover: the source resumes after it", dmc_msg);
	}
	end("handover: resuming the source first");

	/* Suspending the merge stops it after the step in flight (stop_merge waits for it). */
	begin();
	m = merging(&a);
	if (m) {
		r = -dmc_suspend(m);
		check(r == 0, "merge: a merging device suspends", dmc_msg);
		check_status(m, "0 64 snapshot-merge 40/128 16\n",
			     "merge: suspending stops it after the step in flight");
		r = r ? r : -dmc_remove(a);
		r = r ? r : create("s", SNAP_TABLE, &s);
		check(r == 0, "merge: a handover from the suspended merge goes on", dmc_msg);
		check_status(s, "0 64 snapshot 40/128 16\n", "merge: the new snapshot has the 3 left");
	}
	end("handover from a suspended merge");

	begin();
	m = merging(&a);
	if (m) {
		r = -dmc_suspend(m);
		r = r ? r : -dmc_resume(m);
		r = r ? r : -dmc_remove(a);
		while (pump_step())
			;
		check(r == 0, "merge: suspend and resume", dmc_msg);
		check_status(m, "0 64 snapshot-merge 16/128 16\n", "merge: it goes on after the resume");
	}
	end("merge resumed");
}

int scenario_checks(int *passed)
{
	failures = 0;
	passes = 0;
	ebs_length_overflow();
	cow_bad_exceptions();
	past_origin_end();
	handover_source_busy();
	*passed = passes;
	return failures;
}
