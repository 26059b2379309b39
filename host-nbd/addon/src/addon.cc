// dmkit's native addon: the few things Node cannot do to attach an NBD device itself, and
// sendfile for the server's large read replies and a write thread per file for its large writes.
// It hands sockets to the kernel's nbd driver (netlink, or ioctls as the fallback), makes the
// socket pairs, takes ownership locks and flushes block devices. The NBD handshake, choosing a
// device and every policy decision live in JavaScript (host-nbd/attach/).
//
// Argument checking is strict: a wrong type or a missing field throws a TypeError naming it.
#include <errno.h>
#include <fcntl.h>
#include <napi.h>
#include <unistd.h>

#include <memory>
#include <unordered_map>
#include <vector>

#include "fds.h"
#include "js_numbers.h"
#include "nbd_ioctl.h"
#include "nbd_netlink.h"
#include "off_thread.h"
#include "send_file.h"
#include "holes_binding.h"
#include "readable_binding.h"
#include "write_lane_binding.h"
#include "receiver_binding.h"

namespace dmkit {

namespace {

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject()) ThrowType(info.Env(), std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) ThrowType(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// A non-negative integer field; numbers only (sizes fit a double exactly up to 2^53).
uint64_t U64Field(Napi::Object obj, const char* key) {
  Napi::Value v = obj.Get(key);
  if (!v.IsNumber()) ThrowType(obj.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!IsByteCount(d)) {
    ThrowType(obj.Env(), std::string(key) + " must be a non-negative integer");
  }
  return static_cast<uint64_t>(d);
}

std::vector<int> FdsField(Napi::Object obj) {
  Napi::Value v = obj.Get("fds");
  if (!v.IsArray()) ThrowType(obj.Env(), "fds must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  if (arr.Length() == 0) ThrowType(obj.Env(), "fds must not be empty");
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value fd = arr.Get(i);
    if (!fd.IsNumber() || fd.As<Napi::Number>().Int64Value() < 0) ThrowType(obj.Env(), "fds must hold descriptors");
    fds.push_back(fd.As<Napi::Number>().Int32Value());
  }
  return fds;
}

NbdNetlinkParams NetlinkParams(Napi::Object obj, bool need_sizes) {
  NbdNetlinkParams p;
  Napi::Value index = obj.Get("index");
  if (index.IsNumber()) p.index = index.As<Napi::Number>().Int32Value();
  else if (!index.IsUndefined()) ThrowType(obj.Env(), "index must be a number");
  if (need_sizes) {
    p.size_bytes = U64Field(obj, "sizeBytes");
    p.block_size = U64Field(obj, "blockSize");
    p.server_flags = U64Field(obj, "serverFlags");
  }
  p.timeout_s = U64Field(obj, "timeout");
  p.dead_conn_timeout_s = U64Field(obj, "deadConnTimeout");
  p.fds = FdsField(obj);
  Napi::Value backend = obj.Get("backend");
  if (backend.IsString()) p.backend = backend.As<Napi::String>().Utf8Value();
  else if (!backend.IsUndefined()) ThrowType(obj.Env(), "backend must be a string");
  return p;
}

void ThrowIfFailed(Napi::Env env, const Status& st) {
  if (!st.ok()) throw ErrorFrom(env, st);
}

// socketPair() -> [fd, fd]
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  ThrowIfFailed(info.Env(), MakeSocketPair(fds));
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

// dupFd(fd) -> fd (close-on-exec)
Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd = fcntl(FdArg(info, 0), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) ThrowIfFailed(info.Env(), Status::Fail(errno, "dup"));
  return Napi::Number::New(info.Env(), fd);
}

// closeFd(fd)
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  if (close(FdArg(info, 0)) < 0 && errno != EINTR) ThrowIfFailed(info.Env(), Status::Fail(errno, "close"));
  return info.Env().Undefined();
}

// setBlocking(fd)
Napi::Value SetBlockingJs(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), SetBlocking(FdArg(info, 0)));
  return info.Env().Undefined();
}

