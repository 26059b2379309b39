#include "write_lane_binding.h"

#include <memory>
#include <string>
#include <vector>

#include "js_numbers.h"
#include "write_lane.h"

namespace dmkit {

namespace {

struct LaneState;
using SharedState = std::shared_ptr<LaneState>;
void Deliver(Napi::Env env, Napi::Function on_done, SharedState* state, void*);
using Tsfn = Napi::TypedThreadSafeFunction<SharedState, void, Deliver>;

// What the lane's thread, the JS object and the thread-safe function share; whichever of the
// last two goes last frees it. At process exit the thread-safe function may go first: its
// finalizer then stops the thread (which calls it) before it is gone.
struct LaneState {
  std::unique_ptr<WriteLane> lane;
  Tsfn tsfn;
  bool tsfn_gone = false;  // finalized: never call or release it again
  uint32_t pending = 0;    // writes pushed and not yet delivered (event loop only)
};

// Finished writes as one Float64Array of (id, result) pairs: result is the bytes written, or
// -errno. The event loop is kept alive only while writes are pending.
Napi::Float64Array TakePairs(Napi::Env env, LaneState* state) {
  std::vector<LaneResult> results;
  state->lane->TakeResults(&results);
  Napi::Float64Array pairs = Napi::Float64Array::New(env, results.size() * 2);
  for (size_t i = 0; i < results.size(); i++) {
    pairs[2 * i] = double(results[i].id);
    pairs[2 * i + 1] = double(results[i].result);
  }
  if (!results.empty()) {
    state->pending -= uint32_t(results.size());
    if (state->pending == 0 && !state->tsfn_gone) state->tsfn.Unref(env);
  }
  return pairs;
}

void Deliver(Napi::Env env, Napi::Function on_done, SharedState* state, void*) {
  if (env == nullptr || !(*state)->lane) return;
  Napi::HandleScope scope(env);
  Napi::Float64Array pairs = TakePairs(env, state->get());
  if (pairs.ElementLength() > 0) on_done.Call({pairs});  // else an earlier delivery took them
}

void FinalizeTsfn(Napi::Env, void*, SharedState* state) {
  (*state)->lane.reset();
  (*state)->tsfn_gone = true;
  delete state;
}

class WriteLaneJs : public Napi::ObjectWrap<WriteLaneJs> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "WriteLane", {
      InstanceMethod<&WriteLaneJs::Write>("write"),
      InstanceMethod<&WriteLaneJs::Close>("close"),
    });
  }

  // new WriteLane(fd, onDone(pairs)): the caller keeps fd open until close() returned (a
  // duplicate would cost every file one more descriptor for as long as it is open).
  explicit WriteLaneJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WriteLaneJs>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "new WriteLane(fd, onDone)");
    }
    int fd = FdArg(info, 0);
    state_ = std::make_shared<LaneState>();
    Tsfn tsfn = Tsfn::New(env, info[1].As<Napi::Function>(), "dmkit-write-lane", 0, 1,
                          new SharedState(state_), FinalizeTsfn);
    tsfn.Unref(env);
    state_->tsfn = tsfn;
    try {
      state_->lane = std::make_unique<WriteLane>(fd, [tsfn]() mutable { tsfn.NonBlockingCall(); });
    } catch (const std::exception& e) {
      Stop();
      throw Napi::Error::New(env, std::string("cannot start a write thread: ") + e.what());
    }
  }

  ~WriteLaneJs() override { Stop(); }

 private:
  // write(id, buffers, position): writes the buffers, in order, at position. The caller keeps
  // the buffers alive (and unchanged) until onDone reports id.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!state_ || !state_->lane) throw Napi::Error::New(env, "write lane is closed");
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsArray() || !info[2].IsNumber()) {
      throw Napi::TypeError::New(env, "write(id, buffers, position)");
    }
    LaneWrite w;
    w.id = uint64_t(info[0].As<Napi::Number>().DoubleValue());
    w.pos = ByteCountArg(info, 2, "position");
    Napi::Array bufs = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < bufs.Length(); i++) {
      Napi::Value v = bufs.Get(i);
      if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "buffers must be Uint8Arrays");
      Napi::Uint8Array b = v.As<Napi::Uint8Array>();
      w.iov.push_back({b.Data(), b.ByteLength()});
    }
    if (state_->pending++ == 0) state_->tsfn.Ref(env);
    state_->lane->Push(std::move(w));
    return env.Undefined();
  }

  // close(): waits for the writes already pushed, stops the thread, and returns the results
  // not delivered yet (pairs, as onDone gets them).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!state_ || !state_->lane) return Napi::Float64Array::New(env, 0);
    state_->lane->Stop();
    Napi::Float64Array rest = TakePairs(env, state_.get());
    Stop();
    return rest;
  }

  void Stop() {
    if (!state_) return;
    state_->lane.reset();
    if (!state_->tsfn_gone) state_->tsfn.Release();
    state_.reset();
  }

  SharedState state_;
};

}  // namespace

void InitWriteLane(Napi::Env env, Napi::Object exports) {
  exports.Set("WriteLane", WriteLaneJs::Define(env));
}

}  // namespace dmkit
