// What a JavaScript number may be when it stands for a byte count, a file position or a file
// descriptor, and the bindings' readers of such arguments (a TypeError for anything else).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace dmkit {

// A non-negative integer that a double holds exactly (up to 2^53).
inline bool IsByteCount(double d) {
  return d >= 0 && d <= 9007199254740992.0 && d == static_cast<double>(static_cast<uint64_t>(d));
}

// Argument i as a file descriptor.
inline int FdArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "fd must be a number");
  int64_t fd = info[i].As<Napi::Number>().Int64Value();
  if (fd < 0 || fd > INT32_MAX) throw Napi::TypeError::New(info.Env(), "fd out of range");
  return static_cast<int>(fd);
}

// Argument i as a byte count or position (IsByteCount); `what` names it in the error.
inline uint64_t ByteCountArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  double v = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
  if (!IsByteCount(v)) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a non-negative integer");
  return static_cast<uint64_t>(v);
}

}  // namespace dmkit
