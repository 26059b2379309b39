// The JS face of readable.h: checkReadable(pieces, callback(err)) in libuv's pool, for the
// event loop's large reads before their reply's header is queued (host-nbd/server/read-replies.js).
#pragma once

#include <napi.h>

namespace dmkit {

void InitReadable(Napi::Env env, Napi::Object exports);

}  // namespace dmkit
