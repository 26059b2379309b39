// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Requests (Linux drivers/md/dm.c's clone and split; core-as/io.ts): a bio
 * for a mapped device is held while it is suspended, else cut into clones at
 * the table's segments, max_io_len and discard limits, and each clone goes
 * through its target's map; the bio ends when every clone has.
 */
#include "dm-core.h"

struct hreq {
	struct bio *bio;
	struct hdev *dev;
	int pending;
	blk_status_t status;
};

struct hclone {
	struct hreq *req;
	struct dm_target *ti;
	unsigned int target_bio_nr;
	unsigned int *len_ptr;	/* the splitter's count of sectors the target takes */
	size_t pbd;		/* per-bio data bytes in front of this struct */
	struct bio bio;
};

static size_t pbd_bytes(unsigned int size)
{
	return (size + 15) & ~(size_t)15;
}

static struct hclone *clone_of(const struct bio *bio)
{
	return container_of(bio, struct hclone, bio);
}

void *dm_per_bio_data(struct bio *bio, size_t data_size)
{
	struct hclone *c = clone_of(bio);

	if (pbd_bytes(data_size) != c->pbd)
		shim_fatal("dm_per_bio_data(%zu) on a clone with %zu bytes of per-bio data",
			   data_size, c->pbd);
	return (char *)c - c->pbd;
}

struct bio *dm_bio_from_per_bio_data(void *data, size_t data_size)
{
	return &((struct hclone *)((char *)data + pbd_bytes(data_size)))->bio;
}

unsigned int dm_bio_get_target_bio_nr(const struct bio *bio)
{
	return clone_of(bio)->target_bio_nr;
}

/* The clone in its target's map right now (a map may end, and free, the clone itself). */
static struct hclone *mapping;

void dm_accept_partial_bio(struct bio *bio, unsigned int n_sectors)
{
	struct hclone *c = clone_of(bio);

	if (c != mapping)
		shim_fatal("dm_accept_partial_bio outside the target's map");
	if (bio->bi_opf & REQ_PREFLUSH)
		shim_fatal("dm_accept_partial_bio on a flush");
	if (n_sectors > bio_sectors(bio))
		shim_fatal("dm_accept_partial_bio(%u) on a bio of %u sectors", n_sectors,
			   bio_sectors(bio));
	*c->len_ptr = n_sectors;
	bio->bi_iter.bi_size = n_sectors << SECTOR_SHIFT;
}

void dm_submit_bio_remap(struct bio *clone, struct bio *tgt_clone)
{
	submit_bio_noacct(tgt_clone ? tgt_clone : clone);
}

static void finish_request(struct hreq *req)
{
	struct bio *bio = req->bio;

	req->dev->inflight--;
	bio->bi_status = req->status;
	free(req);
	bio_endio(bio);
}

static void clone_free(struct hclone *c)
{
	free((char *)c - c->pbd);
}

static void clone_done(struct hclone *c, blk_status_t status)
{
	struct hreq *req = c->req;

	clone_free(c);
	if (status && !req->status)
		req->status = status;
	if (--req->pending == 0)
		finish_request(req);
}

/* clone_endio: the target sees the status, then the request counts the clone done. */
static void clone_endio(struct bio *bio)
{
	struct hclone *c = clone_of(bio);
	blk_status_t status = bio->bi_status;
	int r;

	if (c->ti->type->end_io) {
		r = c->ti->type->end_io(c->ti, bio, &status);
		if (r == DM_ENDIO_INCOMPLETE)
			return;
		if (r != DM_ENDIO_DONE)
			shim_fatal("%s: end_io returned %d", c->ti->shim_name, r);
	}
	clone_done(c, status);
}

static struct hclone *new_clone(struct hreq *req, struct dm_target *ti, blk_opf_t opf,
				sector_t sector, unsigned int count, unsigned int nr)
{
	size_t pbd = pbd_bytes(ti->per_io_data_size);
	char *mem = calloc(1, pbd + sizeof(struct hclone));
	struct hclone *c = (struct hclone *)(mem + pbd);
	struct bio *src = req->bio;

	c->pbd = pbd;
	c->req = req;
	c->ti = ti;
	c->target_bio_nr = nr;
	c->bio.bi_opf = opf;
	c->bio.bi_bdev = &req->dev->bdev;
	c->bio.bi_iter.bi_sector = sector;
	c->bio.bi_iter.bi_size = count << SECTOR_SHIFT;
	c->bio.shim_data = src->shim_data;
	c->bio.bi_iter.bi_bvec_done = src->bi_iter.bi_bvec_done;
	if (count && (bio_op(src) == REQ_OP_READ || bio_op(src) == REQ_OP_WRITE))
		c->bio.bi_iter.bi_bvec_done += (sector - src->bi_iter.bi_sector) << SECTOR_SHIFT;
	c->bio.bi_end_io = clone_endio;
	req->pending++;
	return c;
}

/* __map_bio: the target's decision, then what device-mapper does with it. */
static unsigned int map_clone(struct hclone *c)
{
	unsigned int accepted = bio_sectors(&c->bio);
	struct dm_target *ti = c->ti;
	int r;

	c->len_ptr = &accepted;
	mapping = c;
	r = ti->type->map(ti, &c->bio);
	mapping = NULL;
	switch (r) {
	case DM_MAPIO_REMAPPED:
		submit_bio_noacct(&c->bio);
		break;
	case DM_MAPIO_SUBMITTED:
		break;
	case DM_MAPIO_KILL:
		clone_done(c, BLK_STS_IOERR);
		break;
	default:
		shim_fatal("%s: map returned %d", ti->shim_name, r);
	}
	return accepted;
}

