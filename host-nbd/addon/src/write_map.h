// Where a mapped device's plain reads and writes land, published for the connections' receive
// threads (receiver.h): byte ranges of the device that a `linear` target maps straight onto an
// image file, or a `striped` target deals round-robin in chunks over image files (dm-stripe's
// mapping: a request across chunks is taken in pieces, one per chunk, stripe_pieces.h). The
// event loop publishes it when the device's table goes live and withdraws it when the device is
// suspended; between the two, a receive thread may read there, and write where the extent is
// writable (not a read-only export or file), without asking.
//
// A `snapshot-origin` segment is published like a linear one, but guarded: a thread writes it
// only where every chunk the write touches is marked as copied by every snapshot of the origin
// (ChunkMarks). The event loop marks chunks as the core reports them copied; marks start clear
// with each publication, and the event loop republishes before a snapshot resumes.
//
// Each request taken through the map is counted until the event loop has done its bookkeeping
// for it (Release), so that a suspend can wait for every such request, not only for its I/O.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "chunk_marks.h"
#include "file_view.h"
#include "file_writes.h"
#include "snapshot_reads.h"
#include "stripe_pieces.h"
#include "thread_copies.h"

namespace dmkit {

// One file of a segment of the table. A striped segment is one extent per stripe, in stripe
// order, all with the segment's start, end, chunk and stripe count.
struct WriteExtent {
  uint64_t start = 0;     // device bytes [start, end) of the segment
  uint64_t end = 0;
  int fd = -1;            // a duplicate owned by the extents (closed with them)
  uint64_t file_pos = 0;  // file offset of the segment's start (linear) or of the stripe's first chunk
  uint32_t tag = 0;       // the host's name for the file (the engine's backing id)
  bool writable = false;  // writes too, not only reads
  uint64_t chunk = 0;     // striped: chunk bytes; 0: linear
  uint32_t stripes = 1;   // striped: how many; this extent is stripe number `stripe`
  uint32_t stripe = 0;
  bool guarded = false;   // linear only: writes only over chunks marked copied (the generation's marks)
  std::shared_ptr<FileWrites> writes;  // the file's count of thread writes (every writable extent has one)
  std::shared_ptr<const FileView> view;  // the file mapped read-only, shared with its other extents (file_view.h; null: not mapped)

  // How many bytes of the file from file_pos this extent reaches: the segment's, or a stripe's
  // rows of chunks.
  uint64_t FileBytes() const {
    if (chunk == 0) return end - start;
    uint64_t chunks = (end - start + chunk - 1) / chunk;
    return (chunks + stripes - 1) / stripes * chunk;
  }
};

// One published generation; closes its descriptors when the last writer holding it is done.
struct WriteExtents {
  std::vector<WriteExtent> list;  // sorted by start; segments do not overlap
  std::unique_ptr<ChunkMarks> marks;  // for guarded extents (null: none)
  ~WriteExtents();
};

// One piece of a request, in one file.
struct FilePiece {
  int fd = -1;
  uint32_t tag = 0;
  uint64_t pos = 0;  // file offset
  uint32_t at = 0;   // where in the request
  uint32_t len = 0;
  FileWrites* writes = nullptr;  // the extent's (kept by the hold)
  const uint8_t* mapped = nullptr;  // its bytes in the extent's view (kept by the hold), if there are any
};

// Where one request goes: held extents keep the descriptors open until it is done. A caller
// that keeps one for request after request allocates its pieces once.
struct WriteTarget {
  std::shared_ptr<const WriteExtents> hold;
  std::vector<FilePiece> pieces;  // in request order; several only across chunks of a striped segment
  std::vector<StripePiece> where;  // scratch for the mapping
};

class WriteMap {
 public:
  void Publish(std::shared_ptr<const WriteExtents> extents);
  void Withdraw();
  // A read or write of len bytes at device offset off, if one segment holds all of it (every
  // file it touches writable, for a write), in pieces (several only if `split` allows a request
  // across chunks): counted until Release.
  bool Acquire(uint64_t off, uint32_t len, bool write, bool split, WriteTarget* out);
  // Whether Acquire would succeed now (nothing counted).
  bool Covers(uint64_t off, uint32_t len, bool write, bool split);
  // Whether [off, off + len) lies in one writable guarded extent, marked or not.
  bool InGuardedExtent(uint64_t off, uint32_t len);
  // A write on a guarded extent whose chunks are not all marked, while copies are lent
  // (thread_copies.h): where it goes, the copies, and the chunks under it not marked (counted
  // until Release, as Acquire). False: no copies, or not one guarded extent.
  bool AcquireForCopy(uint64_t off, uint32_t len, WriteTarget* out, std::shared_ptr<ThreadCopies>* copies,
                      std::vector<uint64_t>* unmarked);
  // The generation published now, and whether one is still the one published (its marks in use).
  std::weak_ptr<const WriteExtents> Generation();
  bool IsGeneration(const std::weak_ptr<const WriteExtents>& g);
  // The event loop lends copies to the threads, or takes them away (threads holding them finish).
  void EnableCopies(std::shared_ptr<ThreadCopies> copies);
  void DisableCopies();
  std::shared_ptr<ThreadCopies> Copies();
  // Where Acquire would put it, nothing counted (the tests ask).
  bool Peek(uint64_t off, uint32_t len, bool write, bool split, WriteTarget* out);
  // Marks chunks of the published generation copied (none published, or no marks: nothing).
  void Mark(uint64_t first, uint64_t count);
  // Marks each of n chunks (one lock for all: a snapshot may hold millions).
  void MarkEach(const uint64_t* chunks, size_t n);
  void Release(int64_t n) { inflight_.fetch_sub(n); }
  int64_t Inflight() const { return inflight_.load(); }
  // The origin chunks the snapshot reads through the core while copies are lent (snapshot_reads.h).
  SnapshotReads& snapshot_reads() { return snapshot_reads_; }

 private:
  bool Locate(uint64_t off, uint32_t len, bool write, bool split, WriteTarget* out, bool count);

  std::mutex mu_;
  std::shared_ptr<const WriteExtents> extents_;
  std::shared_ptr<ThreadCopies> copies_;
  std::atomic<int64_t> inflight_{0};
  SnapshotReads snapshot_reads_;
};

}  // namespace dmkit
