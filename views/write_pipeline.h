// WritePipeline: the one thread that runs a view engine's store writes, so
// that a flush's write runs beside the consuming thread (which goes on
// applying the next batch) without a new thread per flush.
//
// Threading: Submit from the engine's thread; writes run in order, one at a
// time, on the pipeline's thread. The destructor runs what was submitted,
// then joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"

namespace freshet {

class WritePipeline {
 public:
  explicit WritePipeline(std::string thread_name);
  ~WritePipeline();
  WritePipeline(const WritePipeline&) = delete;
  WritePipeline& operator=(const WritePipeline&) = delete;

  // The future is ready once `write` has run on the pipeline's thread.
  std::future<Status> Submit(std::function<Status()> write);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<Status()>> queued_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace freshet
