// Names the calling thread (Linux keeps the first 15 bytes), so that top -H,
// perf and gdb tell a partition slot from an HTTP thread.
#pragma once

#include <pthread.h>

#include <string>

namespace freshet {

inline void SetThreadName(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace freshet
