#include "holes_binding.h"


#include "holes.h"
#include "js_numbers.h"
#include "off_thread.h"

namespace dmkit {

namespace {

// seekData(fd, offset) / seekHole(fd, offset): an offset, or -1 (no data / past the end).
template <Status (*Seek)(int, uint64_t, int64_t*)>
Napi::Value SeekJs(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint64_t from = ByteCountArg(info, 1, "offset");
  int64_t at = -1;
  Status st = Seek(fd, from, &at);
  if (!st.ok()) throw ErrorFrom(info.Env(), st);
  return Napi::Number::New(info.Env(), double(at));
}

class PunchWorker : public Napi::AsyncWorker {
 public:
  PunchWorker(Napi::Function callback, int fd, uint64_t offset, uint64_t length)
      : Napi::AsyncWorker(callback, "dmkit-punch-hole"), fd_(fd), offset_(offset), length_(length) {}
  void Execute() override { status_ = PunchHole(fd_, offset_, length_); }
  void OnOK() override {
    Napi::Env env = Env();
    Callback().Call({status_.ok() ? env.Null() : ErrorFrom(env, status_).Value()});
  }

 private:
  int fd_;
  uint64_t offset_, length_;
  Status status_;
};

// punchHole(fd, offset, length, callback(err)). The caller keeps fd open until the callback.
Napi::Value PunchHoleJs(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint64_t offset = ByteCountArg(info, 1, "offset");
  uint64_t length = ByteCountArg(info, 2, "length");
  if (info.Length() < 4 || !info[3].IsFunction()) throw Napi::TypeError::New(info.Env(), "punchHole(fd, offset, length, callback)");
  (new PunchWorker(info[3].As<Napi::Function>(), fd, offset, length))->Queue();
  return info.Env().Undefined();
}

}  // namespace

void InitHoles(Napi::Env env, Napi::Object exports) {
  exports.Set("seekData", Napi::Function::New(env, SeekJs<NextData>));
  exports.Set("seekHole", Napi::Function::New(env, SeekJs<NextHole>));
  exports.Set("punchHole", Napi::Function::New(env, PunchHoleJs));
}

}  // namespace dmkit
