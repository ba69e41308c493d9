#include "views/write_pipeline.h"

#include "core/thread_name.h"

namespace freshet {

WritePipeline::WritePipeline(std::string thread_name) {
  thread_ = std::thread([this, name = std::move(thread_name)] {
    SetThreadName(name);
    Run();
  });
}

WritePipeline::~WritePipeline() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

std::future<Status> WritePipeline::Submit(std::function<Status()> write) {
  std::packaged_task<Status()> task(std::move(write));
  std::future<Status> done = task.get_future();
  {
    std::lock_guard lock(mu_);
    queued_.push_back(std::move(task));
  }
  wake_.notify_one();
  return done;
}

void WritePipeline::Run() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queued_.empty(); });
    if (queued_.empty()) return;  // stopping, and nothing left to write
    std::packaged_task<Status()> task = std::move(queued_.front());
    queued_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace freshet
