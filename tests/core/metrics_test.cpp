#include "core/metrics.h"

#include <gtest/gtest.h>

namespace freshet {
namespace {

// BucketCounts snapshots subtract into a window; QuantileOf reads the window
// as Quantile reads the whole history.
TEST(Histogram, QuantileOfAWindowOfBucketCounts) {
  Histogram h({0.01, 0.1, 1, 2});
  for (int i = 0; i < 100; ++i) h.Observe(1.5);  // a slow start: everything in (1, 2]
  EXPECT_EQ(h.Quantile(0.99), 2);
  std::vector<uint64_t> before = h.BucketCounts();
  ASSERT_EQ(before.size(), 5u);
  EXPECT_EQ(before[3], 100u);
  for (int i = 0; i < 100; ++i) h.Observe(0.005);  // then fast
  std::vector<uint64_t> after = h.BucketCounts(), window(after.size());
  for (size_t i = 0; i < after.size(); ++i) window[i] = after[i] - before[i];
  EXPECT_EQ(h.QuantileOf(window, 0.99), 0.01);  // the window sees only the fast ones
  EXPECT_EQ(h.Quantile(0.99), 2);               // the whole history still holds the slow start
  EXPECT_EQ(h.QuantileOf(std::vector<uint64_t>(5, 0), 0.99), 0);
  h.Observe(5);  // above every bound
  EXPECT_EQ(h.BucketCounts()[4], 1u);
}

}  // namespace
}  // namespace freshet
