// The JS face of holes.h: seekData(fd, offset) and seekHole(fd, offset) (synchronous: an lseek
// costs about what a page-cache read does) and punchHole(fd, offset, length, callback(err)) in
// libuv's pool (deallocating terabytes takes the file system a while).
#pragma once

#include <napi.h>

namespace dmkit {

void InitHoles(Napi::Env env, Napi::Object exports);

}  // namespace dmkit
