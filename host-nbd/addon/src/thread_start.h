// Starting the addon's own threads: signals belong to the JS thread, so each starts with all of
// them blocked (the mask is the creator's, restored once the thread exists).
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace dmkit {

template <typename Body>
std::thread StartQuietThread(const char* name, Body body) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  std::thread t;
  try {
    t = std::thread(std::move(body));
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_setname_np(t.native_handle(), name);
  return t;
}

}  // namespace dmkit
