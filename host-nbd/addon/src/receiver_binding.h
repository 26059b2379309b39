// JavaScript classes over receiver.h and write_map.h: WriteMap (one per exported device) and
// Receiver (one per connection whose socket the server reads on a thread).
#pragma once

#include <napi.h>

namespace dmkit {

void InitReceiver(Napi::Env env, Napi::Object exports);

}  // namespace dmkit
