// The JavaScript face of WriteLane (write_lane.h): new WriteLane(fd, onDone), lane.write(id,
// buffers, position), lane.close().
#pragma once

#include <napi.h>

namespace dmkit {

// Adds the WriteLane class to the addon's exports.
void InitWriteLane(Napi::Env env, Napi::Object exports);

}  // namespace dmkit