/* Requests being dispatched: more than one when a map submits to another mapped device. */
static int dispatching;

/* READ and WRITE: one clone per segment piece, never crossing the target's max_io_len. */
static void split_data(struct hreq *req, struct dm_table *t)
{
	struct bio *bio = req->bio;
	sector_t sector = bio->bi_iter.bi_sector, end = bio_end_sector(bio), piece_end;
	struct dm_target *ti = dmc_find_target(t, sector);
	struct hclone *c;
	bool first = true;

	while (sector < end) {
		piece_end = ti->begin + ti->len;
		if (ti->max_io_len) {
			sector_t boundary = sector + ti->max_io_len -
					    (sector - ti->begin) % ti->max_io_len;

			if (boundary < piece_end)
				piece_end = boundary;
		}
		if (piece_end > end)
			piece_end = end;
		c = new_clone(req, ti, bio->bi_opf, sector, piece_end - sector, 0);
		sector += map_clone(c);
		if (sector == ti->begin + ti->len)
			ti++;
		/* The submitting CPU may stall after the first piece (a request, not its remaps). */
		if (first && sector < end && dispatching == 1)
			pump_stall();
		first = false;
	}
}

/*
 * Where the block layer ends a discard starting at sector (bio_discard_limit,
 * bio_split_discard): at most max_discard_sectors (rounded down to the
 * granularity), ending on a multiple of the granularity.
 */
static sector_t discard_piece_end(struct dm_table *t, sector_t sector)
{
	sector_t gran = t->discard_granularity, max = t->max_discard_sectors;
	sector_t stop;

	if (max >= gran)
		max -= max % gran;
	stop = sector + max;
	stop -= stop % gran;
	if (stop <= sector)
		stop = sector + gran - sector % gran;
	return stop;
}

/* DISCARD and WRITE_ZEROES: per segment piece, as many clones as the target asks for. */
static void split_range(struct hreq *req, struct dm_table *t)
{
	struct bio *bio = req->bio;
	sector_t sector = bio->bi_iter.bi_sector, end = bio_end_sector(bio), piece_end;
	struct dm_target *ti = dmc_find_target(t, sector);
	unsigned int n, nr;

	while (sector < end) {
		piece_end = ti->begin + ti->len;
		if (bio_op(bio) == REQ_OP_DISCARD && discard_piece_end(t, sector) < piece_end)
			piece_end = discard_piece_end(t, sector);
		if (piece_end > end)
			piece_end = end;
		n = bio_op(bio) == REQ_OP_DISCARD ? ti->num_discard_bios : ti->num_write_zeroes_bios;
		if (n == 0 && !req->status)
			req->status = BLK_STS_NOTSUPP;
		for (nr = 0; nr < n; nr++)
			map_clone(new_clone(req, ti, bio->bi_opf, sector, piece_end - sector, nr));
		sector = piece_end;
		if (sector == ti->begin + ti->len)
			ti++;
	}
}

/* An empty flush: every target's flush clones (__send_empty_flush). */
static void split_flush(struct hreq *req, struct dm_table *t)
{
	unsigned int i, nr;

	for (i = 0; i < t->n; i++) {
		for (nr = 0; nr < t->targets[i].num_flush_bios; nr++)
			map_clone(new_clone(req, &t->targets[i], REQ_OP_WRITE | REQ_PREFLUSH | REQ_SYNC,
					    0, 0, nr));
	}
}

static void dispatch(struct hdev *dev, struct bio *bio)
{
	struct dm_table *t = dev->live;
	struct hreq *req;

	/* A request past the end (the table shrank while it was held) fails as the block layer fails it. */
	if (!t || (bio->bi_iter.bi_size && bio_end_sector(bio) > t->size)) {
		bio_io_error(bio);
		return;
	}
	if (bio_op(bio) == REQ_OP_DISCARD && bio->bi_iter.bi_size && !t->discards) {
		bio->bi_status = BLK_STS_NOTSUPP;
		bio_endio(bio);
		return;
	}
	req = calloc(1, sizeof(*req));
	req->bio = bio;
	req->dev = dev;
	req->pending = 1;	/* held by dispatch, so clones finishing at once cannot finish it early */
	dev->inflight++;
	dispatching++;
	if (bio->bi_iter.bi_size == 0) {
		if (bio->bi_opf & REQ_PREFLUSH)
			split_flush(req, t);
	} else if (bio_op(bio) == REQ_OP_DISCARD || bio_op(bio) == REQ_OP_WRITE_ZEROES) {
		split_range(req, t);
	} else {
		split_data(req, t);
	}
	dispatching--;
	if (--req->pending == 0)
		finish_request(req);
}

/* dm_resume: the requests held while suspended go on, in order. */
void dmc_release_held(struct hdev *dev)
{
	struct bio_list held = dev->held;
	struct bio *bio;

	bio_list_init(&dev->held);
	while ((bio = bio_list_pop(&held))) {
		if (dev->suspended)
			bio_list_add(&dev->held, bio);	/* suspended again meanwhile: keep order */
		else
			dispatch(dev, bio);
	}
}

/* A bio for a mapped device: held while it is suspended. */
void dmc_submit(struct hdev *dev, struct bio *bio)
{
	if (dev->suspended)
		bio_list_add(&dev->held, bio);
	else
		dispatch(dev, bio);
}
