#include "receiver_binding.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "file_writes.h"
#include "js_numbers.h"
#include "receiver.h"
#include "write_map.h"

namespace dmkit {

namespace {

class WriteMapJs : public Napi::ObjectWrap<WriteMapJs> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "WriteMap", {
      InstanceMethod<&WriteMapJs::Publish>("publish"),
      InstanceMethod<&WriteMapJs::Withdraw>("withdraw"),
      InstanceMethod<&WriteMapJs::Mark>("mark"),
      InstanceMethod<&WriteMapJs::Release>("release"),
      InstanceMethod<&WriteMapJs::Inflight>("inflight"),
      InstanceMethod<&WriteMapJs::Pieces>("pieces"),
      InstanceMethod<&WriteMapJs::EnableCopies>("enableCopies"),
      InstanceMethod<&WriteMapJs::DisableCopies>("disableCopies"),
      InstanceMethod<&WriteMapJs::LendCopies>("lendCopies"),
      InstanceMethod<&WriteMapJs::DrainCopies>("drainCopies"),
      InstanceMethod<&WriteMapJs::UnusedCopies>("unusedCopies"),
      InstanceMethod<&WriteMapJs::ReleaseCopies>("releaseCopies"),
      InstanceMethod<&WriteMapJs::SnapshotReads>("snapshotReads"),
    });
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  explicit WriteMapJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WriteMapJs>(info), map_(std::make_shared<WriteMap>()) {}

  std::shared_ptr<WriteMap> map() const { return map_; }

