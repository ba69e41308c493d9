#include "writer/idempotency_index.h"

#include <gtest/gtest.h>

namespace freshet {
namespace {

TEST(IdempotencyIndex, FindsTheOffsetOfAnAcceptedKey) {
  IdempotencyIndex index(4);
  index.Put("order-1", 10);
  index.Put("order-2", 11);
  EXPECT_EQ(index.Find("order-1"), 10);
  EXPECT_EQ(index.Find("order-2"), 11);
  EXPECT_EQ(index.Find("order-3"), std::nullopt);
}

TEST(IdempotencyIndex, IgnoresEmptyKeysAndZeroCapacity) {
  IdempotencyIndex index(4);
  index.Put("", 1);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.Find(""), std::nullopt);

  IdempotencyIndex none(0);
  none.Put("order-1", 1);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.Find("order-1"), std::nullopt);
}

TEST(IdempotencyIndex, ForgetsTheOldestKeyFirstWhenFull) {
  IdempotencyIndex index(3);
  for (int i = 0; i < 5; ++i) index.Put("k" + std::to_string(i), 100 + i);
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(index.Find("k0"), std::nullopt);
  EXPECT_EQ(index.Find("k1"), std::nullopt);
  EXPECT_EQ(index.Find("k2"), 102);
  EXPECT_EQ(index.Find("k4"), 104);
}

// Moving a key's offset forward does not make it younger: it is still
// forgotten in the order it was first accepted.
TEST(IdempotencyIndex, PutOfAKnownKeyMovesItsOffsetButNotItsAge) {
  IdempotencyIndex index(2);
  index.Put("a", 1);
  index.Put("b", 2);
  index.Put("a", 3);
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index.Find("a"), 3);
  index.Put("c", 4);
  EXPECT_EQ(index.Find("a"), std::nullopt);
  EXPECT_EQ(index.Find("b"), 2);
  EXPECT_EQ(index.Find("c"), 4);
}

TEST(IdempotencyIndex, EntriesAreOldestFirstAndRebuildTheSameIndex) {
  IdempotencyIndex index(3);
  index.Put("a", 1);
  index.Put("b", 2);
  index.Put("c", 3);
  index.Put("a", 7);
  index.Put("d", 4);  // forgets "a", the oldest
  std::vector<std::pair<std::string, int64_t>> expected = {{"b", 2}, {"c", 3}, {"d", 4}};
  ASSERT_EQ(index.Entries(), expected);

  IdempotencyIndex rebuilt(3);
  for (const auto& [key, offset] : index.Entries()) rebuilt.Put(key, offset);
  EXPECT_EQ(rebuilt.Entries(), index.Entries());
  // The rebuilt index forgets in the same order as the original.
  index.Put("e", 5);
  rebuilt.Put("e", 5);
  EXPECT_EQ(rebuilt.Entries(), index.Entries());
  EXPECT_EQ(rebuilt.Find("b"), std::nullopt);
}

TEST(IdempotencyIndex, ClearForgetsEverything) {
  IdempotencyIndex index(3);
  index.Put("a", 1);
  index.Clear();
  EXPECT_EQ(index.size(), 0u);
  EXPECT_TRUE(index.Entries().empty());
  EXPECT_EQ(index.Find("a"), std::nullopt);
}

}  // namespace
}  // namespace freshet
