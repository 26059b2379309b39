// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-striped <#stripes> <chunk_size> [<dev> <offset>]+: chunks dealt
 * round-robin over devices (core-as/targets/striped.ts, Linux dm-stripe.c).
 */
#include "dmk.h"
#include "args.h"
#include "devref.h"
#include "msg.h"
#include "targets.h"

struct stripe {
	struct dm_dev *dev;
	sector_t physical_start;
	atomic_t errors;
};

struct stripe_c {
	u32 stripes;
	u64 chunk_size;
	u64 width;		/* sectors each stripe holds */
	int stripes_shift;	/* -1 when not a power of two */
	int chunk_shift;
	struct stripe stripe[];
};

static void stripe_put_devices(struct dm_target *ti, struct stripe_c *sc, u32 n)
{
	while (n--)
		dm_put_device(ti, sc->stripe[n].dev);
}

static int stripe_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct stripe_c *sc;
	u64 n, chunk, start;
	u32 i;
	int r;

	if (argc < 2) {
		dmk_set_error(ti, "not enough arguments: expected %s",
			      "<#stripes> <chunk_size> [<dev> <offset>]+");
		return -EINVAL;
	}
	if (!dmk_parse_u64(argv[0], &n) || n == 0 || n > U32_MAX) {
		dmk_set_error(ti, "invalid stripe count '%s'", argv[0]);
		return -EINVAL;
	}
	if (!dmk_parse_u64(argv[1], &chunk) || chunk == 0 || chunk > U32_MAX) {
		dmk_set_error(ti, "invalid chunk_size '%s'", argv[1]);
		return -EINVAL;
	}
	if (ti->len % n != 0) {
		dmk_set_error(ti, "target length %llu is not divisible by the %s (%llu)",
			      (unsigned long long)ti->len, "number of stripes", n);
		return -EINVAL;
	}
	if ((ti->len / n) % chunk != 0) {
		dmk_set_error(ti,
			      "target length %llu is not divisible by chunk size %llu times the number of stripes",
			      (unsigned long long)ti->len, chunk);
		return -EINVAL;
	}
	if ((u64)argc != 2 + 2 * n) {
		dmk_set_error(ti,
			      "not enough destinations specified: %llu stripes need %llu arguments after the chunk size, got %u",
			      n, 2 * n, argc - 2);
		return -EINVAL;
	}
	sc = kzalloc(struct_size(sc, stripe, n), GFP_KERNEL);
	if (!sc) {
		ti->error = "cannot allocate striped context";
		return -ENOMEM;
	}
	sc->stripes = (u32)n;
	sc->chunk_size = chunk;
	sc->width = ti->len / n;
	sc->stripes_shift = dmk_shift_of(n);
	sc->chunk_shift = dmk_shift_of(chunk);
	for (i = 0; i < sc->stripes; i++) {
		const char *dev_arg = argv[2 + 2 * i];
		const char *start_arg = argv[3 + 2 * i];

		if (!dmk_parse_u64(start_arg, &start)) {
			dmk_set_error(ti, "stripe %u: invalid device sector '%s'", i, start_arg);
			stripe_put_devices(ti, sc, i);
			kfree(sc);
			return -EINVAL;
		}
		r = dmk_get_device(ti, dev_arg, start, sc->width, &sc->stripe[i].dev);
		if (r) {
			dmk_set_error(ti, "stripe %u: %s", i, ti->error);
			stripe_put_devices(ti, sc, i);
			kfree(sc);
			return r;
		}
		sc->stripe[i].physical_start = start;
		atomic_set(&sc->stripe[i].errors, 0);
	}
	r = dm_set_target_max_io_len(ti, chunk);
	if (r) {
		ti->error = "cannot set the maximum I/O length";
		stripe_put_devices(ti, sc, sc->stripes);
		kfree(sc);
		return r;
	}
	ti->num_flush_bios = sc->stripes;
	ti->num_discard_bios = sc->stripes;
	ti->num_write_zeroes_bios = sc->stripes;
	ti->private = sc;
	return 0;
}

static void stripe_dtr(struct dm_target *ti)
{
	struct stripe_c *sc = ti->private;

	stripe_put_devices(ti, sc, sc->stripes);
	kfree(sc);
}