 private:
  // publish([[start, end, fd, filePos, tag, writable, chunk, stripes, stripe, guarded?], ...],
  // [chunkBytes, deviceBytes]?): one extent per linear segment (chunk 0, stripes 1, stripe 0) or
  // per stripe of a striped one (in stripe order, all with the segment's start, end, chunk and
  // stripes; filePos where the stripe's first chunk is); segments sorted, not overlapping;
  // writable 1 or 0. A guarded (1) linear extent is written only over chunks marked since this
  // publication (mark()); the chunks' size and the device's come as the second argument, which
  // any guarded extent needs. The descriptors are duplicated (the caller may close its own).
  Napi::Value Publish(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "publish(extents, marks?)");
    Napi::Array arr = info[0].As<Napi::Array>();
    auto extents = std::make_shared<WriteExtents>();
    uint64_t last_end = 0;
    constexpr uint32_t kFields = 9, kGuarded = 9;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      uint32_t n = v.IsArray() ? v.As<Napi::Array>().Length() : 0;
      if (n != kFields && n != kFields + 1) {
        throw Napi::TypeError::New(env, "an extent is [start, end, fd, filePos, tag, writable, chunk, stripes, stripe, guarded?]");
      }
      Napi::Array a = v.As<Napi::Array>();
      double d[kFields + 1] = {};
      for (uint32_t k = 0; k < n; k++) {
        d[k] = a.Get(k).IsNumber() ? a.Get(k).As<Napi::Number>().DoubleValue() : -1;
        if (!IsByteCount(d[k])) throw Napi::TypeError::New(env, "an extent holds non-negative integers");
      }
      WriteExtent e;
      e.start = uint64_t(d[0]);
      e.end = uint64_t(d[1]);
      e.file_pos = uint64_t(d[3]);
      e.tag = uint32_t(d[4]);
      if (d[5] > 1) throw Napi::TypeError::New(env, "an extent's writable is 1 or 0");
      e.writable = d[5] == 1;
      e.chunk = uint64_t(d[6]);
      e.stripes = uint32_t(d[7]);
      e.stripe = uint32_t(d[8]);
      if (d[kGuarded] > 1) throw Napi::TypeError::New(env, "an extent's guarded is 1 or 0");
      e.guarded = d[kGuarded] == 1;
      if (e.guarded && e.chunk != 0) throw Napi::RangeError::New(env, "only a linear extent (chunk 0) can be guarded");
      if (e.guarded && !extents->marks) extents->marks = MarksArg(info);
      if (e.stripes == 0 || e.stripe >= e.stripes || (e.chunk == 0 && e.stripes != 1)) {
        throw Napi::RangeError::New(env, "an extent's stripe is below its stripe count, and a linear one (chunk 0) has one");
      }
      if (e.stripe == 0) {
        if (!extents->list.empty() && extents->list.back().stripe + 1 != extents->list.back().stripes) {
          throw Napi::RangeError::New(env, "a striped segment is missing stripes");
        }
        if (e.end <= e.start || e.start < last_end) throw Napi::RangeError::New(env, "segments must be sorted, not empty and not overlapping");
        last_end = e.end;
      } else {
        const WriteExtent& prev = extents->list.empty() ? e : extents->list.back();
        if (extents->list.empty() || prev.start != e.start || prev.end != e.end || prev.chunk != e.chunk ||
            prev.stripes != e.stripes || prev.stripe + 1 != e.stripe) {
          throw Napi::RangeError::New(env, "a striped segment's extents must follow one another in stripe order");
        }
      }
      e.fd = fcntl(int(d[2]), F_DUPFD_CLOEXEC, 0);
      if (e.fd < 0) throw Napi::Error::New(env, std::string("dup: ") + strerror(errno));
      // Threads write only a file whose writes they count (a FLUSH skips fdatasync by the count).
      if (e.writable) e.writes = FileWritesOf(e.fd);
      if (!e.writes) e.writable = false;
      e.view = FileView::Map(e.fd, e.file_pos, e.FileBytes());
      extents->list.push_back(e);
    }
    if (!extents->list.empty() && extents->list.back().stripe + 1 != extents->list.back().stripes) {
      throw Napi::RangeError::New(env, "a striped segment is missing stripes");
    }
    map_->Publish(std::move(extents));
    return env.Undefined();
  }

  // The publication's chunk marks from [chunkBytes, deviceBytes] (argument 1).
  static std::unique_ptr<ChunkMarks> MarksArg(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value v = info.Length() > 1 ? info[1] : env.Undefined();
    if (!v.IsArray() || v.As<Napi::Array>().Length() != 2) throw Napi::TypeError::New(env, "a guarded extent needs marks: [chunkBytes, deviceBytes]");
    Napi::Array a = v.As<Napi::Array>();
    double chunk = a.Get(0u).IsNumber() ? a.Get(0u).As<Napi::Number>().DoubleValue() : -1;
    double device = a.Get(1u).IsNumber() ? a.Get(1u).As<Napi::Number>().DoubleValue() : -1;
    if (!IsByteCount(chunk) || chunk == 0 || !IsByteCount(device)) throw Napi::TypeError::New(env, "marks are [chunkBytes > 0, deviceBytes]");
    auto marks = std::make_unique<ChunkMarks>(uint64_t(chunk), uint64_t(device));
    if (!marks->ok()) throw Napi::Error::New(env, "no memory for the chunk marks of " + std::to_string(marks->chunks()) + " chunks");
    return marks;
  }

  // mark(firstChunk, count): those chunks need no snapshot copy (until the next publish).
  Napi::Value Mark(const Napi::CallbackInfo& info) {
    map_->Mark(ByteCountArg(info, 0, "firstChunk"), ByteCountArg(info, 1, "count"));
    return info.Env().Undefined();
  }

  Napi::Value Withdraw(const Napi::CallbackInfo& info) {
    map_->Withdraw();
    return info.Env().Undefined();
  }

  // release(n): n writes reported by receivers are accounted for.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    map_->Release(int64_t(ByteCountArg(info, 0, "n")));
    return info.Env().Undefined();
  }

  Napi::Value Inflight(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(map_->Inflight())); }

  // pieces(offset, length, write) -> [[tag, filePos, at, length], ...] where a receive thread
  // would read or write (through memory) now, in request order, or null where it would not.
  // Nothing is counted. For tests: the thread's own mapping, as it does it.
  Napi::Value Pieces(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t off = ByteCountArg(info, 0, "offset"), len = ByteCountArg(info, 1, "length");
    if (len > UINT32_MAX) throw Napi::RangeError::New(env, "length must fit in 32 bits");
    WriteTarget t;
    if (!map_->Peek(off, uint32_t(len), info[2].ToBoolean().Value(), true, &t)) return env.Null();
    Napi::Array out = Napi::Array::New(env, t.pieces.size());
    for (uint32_t i = 0; i < t.pieces.size(); i++) {
      const FilePiece& p = t.pieces[i];
      Napi::Array a = Napi::Array::New(env, 4);
      a.Set(0u, double(p.tag));
      a.Set(1u, double(p.pos));
      a.Set(2u, double(p.at));
      a.Set(3u, double(p.len));
      out.Set(i, a);
    }
    return out;
  }

  // enableCopies(cowFd, chunkBytes, deviceBytes, originBytes, first, count, held
  //              [, perArea, area, committed, areaBytes: Uint8Array]) -> true, or false:
  // the threads may copy chunks of the published guarded extent into `count` COW chunks from
  // `first` of the file cowFd is open on (duplicated). held: the chunks that are the snapshot's
  // already (a BigUint64Array: claimed and marked copied), or the bigint tag releaseCopies kept
  // the last claims under: those claims again, when they were kept under that tag for this
  // published generation and chunk size (false otherwise, and nothing is enabled). With the last
  // four, the snapshot is persistent: its current metadata area (cow_areas.h), and the lent
  // chunks step over metadata chunks. thread_copies.h.
  Napi::Value EnableCopies(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool persistent = info.Length() >= 11;
    bool listed = info.Length() >= 7 && info[6].IsTypedArray() && info[6].As<Napi::TypedArray>().TypedArrayType() == napi_biguint64_array;
    if (info.Length() < 7 || (!listed && !info[6].IsBigInt()) || (persistent && !info[10].IsTypedArray())) {
      throw Napi::TypeError::New(env, "enableCopies(cowFd, chunkBytes, deviceBytes, originBytes, first, count, held: BigUint64Array | bigint"
                                      "[, perArea, area, committed, areaBytes: Uint8Array])");
    }
    int cow = FdArg(info, 0);
    uint64_t chunk = ByteCountArg(info, 1, "chunkBytes"), device = ByteCountArg(info, 2, "deviceBytes");
    uint64_t origin = ByteCountArg(info, 3, "originBytes"), first = ByteCountArg(info, 4, "first"), count = ByteCountArg(info, 5, "count");
    if (chunk == 0) throw Napi::RangeError::New(env, "chunkBytes must not be 0");
    uint64_t per_area = 0, area = 0, committed = 0;
    std::vector<uint8_t> area_bytes;
    if (persistent) {
      per_area = ByteCountArg(info, 7, "perArea");
      area = ByteCountArg(info, 8, "area");
      committed = ByteCountArg(info, 9, "committed");
      Napi::Uint8Array bytes = info[10].As<Napi::Uint8Array>();
      if (per_area == 0 || per_area * 16 != chunk || committed >= per_area || bytes.ElementLength() != chunk || first < 2 ||
          first % (per_area + 1) == 1) {
        throw Napi::RangeError::New(env, "enableCopies: a metadata area of " + std::to_string(per_area) + " entries, " +
                                             std::to_string(committed) + " used, does not fit chunks of " + std::to_string(chunk) +
                                             " bytes from chunk " + std::to_string(first));
      }
      area_bytes.assign(bytes.Data(), bytes.Data() + chunk);
    }
    std::shared_ptr<const ChunkMarks> claims;
    if (listed) {
      claims = std::make_shared<const ChunkMarks>(chunk, device);
      if (!claims->ok()) throw Napi::Error::New(env, "no memory for the claims of " + std::to_string(claims->chunks()) + " chunks");
    } else {
      bool lossless;
      uint64_t tag = info[6].As<Napi::BigInt>().Uint64Value(&lossless);
      claims = KeptClaims(tag, chunk, device);
      if (!lossless || !claims) return Napi::Boolean::New(env, false);
    }
    int fd = fcntl(cow, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw Napi::Error::New(env, std::string("dup: ") + strerror(errno));
    auto copies = std::make_shared<ThreadCopies>(fd, std::move(claims), origin, first, count);
    if (persistent) copies->Persist(per_area, area, committed, std::move(area_bytes));
    if (listed) {
      Napi::BigUint64Array held = info[6].As<Napi::BigUint64Array>();
      const uint64_t* chunks = held.Data();
      for (size_t i = 0; i < held.ElementLength(); i++) copies->Claimed(chunks[i]);
      map_->MarkEach(chunks, held.ElementLength());
    }
    kept_claims_.reset();  // in use again: changing
    last_copies_ = copies;
    map_->EnableCopies(std::move(copies));
    return Napi::Boolean::New(env, true);
  }

  // The claims releaseCopies kept under `tag`, if they were kept for the generation published
  // now (its marks hold every claimed chunk) and for these chunks; else null.
  std::shared_ptr<const ChunkMarks> KeptClaims(uint64_t tag, uint64_t chunk, uint64_t device) {
    if (!kept_claims_ || kept_tag_ != tag || !map_->IsGeneration(kept_generation_)) return nullptr;
    bool same_chunks = kept_claims_->chunk_bytes() == chunk && kept_claims_->chunks() == (device + chunk - 1) / chunk;
    return same_chunks ? kept_claims_ : nullptr;
  }

  // disableCopies(): no thread starts a copy from now on (those copying finish; their requests
  // count in inflight() until released).
  Napi::Value DisableCopies(const Napi::CallbackInfo& info) {
    map_->DisableCopies();
    return info.Env().Undefined();
  }

  // lendCopies(count): count more COW chunks lent, following the last ones.
  Napi::Value LendCopies(const Napi::CallbackInfo& info) {
    uint64_t count = ByteCountArg(info, 0, "count");
    if (last_copies_) last_copies_->Lend(count);
    return info.Env().Undefined();
  }

  // drainCopies() -> Float64Array of [originChunk, cowChunk] pairs the threads copied since the
  // last drain, in order (originChunk -1: a COW chunk taken whose copy failed; -2, cowChunk 0: a
  // persistent snapshot's metadata commit failed).
  Napi::Value DrainCopies(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint64_t> log = last_copies_ ? last_copies_->Drain() : std::vector<uint64_t>();
    Napi::Float64Array out = Napi::Float64Array::New(env, log.size());
    for (size_t i = 0; i < log.size(); i++) out[i] = log[i] == ThreadCopies::kWasted ? -1 : log[i] == ThreadCopies::kCommitFailed ? -2 : double(log[i]);
    return out;
  }

  // unusedCopies() -> [next, end, count]: the lent COW chunks no thread took, the first, the one
  // after the last and how many (none: [0, 0, 0]).
  Napi::Value UnusedCopies(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t next = 0, end = 0, count = 0;
    if (last_copies_) last_copies_->Unused(&next, &end, &count);
    Napi::Array out = Napi::Array::New(env, 3);
    out.Set(0u, double(next));
    out.Set(1u, double(end));
    out.Set(2u, double(count));
    return out;
  }

  // releaseCopies([tag: bigint]): the copies taken back are settled: the COW file's descriptor
  // goes (drainCopies and unusedCopies find nothing from now on). With a tag, every copy was
  // folded and the snapshot's exceptions are exactly the claimed chunks: the claims are kept
  // under it for enableCopies; without, they go.
  Napi::Value ReleaseCopies(const Napi::CallbackInfo& info) {
    map_->DisableCopies();
    kept_claims_.reset();
    if (last_copies_ && info.Length() >= 1 && info[0].IsBigInt()) {
      bool lossless;
      kept_tag_ = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
      if (lossless) {
        kept_claims_ = last_copies_->claims();
        kept_generation_ = map_->Generation();
      }
    }
    last_copies_.reset();
    return info.Env().Undefined();
  }

  // snapshotReads(firstChunk, count, on): a read of the origin's snapshot starts over these
  // chunks (on), or has ended (off); the threads wait for it before they write the origin over a
  // chunk they copied (snapshot_reads.h).
  Napi::Value SnapshotReads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t first = ByteCountArg(info, 0, "firstChunk"), count = ByteCountArg(info, 1, "count");
    if (info.Length() < 3 || !info[2].IsBoolean()) throw Napi::TypeError::New(env, "snapshotReads(firstChunk, count, on: boolean)");
    map_->snapshot_reads().Count(first, count, info[2].As<Napi::Boolean>().Value());
    return env.Undefined();
  }

  std::shared_ptr<WriteMap> map_;
  std::shared_ptr<ThreadCopies> last_copies_;  // the copies enabled last (drained after they are disabled too)
  std::shared_ptr<const ChunkMarks> kept_claims_;  // releaseCopies' (null: none kept)
  uint64_t kept_tag_ = 0;
  std::weak_ptr<const WriteExtents> kept_generation_;  // published when they were kept
};

