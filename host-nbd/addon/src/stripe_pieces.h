// Where the bytes of a request inside one segment land, as pieces that each lie in one file:
// dm-stripe's mapping (linux drivers/md/dm-stripe.c, stripe_map_sector; core-as/targets/
// striped.ts mapSector), in bytes. Pure arithmetic: the map (write_map.h) turns a piece's
// stripe into its file and adds where that stripe starts in it.
//
// Header only: the thread maps every request through it, and the addon's sources are listed in
// binding.gyp.
#pragma once

#include <cstdint>
#include <vector>

namespace dmkit {

struct StripePiece {
  uint32_t stripe = 0;  // which of the segment's extents (0 for a linear segment)
  uint64_t offset = 0;  // where in that stripe (from its first chunk), or in a linear segment
  uint32_t at = 0;      // where in the request
  uint32_t len = 0;
};

// stripe_map_sector: the stripe holding byte `rel` of a striped segment, and where in it. Chunk
// number `rel / chunk` goes to stripe `chunk_no % stripes` (dealt round-robin), as chunk number
// `chunk_no / stripes` of that stripe (its row): the stripe's chunks follow one another.
inline StripePiece StripeMapByte(uint64_t chunk, uint32_t stripes, uint64_t rel) {
  uint64_t chunk_no = rel / chunk, in_chunk = rel % chunk;
  StripePiece p;
  p.stripe = uint32_t(chunk_no % stripes);
  p.offset = (chunk_no / stripes) * chunk + in_chunk;
  return p;
}

// How many stripes [rel, rel + len) touches (each at most once per row, so never more than
// stripes), counting from StripeMapByte(rel)'s stripe round-robin. len > 0.
inline uint32_t StripesTouched(uint64_t chunk, uint32_t stripes, uint64_t rel, uint64_t len) {
  uint64_t chunks = (rel % chunk + len + chunk - 1) / chunk;
  return chunks < stripes ? uint32_t(chunks) : stripes;
}

// Cuts [rel, rel + len) of a segment (rel from its start) into pieces in request order: all of
// it for a linear segment (chunk 0), else one per chunk it touches, each where StripeMapByte puts
// its first byte. Why per chunk: dm-stripe splits a bio at chunk boundaries too (max_io_len),
// and neighbouring chunks are on different stripes (or, with one stripe, next to each other).
inline void StripePieces(uint64_t chunk, uint32_t stripes, uint64_t rel, uint32_t len, std::vector<StripePiece>* out) {
  out->clear();
  if (chunk == 0) {
    StripePiece p;
    p.offset = rel;
    p.len = len;
    out->push_back(p);
    return;
  }
  for (uint32_t at = 0; at < len;) {
    StripePiece p = StripeMapByte(chunk, stripes, rel + at);
    uint64_t to_chunk_end = chunk - (rel + at) % chunk;
    p.at = at;
    p.len = uint32_t(to_chunk_end < len - at ? to_chunk_end : len - at);
    out->push_back(p);
    at += p.len;
  }
}

}  // namespace dmkit
