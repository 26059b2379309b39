#include "off_thread.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <memory>
#include <system_error>
#include <thread>

namespace dmkit {

Napi::Error ErrorFrom(Napi::Env env, const Status& st) {
  const char* name = strerrorname_np(st.err);
  Napi::Error e = Napi::Error::New(env, st.what + ": " + strerror(st.err));
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, st.err));
  e.Set("syscall", Napi::String::New(env, st.what));
  return e;
}

void StartThread(Napi::Env env, const char* name,
                 std::function<void(const std::function<void(JsCall)>& post)> fn) {
  // One thread-safe function per thread: it keeps the event loop alive while the thread runs.
  Napi::ThreadSafeFunction tsfn = Napi::ThreadSafeFunction::New(
      env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), name, 0, 1);
  auto body = [tsfn, fn = std::move(fn)]() mutable {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    auto post = [&tsfn](JsCall call) {
      auto* heap = new JsCall(std::move(call));
      napi_status s = tsfn.BlockingCall(heap, [](Napi::Env env, Napi::Function, JsCall* c) {
        (*c)(env);
        delete c;
      });
      if (s != napi_ok) delete heap;  // the environment is gone; nobody is waiting
    };
    fn(post);
    tsfn.Release();
  };
  try {
    std::thread(std::move(body)).detach();
  } catch (const std::system_error& e) {
    tsfn.Release();
    throw Napi::Error::New(env, std::string("cannot start a thread: ") + e.what());
  }
}

Napi::Promise RunOffThread(Napi::Env env, const char* name, std::function<Status()> fn) {
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  Napi::Promise promise = deferred->Promise();
  StartThread(env, name, [deferred, fn = std::move(fn)](const std::function<void(JsCall)>& post) {
    Status st = fn();
    post([deferred, st](Napi::Env env) {
      if (env == nullptr) return;
      Napi::HandleScope scope(env);
      if (st.ok()) deferred->Resolve(env.Undefined());
      else deferred->Reject(ErrorFrom(env, st).Value());
    });
  });
  return promise;
}

}  // namespace dmkit