Napi::FunctionReference* WriteMapJs::constructor = nullptr;

// A request the thread did, as JavaScript gets it: cookieHi, cookieLo, tag, filePos, length,
// errno, offset, replied, isRead (2: its data sent from the image's mapping), pieces, spliced
// (receive-threads.js IO_RECORD). A WRITE written in several pieces has them in the records'
// `pieces` (kPiece numbers each, in request order).
constexpr size_t kRecord = 11;
constexpr size_t kPiece = 4;  // tag, filePos, length, errno (receive-threads.js IO_PIECE)

void PutRecord(Napi::Float64Array w, size_t k, const ThreadIo& d) {
  w[k] = d.cookie_hi;
  w[k + 1] = d.cookie_lo;
  w[k + 2] = d.tag;
  w[k + 3] = double(d.file_pos);
  w[k + 4] = d.len;
  w[k + 5] = d.err;
  w[k + 6] = double(d.offset);
  w[k + 7] = d.replied ? 1 : 0;
  w[k + 8] = d.is_read ? (d.mapped ? 2 : 1) : 0;
  w[k + 9] = double(d.pieces.size());
  w[k + 10] = d.spliced ? 1 : 0;
}

// Records of events[from, to) (all requests), with their pieces, if any, as `pieces`.
Napi::Float64Array Records(Napi::Env env, const std::vector<ReceiverEvent>& events, size_t from, size_t to) {
  Napi::Float64Array w = Napi::Float64Array::New(env, (to - from) * kRecord);
  size_t pieces = 0;
  for (size_t i = from, k = 0; i < to; i++, k += kRecord) {
    PutRecord(w, k, events[i].io);
    pieces += events[i].io.pieces.size();
  }
  if (pieces == 0) return w;
  Napi::Float64Array p = Napi::Float64Array::New(env, pieces * kPiece);
  size_t k = 0;
  for (size_t i = from; i < to; i++) {
    for (const PieceWritten& piece : events[i].io.pieces) {
      p[k] = piece.tag;
      p[k + 1] = double(piece.file_pos);
      p[k + 2] = piece.len;
      p[k + 3] = piece.err;
      k += kPiece;
    }
  }
  w.Set("pieces", p);
  return w;
}