// lockFile(path) -> fd; throws with code EWOULDBLOCK/EAGAIN when another process holds it
Napi::Value LockFileJs(const Napi::CallbackInfo& info) {
  int fd;
  ThrowIfFailed(info.Env(), LockFile(StringArg(info, 0, "path"), &fd));
  return Napi::Number::New(info.Env(), fd);
}

// netlinkProbe() -> true, or false when the kernel has no nbd netlink family; other errors throw
Napi::Value NetlinkProbe(const Napi::CallbackInfo& info) {
  Status st = NbdNetlinkProbe();
  if (st.err == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowIfFailed(info.Env(), st);
  return Napi::Boolean::New(info.Env(), true);
}

// netlinkConnect({index?, sizeBytes, blockSize, serverFlags, timeout, deadConnTimeout, fds, backend?})
// -> index. Runs on the JS thread on purpose: the kernel records the calling thread as the
// device's pid (/sys/block/nbdN/pid), and this thread lives as long as the process. CONNECT does
// no I/O on the device, so it cannot wait for our own server.
Napi::Value NetlinkConnect(const Napi::CallbackInfo& info) {
  NbdNetlinkParams p = NetlinkParams(ObjectArg(info, 0, "params"), true);
  int32_t index = -1;
  ThrowIfFailed(info.Env(), NbdNetlinkConnect(p, &index));
  return Napi::Number::New(info.Env(), index);
}

// netlinkReconfigure({index, timeout, deadConnTimeout, fds, backend?}) -> Promise
Napi::Value NetlinkReconfigure(const Napi::CallbackInfo& info) {
  NbdNetlinkParams p = NetlinkParams(ObjectArg(info, 0, "params"), false);
  if (p.index < 0) ThrowType(info.Env(), "index is required to reconfigure");
  return RunOffThread(info.Env(), "nbd-reconfigure", [p] { return NbdNetlinkReconfigure(p); });
}

// netlinkResize({index, sizeBytes, blockSize, backend?}) -> Promise: a live device's new size.
// Off the JS thread: newer kernels freeze the device's queue, waiting for requests in flight,
// which our own server answers.
Napi::Value NetlinkResize(const Napi::CallbackInfo& info) {
  Napi::Object obj = ObjectArg(info, 0, "params");
  Napi::Value index = obj.Get("index");
  if (!index.IsNumber() || index.As<Napi::Number>().Int32Value() < 0) ThrowType(info.Env(), "index must be a device number");
  int32_t i = index.As<Napi::Number>().Int32Value();
  uint64_t size = U64Field(obj, "sizeBytes");
  uint64_t block = U64Field(obj, "blockSize");
  std::string backend;
  Napi::Value b = obj.Get("backend");
  if (b.IsString()) backend = b.As<Napi::String>().Utf8Value();
  else if (!b.IsUndefined()) ThrowType(info.Env(), "backend must be a string");
  return RunOffThread(info.Env(), "nbd-resize", [i, size, block, backend] { return NbdNetlinkResize(i, size, block, backend); });
}

// netlinkDisconnect(index) -> Promise
Napi::Value NetlinkDisconnect(const Napi::CallbackInfo& info) {
  double d = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= INT32_MAX) || d != static_cast<double>(static_cast<int32_t>(d))) ThrowType(info.Env(), "index must be a device number");
  int32_t index = static_cast<int32_t>(d);
  return RunOffThread(info.Env(), "nbd-disconnect", [index] { return NbdNetlinkDisconnect(index); });
}

