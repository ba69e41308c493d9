#include "core/clock.h"

#include "core/envelope.h"

namespace freshet {

namespace {

class RealClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return std::chrono::steady_clock::now(); }
  int64_t WallMillis() const override { return NowMillis(); }
};

}  // namespace

const Clock& SystemClock() {
  static const RealClock clock;
  return clock;
}

}  // namespace freshet
