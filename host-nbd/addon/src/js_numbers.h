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

// A file piece, [fd, position, length] of non-negative integers with fd within an int: its
// parts, or false.
inline bool FilePieceOf(const Napi::Value& v, int* fd, uint64_t* pos, uint64_t* len) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 3) return false;
  Napi::Array f = v.As<Napi::Array>();
  double d[3];
  for (uint32_t k = 0; k < 3; k++) {
    Napi::Value x = f.Get(k);
    d[k] = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : -1;
    if (!IsByteCount(d[k])) return false;
  }
  if (d[0] > INT32_MAX) return false;
  *fd = static_cast<int>(d[0]);
  *pos = static_cast<uint64_t>(d[1]);
  *len = static_cast<uint64_t>(d[2]);
  return true;
}

}  // namespace dmkit