// ioctlAttach({path, sizeBytes, blockSize, flags, timeout, fds}, onReady) -> Promise
// onReady(error | null) is called once the device is configured (before NBD_DO_IT starts it);
// the promise settles when NBD_DO_IT returns, i.e. when the device has been disconnected.
Napi::Value IoctlAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object obj = ObjectArg(info, 0, "params");
  if (info.Length() < 2 || !info[1].IsFunction()) ThrowType(env, "onReady must be a function");
  NbdIoctlParams p;
  Napi::Value path = obj.Get("path");
  if (!path.IsString()) ThrowType(env, "path must be a string");
  p.path = path.As<Napi::String>().Utf8Value();
  p.size_bytes = U64Field(obj, "sizeBytes");
  p.block_size = U64Field(obj, "blockSize");
  p.flags = U64Field(obj, "flags");
  p.timeout_s = U64Field(obj, "timeout");
  p.fds = FdsField(obj);

  auto done = std::make_shared<Napi::Promise::Deferred>(env);
  auto on_ready = std::make_shared<Napi::FunctionReference>(Napi::Persistent(info[1].As<Napi::Function>()));
  Napi::Promise promise = done->Promise();
  StartThread(env, "nbd-do-it", [p, done, on_ready](const std::function<void(JsCall)>& post) {
    int fd = -1;
    Status setup = NbdIoctlSetup(p, &fd);
    // The reference is released on the JS thread, where it was made.
    post([setup, on_ready](Napi::Env env) {
      if (env == nullptr) return;
      on_ready->Call({setup.ok() ? env.Null() : ErrorFrom(env, setup).Value()});
      if (!setup.ok()) on_ready->Reset();
    });
    Status run = setup.ok() ? NbdIoctlRun(fd, p.path) : setup;
    post([run, done, on_ready](Napi::Env env) {
      if (env == nullptr) {
        on_ready->SuppressDestruct();  // no environment left to delete the reference in
        return;
      }
      on_ready->Reset();
      if (run.ok()) done->Resolve(env.Undefined());
      else done->Reject(ErrorFrom(env, run).Value());
    });
  });
  return promise;
}

// ioctlDisconnect(path) -> Promise
Napi::Value IoctlDisconnect(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  return RunOffThread(info.Env(), "nbd-disconnect", [path] { return NbdIoctlDisconnect(path); });
}

// ioctlSetSize(path, sizeBytes) -> Promise (off the JS thread: it opens the device)
Napi::Value IoctlSetSize(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  if (info.Length() < 2 || !info[1].IsNumber() || !IsByteCount(info[1].As<Napi::Number>().DoubleValue())) {
    ThrowType(info.Env(), "sizeBytes must be a non-negative integer");
  }
  uint64_t size = static_cast<uint64_t>(info[1].As<Napi::Number>().DoubleValue());
  return RunOffThread(info.Env(), "nbd-resize", [path, size] { return NbdIoctlSetSize(path, size); });
}

// flushDevice(path, exclusive) -> Promise
Napi::Value FlushDevice(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  bool exclusive = info.Length() > 1 && info[1].ToBoolean().Value();
  return RunOffThread(info.Env(), "nbd-flush", [path, exclusive] { return FlushBlockDevice(path, exclusive); });
}

// syncAll() -> Promise
Napi::Value SyncAllJs(const Napi::CallbackInfo& info) {
  return RunOffThread(info.Env(), "sync", [] { return SyncAll(); });
}

// Runs SendPieces in libuv's pool on duplicates of the descriptors, so that the connection or a
// backing file closing meanwhile cannot hand their numbers to something else under the send.
// The pieces array (and so its Buffers) is held until the callback.
class SendWorker : public Napi::AsyncWorker {
 public:
  SendWorker(Napi::Function callback, Napi::Array holder, int sock, std::vector<SendPiece> pieces,
             std::vector<int> owned, int max_wait_ms)
      : Napi::AsyncWorker(callback, "dmkit-sendfile"), sock_(sock), pieces_(std::move(pieces)),
        owned_(std::move(owned)), max_wait_ms_(max_wait_ms) {
    holder_ = Napi::Persistent(holder.As<Napi::Object>());
  }
  ~SendWorker() override {
    for (int fd : owned_) close(fd);
  }
  void Execute() override { status_ = SendPieces(sock_, pieces_, max_wait_ms_, &sent_); }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Value err = status_.ok() ? env.Null() : ErrorFrom(env, status_).Value();
    Callback().Call({err, Napi::Number::New(env, double(sent_))});
  }

 private:
  Napi::ObjectReference holder_;
  int sock_;
  std::vector<SendPiece> pieces_;
  std::vector<int> owned_;
  int max_wait_ms_;
  Status status_;
  uint64_t sent_ = 0;
};

