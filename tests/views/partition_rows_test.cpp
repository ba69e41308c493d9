#include "views/partition_rows.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "views/rocksdb_view_store.h"

namespace freshet {
namespace {

namespace fs = std::filesystem;

TableSpec SalesTable() {
  TableSpec t;
  t.view_name = "sales";
  t.version = "1";
  t.key_columns = {{"hour", "text", Merge::kReplace}};
  t.value_columns = {{"region", "text", Merge::kReplace},
                     {"total", "bigint", Merge::kAdd},
                     {"smallest", "bigint", Merge::kMin},
                     {"largest", "double precision", Merge::kMax}};
  return t;
}

TEST(PartitionShares, KeysSortEveryShareOfARowTogetherBeforeLongerKeys) {
  std::vector<std::string> keys = {ShareKey("a\x1f"
                                            "b",
                                            0),
                                   ShareKey("a", 7), ShareKey("ab", 0), ShareKey("a", 300)};
  std::sort(keys.begin(), keys.end());
  std::string_view key;
  int32_t partition = -1;
  ASSERT_TRUE(SplitShareKey(keys[0], &key, &partition));
  EXPECT_EQ(key, "a");
  EXPECT_EQ(partition, 7);
  ASSERT_TRUE(SplitShareKey(keys[1], &key, &partition));
  EXPECT_EQ(partition, 300);
  ASSERT_TRUE(SplitShareKey(keys[2], &key, &partition));
  EXPECT_EQ(key,
            "a\x1f"
            "b");
  ASSERT_TRUE(SplitShareKey(keys[3], &key, &partition));
  EXPECT_EQ(key, "ab");
  EXPECT_EQ(SharesOf("a"), std::string("a\0", 2));
  EXPECT_FALSE(SplitShareKey("abc", &key, &partition));
}

TEST(PartitionShares, MergeCombinesSharesByColumnAndAppliesTheLimitToRows) {
  TableSpec t = SalesTable();
  std::vector<RowShare> shares = {
      {"10:00", 3, {{"region", "north"}, {"total", 5}, {"smallest", 2}, {"largest", 9.5}}},
      {"11:00", 0, {{"region", "south"}, {"total", 1}, {"smallest", 1}, {"largest", 1.0}}},
      {"10:00", 1, {{"region", "east"}, {"total", 7}, {"smallest", 4}, {"largest", 3.0}}},
      {"12:00", 2, {{"region", "west"}, {"total", 1}, {"smallest", 1}, {"largest", 1.0}}},
  };
  auto rows = MergeShares(t, shares, 2);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].first, "10:00");
  EXPECT_EQ(rows[0].second["total"], 12);
  EXPECT_EQ(rows[0].second["smallest"], 2);
  EXPECT_EQ(rows[0].second["largest"], 9.5);
  EXPECT_EQ(rows[0].second["region"], "north") << "replaced columns come from the highest partition";
  EXPECT_EQ(rows[1].first, "11:00");
  EXPECT_EQ(rows[1].second["total"], 1);
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "freshet-shares-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern << " failed";
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

RowWrite Delta(const std::string& hour, int32_t partition, int64_t total) {
  RowWrite w;
  w.key = {hour};
  w.values = {std::string("r"), std::to_string(total), std::to_string(total), std::to_string(total)};
  w.partition = partition;
  w.offset = 1;
  return w;
}

// The engine hands over one run of rows per partition, so one write can
// hold the same share twice, and a row's shares from several partitions.
TEST(PartitionShares, RocksDbStoreKeepsSharesApartAndReadsWholeRows) {
  TempDir dir;
  auto db = RocksDbStore::Open(dir.path() + "/db", {});
  ASSERT_TRUE(db.ok()) << db.status().message();
  auto store = RocksDbViewStore::Open(**db, "orders", SalesTable());
  ASSERT_TRUE(store.ok()) << store.status().message();
  std::vector<RowChange> changes;
  ASSERT_TRUE(
      (*store)
          ->Write({Delta("10:00", 0, 5), Delta("10:00", 1, 7), Delta("10:00", 0, 2), Delta("11:00", 2, 1)},
                  {{0, -1, 3}, {1, -1, 1}, {2, -1, 1}}, &changes)
          .ok());
  ASSERT_EQ(changes.size(), 4u);
  for (const RowChange& c : changes) {
    if (c.key[0] == "10:00") {
      EXPECT_EQ(c.row["total"], 14) << "a feed gets the whole row";
    }
  }

  auto shares = RocksDbViewStore::ReadShares(**db, (*store)->table_name(), "10:00", {0}, 10);
  ASSERT_TRUE(shares.ok());
  ASSERT_EQ(shares->size(), 1u);
  EXPECT_EQ((*shares)[0].partition, 0);
  EXPECT_EQ((*shares)[0].value["total"], 7);
  EXPECT_EQ((*shares)[0].value["smallest"], 2);

  auto rows = (*store)->ReadRows("", 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].row["total"], 14);
  EXPECT_EQ((*rows)[0].row["hour"], "10:00");
  EXPECT_EQ((*rows)[1].row["total"], 1);

  // A limit counts rows, not shares.
  auto first = RocksDbViewStore::ReadShares(**db, (*store)->table_name(), "", {}, 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 2u);
  EXPECT_TRUE((*store)->table_name().find("p") != std::string::npos) << (*store)->table_name();
}

}  // namespace
}  // namespace freshet
