#include "views/offset_waiters.h"

#include <algorithm>

#include "core/thread_name.h"

namespace freshet {

OffsetWaiters::OffsetWaiters(size_t capacity) : capacity_(capacity) {
  thread_ = std::thread([this] {
    SetThreadName("min-offset");
    Run();
  });
}

OffsetWaiters::~OffsetWaiters() { Stop(); }

Status OffsetWaiters::Add(Wait wait) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status::Unavailable("the view process is shutting down");
    if (added_.size() + thread_holds_ >= capacity_)
      return Status::Unavailable("too many readers waiting for min_offset; retry");
    added_.push_back(std::move(wait));
  }
  wake_.notify_one();
  return Status::Ok();
}

void OffsetWaiters::Notify() {
  {
    std::lock_guard lock(mu_);
    notified_ = true;
  }
  wake_.notify_one();
}

void OffsetWaiters::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

size_t OffsetWaiters::held() const {
  std::lock_guard lock(mu_);
  return added_.size() + thread_holds_;
}

void OffsetWaiters::Settle(std::vector<Wait>& waiting, std::chrono::steady_clock::time_point now) {
  auto answered = std::remove_if(waiting.begin(), waiting.end(), [now](Wait& w) {
    if (w.reached()) {
      w.done(Status::Ok());
      return true;
    }
    if (now < w.deadline) return false;
    w.done(Status::Timeout("deadline passed"));
    return true;
  });
  waiting.erase(answered, waiting.end());
}

void OffsetWaiters::Run() {
  std::vector<Wait> waiting;  // admitted; only this thread touches it
  std::unique_lock lock(mu_);
  while (true) {
    auto woken = [&] { return stopping_ || notified_ || !added_.empty(); };
    if (waiting.empty()) {
      wake_.wait(lock, woken);
    } else {
      auto next_deadline = waiting.front().deadline;
      for (const Wait& w : waiting) next_deadline = std::min(next_deadline, w.deadline);
      wake_.wait_until(lock, next_deadline, woken);
    }
    std::vector<Wait> added = std::move(added_);
    added_.clear();
    thread_holds_ += added.size();
    notified_ = false;
    bool stopping = stopping_;
    lock.unlock();

    for (Wait& w : added) {
      Status admitted = w.admit ? w.admit() : Status::Ok();
      if (admitted.ok())
        waiting.push_back(std::move(w));
      else
        w.done(admitted);
    }
    Settle(waiting, std::chrono::steady_clock::now());
    if (stopping) {
      for (Wait& w : waiting) w.done(Status::Unavailable("the view process is shutting down"));
      waiting.clear();
    }

    lock.lock();
    thread_holds_ = waiting.size();
    if (stopping) return;
  }
}

}  // namespace freshet