int DupOrThrow(Napi::Env env, int fd, std::vector<int>* owned) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) {
    Status st = Status::Fail(errno, "dup");
    for (int o : *owned) close(o);
    throw ErrorFrom(env, st);
  }
  owned->push_back(d);
  return d;
}

// sendPieces(sockFd, pieces, maxWaitMs, callback(err, sentBytes)); pieces: Buffer | [fd, pos, len]
Napi::Value SendPiecesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info, 0);
  if (info.Length() < 4 || !info[1].IsArray() || !info[2].IsNumber() || !info[3].IsFunction()) {
    ThrowType(env, "sendPieces(sockFd, pieces, maxWaitMs, callback)");
  }
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<SendPiece> pieces;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    SendPiece p;
    if (v.IsBuffer()) {
      auto b = v.As<Napi::Buffer<uint8_t>>();
      p.data = b.Data();
      p.len = b.Length();
    } else if (v.IsArray() && v.As<Napi::Array>().Length() == 3) {
      if (!FilePieceOf(v, &p.fd, &p.pos, &p.len)) ThrowType(env, "a file piece is [fd, position, length] of non-negative integers");
    } else {
      ThrowType(env, "a piece is a Buffer or [fd, position, length]");
    }
    pieces.push_back(p);
  }
  // One duplicate per descriptor, not per piece: a batch of reads from one file is many pieces.
  std::vector<int> owned;
  std::unordered_map<int, int> dups;
  int sock_dup = DupOrThrow(env, sock, &owned);
  for (SendPiece& p : pieces) {
    if (p.data) continue;
    auto it = dups.find(p.fd);
    p.fd = it != dups.end() ? it->second : (dups[p.fd] = DupOrThrow(env, p.fd, &owned));
  }
  int wait = info[2].As<Napi::Number>().Int32Value();
  auto* w = new SendWorker(info[3].As<Napi::Function>(), arr, sock_dup, std::move(pieces), std::move(owned), wait < 0 ? 0 : wait);
  w->Queue();
  return env.Undefined();
}

Napi::Object Exports(Napi::Env env, Napi::Object exports) {
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("dupFd", Napi::Function::New(env, DupFd));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("setBlocking", Napi::Function::New(env, SetBlockingJs));
  exports.Set("lockFile", Napi::Function::New(env, LockFileJs));
  exports.Set("netlinkProbe", Napi::Function::New(env, NetlinkProbe));
  exports.Set("netlinkConnect", Napi::Function::New(env, NetlinkConnect));
  exports.Set("netlinkReconfigure", Napi::Function::New(env, NetlinkReconfigure));
  exports.Set("netlinkResize", Napi::Function::New(env, NetlinkResize));
  exports.Set("netlinkDisconnect", Napi::Function::New(env, NetlinkDisconnect));
  exports.Set("ioctlAttach", Napi::Function::New(env, IoctlAttach));
  exports.Set("ioctlSetSize", Napi::Function::New(env, IoctlSetSize));
  exports.Set("ioctlDisconnect", Napi::Function::New(env, IoctlDisconnect));
  exports.Set("flushDevice", Napi::Function::New(env, FlushDevice));
  exports.Set("syncAll", Napi::Function::New(env, SyncAllJs));
  exports.Set("sendPieces", Napi::Function::New(env, SendPiecesJs));
  InitWriteLane(env, exports);
  InitHoles(env, exports);
  InitReadable(env, exports);
  InitReceiver(env, exports);
  return exports;
}

}  // namespace

}  // namespace dmkit

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return dmkit::Exports(env, exports); }

NODE_API_MODULE(dmkit_nbd, Init)
