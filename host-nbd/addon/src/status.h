// The result of a kernel call, as a value: 0 or an errno, and the step that failed.
// Everything below the JS binding reports errors this way; only addon.cc turns them into
// JavaScript errors (with code, errno and syscall set, like Node's own).
#pragma once

#include <string>
#include <utility>

namespace dmkit {

struct Status {
  int err = 0;       // 0, or a positive errno
  std::string what;  // the step that failed: "open /dev/nbd0", "NBD_CMD_CONNECT", ...

  static Status Ok() { return {}; }
  static Status Fail(int err, std::string what) { return {err, std::move(what)}; }
  bool ok() const { return err == 0; }
};

}  // namespace dmkit
