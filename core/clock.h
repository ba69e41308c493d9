// Clock: the time as freshet's components see it. Production code uses
// SystemClock(); a unit test gives a component a ManualClock that moves only
// when the test says so, to check heartbeats, windows and expiries without
// sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace freshet {

class Clock {
 public:
  virtual ~Clock() = default;
  // For intervals and deadlines.
  virtual std::chrono::steady_clock::time_point Now() const = 0;
  // Milliseconds since the epoch, for timestamps sent to clients.
  virtual int64_t WallMillis() const = 0;
};

// The system's clocks.
const Clock& SystemClock();

// A clock for tests: starts at an arbitrary fixed point, moves by Advance.
// Thread-safe.
class ManualClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override {
    std::lock_guard lock(mu_);
    return std::chrono::steady_clock::time_point{} + std::chrono::hours(1) + elapsed_;
  }
  int64_t WallMillis() const override {
    std::lock_guard lock(mu_);
    return 1764000000000 + std::chrono::duration_cast<std::chrono::milliseconds>(elapsed_).count();
  }
  void Advance(std::chrono::steady_clock::duration by) {
    std::lock_guard lock(mu_);
    elapsed_ += by;
  }

 private:
  mutable std::mutex mu_;
  std::chrono::steady_clock::duration elapsed_{};
};

}  // namespace freshet
