// OffsetWaiters: readers waiting until a view has applied an offset
// (GET /views/{name}/rows?min_offset=p:o, read-your-writes), held without a
// thread each and without polling. Engines call Notify() when a store write
// commits; the waiters' one thread then checks every wait again, and
// answers a wait whose deadline passed.
//
// Threading: Add, Notify and Stop from any thread. Every callback of a Wait
// runs on the waiters' thread, one wait at a time, so a slow `admit` delays
// the other answers by as long.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status.h"

namespace freshet {

class OffsetWaiters {
 public:
  struct Wait {
    // Runs once, before the first check; may block (it may ask the broker
    // whether the partition exists). A non-OK status is the answer.
    std::function<Status()> admit;
    // Whether the offset is applied. Runs after every Notify: keep it cheap.
    std::function<bool()> reached;
    // Called exactly once with the answer: Ok when reached, admit's error,
    // kTimeout when the deadline passed first, kUnavailable on Stop.
    std::function<void(const Status&)> done;
    std::chrono::steady_clock::time_point deadline;
  };

  explicit OffsetWaiters(size_t capacity);
  ~OffsetWaiters();  // Stop()s
  OffsetWaiters(const OffsetWaiters&) = delete;
  OffsetWaiters& operator=(const OffsetWaiters&) = delete;

  // Holds `wait` until it is answered. kUnavailable, and `done` is never
  // called, when `capacity` waits are held already or after Stop.
  Status Add(Wait wait);
  // A store committed a write (or swapped a version in): check again.
  void Notify();
  // Checks every held wait once more, answers the rest with kUnavailable
  // and joins the thread. Idempotent.
  void Stop();
  size_t held() const;

 private:
  void Run();
  // Answers the waits of `waiting` that reached their offset or deadline.
  static void Settle(std::vector<Wait>& waiting, std::chrono::steady_clock::time_point now);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Wait> added_;  // not yet admitted by the thread
  bool notified_ = false;
  bool stopping_ = false;
  size_t thread_holds_ = 0;  // admitted waits, as of the thread's last round
  std::thread thread_;
};

}  // namespace freshet