/* stripe_map_sector: which stripe holds a sector, and where inside it */
static void stripe_map_sector(struct stripe_c *sc, struct dm_target *ti, sector_t sector,
			      u32 *stripe, sector_t *result)
{
	u64 chunk = dm_target_offset(ti, sector);
	u64 chunk_offset, s;

	if (sc->chunk_shift < 0) {
		chunk = div64_u64_rem(chunk, sc->chunk_size, &chunk_offset);
	} else {
		chunk_offset = chunk & (sc->chunk_size - 1);
		chunk >>= sc->chunk_shift;
	}
	if (sc->stripes_shift < 0) {
		chunk = div64_u64_rem(chunk, sc->stripes, &s);
	} else {
		s = chunk & (sc->stripes - 1);
		chunk >>= sc->stripes_shift;
	}
	*stripe = (u32)s;
	*result = chunk * sc->chunk_size + chunk_offset;
}

/* stripe_map_range_sector: where a range boundary falls inside one given stripe */
static sector_t stripe_map_range_sector(struct stripe_c *sc, struct dm_target *ti,
					sector_t sector, u32 target)
{
	sector_t result, rem;
	u32 stripe;

	stripe_map_sector(sc, ti, sector, &stripe, &result);
	if (stripe == target)
		return result;
	div64_u64_rem(result, sc->chunk_size, &rem);
	result -= rem;			/* round down to the chunk */
	if (target < stripe)
		result += sc->chunk_size;	/* that stripe's part starts at its next chunk */
	return result;
}

static int stripe_map(struct dm_target *ti, struct bio *bio)
{
	struct stripe_c *sc = ti->private;
	unsigned int nr = dm_bio_get_target_bio_nr(bio);
	sector_t begin, end;
	u32 stripe;

	if (bio->bi_opf & REQ_PREFLUSH) {
		bio_set_dev(bio, sc->stripe[nr].dev->bdev);
		return DM_MAPIO_REMAPPED;
	}
	if (bio_op(bio) == REQ_OP_DISCARD || bio_op(bio) == REQ_OP_WRITE_ZEROES) {
		begin = stripe_map_range_sector(sc, ti, bio->bi_iter.bi_sector, nr);
		end = stripe_map_range_sector(sc, ti, bio_end_sector(bio), nr);
		if (begin >= end) {
			bio_endio(bio);	/* this stripe holds none of the range */
			return DM_MAPIO_SUBMITTED;
		}
		bio_set_dev(bio, sc->stripe[nr].dev->bdev);
		bio->bi_iter.bi_sector = sc->stripe[nr].physical_start + begin;
		bio->bi_iter.bi_size = to_bytes(end - begin);
		return DM_MAPIO_REMAPPED;
	}
	stripe_map_sector(sc, ti, bio->bi_iter.bi_sector, &stripe, &begin);
	bio_set_dev(bio, sc->stripe[stripe].dev->bdev);
	bio->bi_iter.bi_sector = sc->stripe[stripe].physical_start + begin;
	return DM_MAPIO_REMAPPED;
}

/* stripe_end_io: count errors per stripe device, shown as 'D' in the status */
static int stripe_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct stripe_c *sc = ti->private;
	u32 i;

	if (!*error || *error == BLK_STS_NOTSUPP)
		return DM_ENDIO_DONE;
	for (i = 0; i < sc->stripes; i++) {
		if (sc->stripe[i].dev->bdev == bio->bi_bdev)
			atomic_inc(&sc->stripe[i].errors);
	}
	return DM_ENDIO_DONE;
}

static void stripe_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
			  char *result, unsigned int maxlen)
{
	struct stripe_c *sc = ti->private;
	unsigned int sz = 0;
	u32 i;

	result[0] = '\0';
	if (type == STATUSTYPE_INFO) {
		DMEMIT("%u ", sc->stripes);
		for (i = 0; i < sc->stripes; i++)
			DMEMIT("%s ", sc->stripe[i].dev->name);
		DMEMIT("1 ");
		for (i = 0; i < sc->stripes; i++)
			DMEMIT("%c", atomic_read(&sc->stripe[i].errors) ? 'D' : 'A');
	} else if (type == STATUSTYPE_TABLE) {
		DMEMIT("%u %llu", sc->stripes, (unsigned long long)sc->chunk_size);
		for (i = 0; i < sc->stripes; i++)
			DMEMIT(" %s %llu", sc->stripe[i].dev->name,
			       (unsigned long long)sc->stripe[i].physical_start);
	}
}

static int stripe_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct stripe_c *sc = ti->private;
	int r = 0;
	u32 i;

	for (i = 0; i < sc->stripes && !r; i++)
		r = fn(ti, sc->stripe[i].dev, sc->stripe[i].physical_start, sc->width, data);
	return r;
}

struct target_type dmk_striped_target = {
	.name = "dmkit-striped",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = stripe_ctr,
	.dtr = stripe_dtr,
	.map = stripe_map,
	.end_io = stripe_end_io,
	.status = stripe_status,
	.iterate_devices = stripe_iterate_devices,
};
