// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Chunk sizes as dm_exception_store_set_chunk_size accepts them (core-as/snapshot/chunks.ts). */
#include "chunks.h"
#include "args.h"

bool dmk_chunk_size_error(u64 chunk_size, char *buf, size_t len)
{
	if (!dmk_is_power_of_two(chunk_size)) {
		snprintf(buf, len, "chunk size %llu is not a power of 2", chunk_size);
		return true;
	}
	if (chunk_size > (u64)(INT_MAX >> SECTOR_SHIFT)) {
		snprintf(buf, len, "chunk size %llu is too high", chunk_size);
		return true;
	}
	return false;
}