// new FileWrites(fd): the count of writes receive threads completed on the file fd is open on
// (file_writes.h), kept while this object lives; count() reads it.
class FileWritesJs : public Napi::ObjectWrap<FileWritesJs> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FileWrites", {InstanceMethod<&FileWritesJs::Count>("count")});
  }

  explicit FileWritesJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FileWritesJs>(info) {
    writes_ = FileWritesOf(FdArg(info, 0));
    if (!writes_) throw Napi::Error::New(info.Env(), std::string("fstat: ") + strerror(errno));
  }

 private:
  Napi::Value Count(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(writes_->Count())); }

  std::shared_ptr<FileWrites> writes_;
};

struct ReceiverState;
using SharedState = std::shared_ptr<ReceiverState>;
void Deliver(Napi::Env env, Napi::Function on_events, SharedState* state, void*);
using Tsfn = Napi::TypedThreadSafeFunction<SharedState, void, Deliver>;

// Shared by the JS object and the thread-safe function; whichever goes last frees it.
struct ReceiverState {
  std::unique_ptr<Receiver> receiver;
  Tsfn tsfn;
  bool tsfn_gone = false;
  bool end_delivered = false;
};

// onEvents(items, end): items are Buffers (stream bytes to parse) and Float64Arrays of requests
// done, kRecord numbers each (Records); end is null, or
// [reason, isError] once the stream ended.
void Deliver(Napi::Env env, Napi::Function on_events, SharedState* state, void*) {
  ReceiverState* st = state->get();
  if (env == nullptr || !st->receiver) return;
  Napi::HandleScope scope(env);
  std::vector<ReceiverEvent> events;
  std::string end;
  bool end_is_error = false;
  st->receiver->Take(&events, &end, &end_is_error);
  Napi::Array items = Napi::Array::New(env);
  uint32_t n = 0;
  for (size_t i = 0; i < events.size();) {
    if (!events[i].is_io) {
      ReceivedBytes b = events[i++].bytes;
      items.Set(n++, Napi::Buffer<uint8_t>::New(env, b.data, b.len, [](Napi::Env, uint8_t* p) { free(p); }));
      continue;
    }
    size_t j = i;
    while (j < events.size() && events[j].is_io) j++;
    items.Set(n++, Records(env, events, i, j));
    i = j;
  }
  Napi::Value end_value = env.Null();
  if (!end.empty() && !st->end_delivered) {
    st->end_delivered = true;
    Napi::Array e = Napi::Array::New(env, 2);
    e.Set(0u, end);
    e.Set(1u, Napi::Boolean::New(env, end_is_error));
    end_value = e;
  }
  if (n > 0 || !end_value.IsNull()) on_events.Call({items, end_value});
}

