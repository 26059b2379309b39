#include "readable_binding.h"

#include <vector>

#include "js_numbers.h"
#include "off_thread.h"
#include "readable.h"

namespace dmkit {

namespace {

struct FileRange {
  int fd;
  uint64_t pos, len;
};

class CheckWorker : public Napi::AsyncWorker {
 public:
  CheckWorker(Napi::Function callback, std::vector<FileRange> ranges)
      : Napi::AsyncWorker(callback, "dmkit-check-readable"), ranges_(std::move(ranges)) {}
  void Execute() override {
    for (const FileRange& r : ranges_) {
      status_ = FileRangeReadable(r.fd, r.pos, r.len);
      if (!status_.ok()) return;
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Callback().Call({status_.ok() ? env.Null() : ErrorFrom(env, status_).Value()});
  }

 private:
  std::vector<FileRange> ranges_;
  Status status_;
};

// checkReadable(pieces, callback(err)); pieces: [fd, position, length] each. The caller keeps
// the descriptors open until the callback.
Napi::Value CheckReadableJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "checkReadable(pieces, callback)");
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<FileRange> ranges;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    FileRange r;
    if (!FilePieceOf(arr.Get(i), &r.fd, &r.pos, &r.len)) {
      throw Napi::TypeError::New(env, "a piece is [fd, position, length] of non-negative integers");
    }
    ranges.push_back(r);
  }
  (new CheckWorker(info[1].As<Napi::Function>(), std::move(ranges)))->Queue();
  return env.Undefined();
}

}  // namespace

void InitReadable(Napi::Env env, Napi::Object exports) {
  exports.Set("checkReadable", Napi::Function::New(env, CheckReadableJs));
}

}  // namespace dmkit
