// Kernel calls on an NBD device may wait for the NBD server running on the JS thread of this
// very process: an fsync sends FLUSH to it, NBD_DO_IT lasts as long as the device, a disconnect
// may wait for socket space. So they run on threads of their own: never on the JS thread, and
// never in libuv's small pool, which the server's own file I/O needs.
#pragma once

#include <napi.h>

#include <cstdint>
#include <functional>

#include "status.h"

namespace dmkit {

// Runs fn on a new thread, all signals blocked (signals belong to the JS thread; one landing
// in NBD_DO_IT would tear the device down). fn may call post() to run code on the JS thread;
// post() waits until the JS thread has queued it. Posted code must check env for null: it is
// null when the environment is being torn down.
using JsCall = std::function<void(Napi::Env)>;
void StartThread(Napi::Env env, const char* name, std::function<void(const std::function<void(JsCall)>& post)> fn);

// The common case: fn's Status settles the returned promise (rejecting with ErrorFrom).
Napi::Promise RunOffThread(Napi::Env env, const char* name, std::function<Status()> fn);

// A JS Error for a failed Status: message "<what>: <strerror>", with code ("EBUSY"), errno and
// syscall (the step) set, as Node's own system errors have them.
Napi::Error ErrorFrom(Napi::Env env, const Status& st);

}  // namespace dmkit