void FinalizeTsfn(Napi::Env, void*, SharedState* state) {
  (*state)->receiver.reset();
  (*state)->tsfn_gone = true;
  delete state;
}

class ReceiverJs : public Napi::ObjectWrap<ReceiverJs> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Receiver", {
      InstanceMethod<&ReceiverJs::Pause>("pause"),
      InstanceMethod<&ReceiverJs::Resume>("resume"),
      InstanceMethod<&ReceiverJs::WriteAnswered>("writeAnswered"),
      InstanceMethod<&ReceiverJs::TryClaimOutput>("tryClaimOutput"),
      InstanceMethod<&ReceiverJs::ReleaseOutput>("releaseOutput"),
      InstanceMethod<&ReceiverJs::MidRequestMs>("midRequestMs"),
      InstanceMethod<&ReceiverJs::Stop>("stop"),
    });
  }

  // new Receiver(sockFd, initialBytes, writeMap | null, {maxRequest, structured, stallMs}, onEvents): reads a duplicate
  // of sockFd on a thread from now on (the caller stops reading it).
  explicit ReceiverJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReceiverJs>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[1].IsBuffer() || !info[4].IsFunction()) {
      throw Napi::TypeError::New(env, "new Receiver(sockFd, initialBytes, writeMap, options, onEvents)");
    }
    int sock = FdArg(info, 0);
    auto initial = info[1].As<Napi::Buffer<uint8_t>>();
    std::shared_ptr<WriteMap> map;
    if (info[2].IsObject()) {
      Napi::Object o = info[2].As<Napi::Object>();
      if (!o.InstanceOf(WriteMapJs::constructor->Value())) throw Napi::TypeError::New(env, "writeMap must be a WriteMap or null");
      map = WriteMapJs::Unwrap(o)->map();
    } else if (!info[2].IsNull()) {
      throw Napi::TypeError::New(env, "writeMap must be a WriteMap or null");
    }
    if (!info[3].IsObject()) throw Napi::TypeError::New(env, "options must be {maxRequest, structured, stallMs}");
    Napi::Object o = info[3].As<Napi::Object>();
    ReceiverOptions opts;
    for (const char* key : {"maxRequest", "stallMs"}) {
      double v = o.Get(key).IsNumber() ? o.Get(key).As<Napi::Number>().DoubleValue() : -1;
      if (!IsByteCount(v)) throw Napi::TypeError::New(env, std::string(key) + " must be a non-negative integer");
    }
    opts.max_request = uint32_t(std::min<double>(o.Get("maxRequest").As<Napi::Number>().DoubleValue(), UINT32_MAX));
    opts.stall_ms = int(std::min<double>(o.Get("stallMs").As<Napi::Number>().DoubleValue(), INT32_MAX));
    opts.structured = o.Get("structured").ToBoolean().Value();
    int fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw Napi::Error::New(env, std::string("dup: ") + strerror(errno));
    state_ = std::make_shared<ReceiverState>();
    Tsfn tsfn = Tsfn::New(env, info[4].As<Napi::Function>(), "dmkit-receiver", 0, 1, new SharedState(state_), FinalizeTsfn);
    state_->tsfn = tsfn;
    try {
      state_->receiver = std::make_unique<Receiver>(fd, map, opts,
                                                    std::vector<uint8_t>(initial.Data(), initial.Data() + initial.Length()),
                                                    [tsfn]() mutable { tsfn.NonBlockingCall(); });
      state_->receiver->Start();
    } catch (const std::exception& e) {
      if (!state_->receiver) close(fd);
      StopNow();
      throw Napi::Error::New(env, std::string("cannot start a receive thread: ") + e.what());
    }
  }

  ~ReceiverJs() override { StopNow(); }

 private:
  Receiver* receiver(Napi::Env env) {
    if (!state_ || !state_->receiver) throw Napi::Error::New(env, "receiver is stopped");
    return state_->receiver.get();
  }

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    receiver(info.Env())->SetPaused(true);
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    receiver(info.Env())->SetPaused(false);
    return info.Env().Undefined();
  }

  // writeAnswered(cookieHi, cookieLo): the WRITE with that cookie, handed over by the thread, was answered.
  Napi::Value WriteAnswered(const Napi::CallbackInfo& info) {
    uint64_t hi = ByteCountArg(info, 0, "cookieHi"), lo = ByteCountArg(info, 1, "cookieLo");
    if (hi > UINT32_MAX || lo > UINT32_MAX) throw Napi::RangeError::New(info.Env(), "a cookie half fits in 32 bits");
    if (state_ && state_->receiver) state_->receiver->WriteAnswered((hi << 32) | lo);
    return info.Env().Undefined();
  }

  // tryClaimOutput() -> false while the thread is sending a reply (try again soon; it sends no
  // new one meanwhile). A stopped receiver sends nothing: always true.
  Napi::Value TryClaimOutput(const Napi::CallbackInfo& info) {
    bool ok = !(state_ && state_->receiver) || state_->receiver->output().TryClaim();
    return Napi::Boolean::New(info.Env(), ok);
  }

  Napi::Value ReleaseOutput(const Napi::CallbackInfo& info) {
    if (state_ && state_->receiver) state_->receiver->output().Release();
    return info.Env().Undefined();
  }

  Napi::Value MidRequestMs(const Napi::CallbackInfo& info) {
    double ms = state_ && state_->receiver ? double(state_->receiver->MidRequestMs()) : 0;
    return Napi::Number::New(info.Env(), ms);
  }

  // stop(): joins the thread (it finishes a write in progress) and returns the events not
  // delivered yet, as onEvents would get them (items only).
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!state_ || !state_->receiver) return Napi::Array::New(env);
    state_->receiver->Stop();
    std::vector<ReceiverEvent> events;
    std::string end;
    bool is_error;
    state_->receiver->Take(&events, &end, &is_error);
    Napi::Array items = Napi::Array::New(env);
    uint32_t n = 0;
    for (size_t i = 0; i < events.size(); i++) {
      if (!events[i].is_io) {
        free(events[i].bytes.data);  // nobody will parse them now
        continue;
      }
      items.Set(n++, Records(env, events, i, i + 1));
    }
    StopNow();
    return items;
  }

  void StopNow() {
    if (!state_) return;
    state_->receiver.reset();
    if (!state_->tsfn_gone) state_->tsfn.Release();
    state_.reset();
  }

  SharedState state_;
};

}  // namespace

void InitReceiver(Napi::Env env, Napi::Object exports) {
  exports.Set("WriteMap", WriteMapJs::Define(env));
  exports.Set("Receiver", ReceiverJs::Define(env));
  exports.Set("FileWrites", FileWritesJs::Define(env));
}

}  // namespace dmkit
