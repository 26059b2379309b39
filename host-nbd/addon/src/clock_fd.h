// Small helpers of the addon's threads: a monotonic clock in milliseconds (or microseconds) for their deadlines,
// and emptying an eventfd they were woken through.
#pragma once

#include <time.h>
#include <unistd.h>

#include <cstdint>

namespace dmkit {

inline int64_t NowMs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

inline int64_t NowUs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t(t.tv_sec) * 1000000 + t.tv_nsec / 1000;
}

inline void DrainEventFd(int fd) {
  uint64_t v;
  (void)!read(fd, &v, sizeof v);
}

}  // namespace dmkit
