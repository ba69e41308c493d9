#include "sinks/rocksdb_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

extern char** environ;

namespace freshet {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed with everything in it afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "freshet-rocksdb-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern << " failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string Sub(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

std::unique_ptr<RocksDbStore> OpenOrDie(const std::string& path, RocksDbStore::Options options = {}) {
  auto store = RocksDbStore::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- Child processes ---------------------------------------------------------
//
// The crash and second-process tests need a child that is a new process, not
// a bare fork of this one: a fork inherits RocksDB's process-wide table of
// held LOCK files (so a second open would report "lock hold by current
// process" instead of meeting the real file lock) and Env thread pools whose
// threads do not exist in the child. So the child re-executes this binary with
// FRESHET_ROCKSDB_TEST_CHILD set; a GoogleTest environment does the child's
// work before any test runs and exits. (Not a hook before main: RocksDB is
// linked statically, and its own globals may not be initialized yet then.)
// The child reports to the parent on fd 3; its stdout carries GoogleTest's
// banner and goes to /dev/null.

constexpr char kChildModeVar[] = "FRESHET_ROCKSDB_TEST_CHILD";
constexpr char kChildDirVar[] = "FRESHET_ROCKSDB_TEST_DIR";
constexpr int kChildReportFd = 3;

constexpr char kCrashTable[] = "orders__v1";
constexpr char kCrashTopic[] = "orders";
constexpr int64_t kRowsPerBatch = 100;
constexpr int kBatchesBeforeReady = 20;

std::string RowKey(int64_t offset) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "row/%012lld", static_cast<long long>(offset));
  return buf;
}

void Report(const std::string& text) {
  if (write(kChildReportFd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) _exit(98);
}

// Writes batches of kRowsPerBatch rows, each with the offset just past them,
// until killed; after kBatchesBeforeReady batches it reports "r" so the
// parent knows the kill will land mid-stream.
int RunCrashWriter(const std::string& dir) {
  auto store = RocksDbStore::Open(dir, {});
  if (!store.ok()) return std::fprintf(stderr, "child: %s\n", store.status().ToString().c_str()), 2;
  if (Status s = (*store)->EnsureTable(kCrashTable); !s.ok())
    return std::fprintf(stderr, "child: %s\n", s.ToString().c_str()), 2;
  auto offsets = (*store)->LoadOffsets(kCrashTable, kCrashTopic);
  if (!offsets.ok()) return std::fprintf(stderr, "child: %s\n", offsets.status().ToString().c_str()), 2;
  int64_t next = offsets->count(0) ? offsets->at(0) : -1;
  const std::string payload(100, 'x');
  for (int batch = 0; batch < 1'000'000; ++batch) {
    const int64_t first = next < 0 ? 0 : next;
    std::vector<KvWrite> rows;
    for (int64_t o = first; o < first + kRowsPerBatch; ++o) rows.push_back({RowKey(o), payload});
    Status s = (*store)->Write(kCrashTable, kCrashTopic, rows, {{0, next, first + kRowsPerBatch}});
    if (!s.ok()) return std::fprintf(stderr, "child: %s\n", s.ToString().c_str()), 3;
    next = first + kRowsPerBatch;
    if (batch == kBatchesBeforeReady) Report("r");
  }
  return 4;  // never killed
}

// Opens a store that the parent holds open; exits 0 if that fails with
// kUnavailable, and reports the status either way.
int RunSecondOpen(const std::string& dir) {
  auto store = RocksDbStore::Open(dir, {});
  Report(store.ok() ? "opened" : store.status().ToString());
  return !store.ok() && store.status().code() == StatusCode::kUnavailable ? 0 : 1;
}

class ChildProcessHook : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* mode = std::getenv(kChildModeVar);
    const char* dir = std::getenv(kChildDirVar);
    if (mode == nullptr || dir == nullptr) return;  // the parent: run the tests
    int rc = 99;
    if (std::string(mode) == "crash-writer") rc = RunCrashWriter(dir);
    if (std::string(mode) == "second-open") rc = RunSecondOpen(dir);
    std::fflush(nullptr);
    _exit(rc);
  }
};

[[maybe_unused]] ::testing::Environment* const kChildProcessHook =
    ::testing::AddGlobalTestEnvironment(new ChildProcessHook);

struct Child {
  pid_t pid = -1;
  int report = -1;  // read end of the child's fd 3
};

Child SpawnChild(const std::string& mode, const std::string& dir) {
  // Everything the child needs is built before fork: between fork and exec
  // only async-signal-safe calls are allowed.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kChildModeVar) + "=" + mode);
  env_strings.push_back(std::string(kChildDirVar) + "=" + dir);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  // A filter that matches tests, so that GoogleTest sets up environments
  // (and whatever GTEST_FILTER the parent had does not apply).
  char arg0[] = "freshet_unit_tests";
  char arg1[] = "--gtest_filter=RocksDbStore.*";
  char* argv[] = {arg0, arg1, nullptr};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {};
  const int dev_null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_t pid = dev_null < 0 ? -1 : fork();
  if (pid == 0) {
    // dup2 clears O_CLOEXEC on the copy, except when the descriptor is already 3.
    if (fds[1] == kChildReportFd ? fcntl(fds[1], F_SETFD, 0) < 0 : dup2(fds[1], kChildReportFd) < 0)
      _exit(126);
    if (dup2(dev_null, STDOUT_FILENO) < 0) _exit(126);
    execve("/proc/self/exe", argv, envp.data());
    _exit(127);
  }
  close(fds[1]);
  if (dev_null >= 0) close(dev_null);
  if (pid < 0) {
    close(fds[0]);
    return {};
  }
  return {pid, fds[0]};
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// Waits until `done` holds; false after 30 s, so a broken reader fails the
// test instead of hanging it.
template <typename Predicate>
bool WaitFor(Predicate done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// --- Tests -------------------------------------------------------------------

TEST(RocksDbStore, RowsAndOffsetsCommitTogether) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureTable("stock__v1").ok());
  auto none = store->LoadOffsets("stock__v1", "inventory");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());

  Status s = store->Write("stock__v1", "inventory", {{"store-1/apple", "3"}, {"store-2/pear", "7"}},
                          {{0, -1, 10}, {3, -1, 42}});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(store->Get("stock__v1", "store-1/apple")->value_or("?"), "3");
  EXPECT_EQ(store->Get("stock__v1", "store-2/pear")->value_or("?"), "7");
  EXPECT_EQ(*store->LoadOffsets("stock__v1", "inventory"), (std::map<int32_t, int64_t>{{0, 10}, {3, 42}}));

  s = store->Write("stock__v1", "inventory", {{"store-1/apple", "2"}}, {{0, 10, 11}});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(store->Get("stock__v1", "store-1/apple")->value_or("?"), "2");
  EXPECT_EQ(*store->LoadOffsets("stock__v1", "inventory"), (std::map<int32_t, int64_t>{{0, 11}, {3, 42}}));
  // Another topic's offsets of the same table are separate.
  EXPECT_TRUE(store->LoadOffsets("stock__v1", "inventory2")->empty());
}

TEST(RocksDbStore, OffsetsOfSimilarNamesStayApart) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureTable("ab").ok());
  ASSERT_TRUE(store->EnsureTable("a").ok());
  ASSERT_TRUE(store->Write("ab", "c", {}, {{1, -1, 5}}).ok());
  ASSERT_TRUE(store->Write("a", "bc", {}, {{1, -1, 9}}).ok());
  ASSERT_TRUE(store->Write("a", "b", {}, {{-1, -1, 7}}).ok());  // a negative partition still round-trips
  EXPECT_EQ(*store->LoadOffsets("ab", "c"), (std::map<int32_t, int64_t>{{1, 5}}));
  EXPECT_EQ(*store->LoadOffsets("a", "bc"), (std::map<int32_t, int64_t>{{1, 9}}));
  EXPECT_EQ(*store->LoadOffsets("a", "b"), (std::map<int32_t, int64_t>{{-1, 7}}));
}

TEST(RocksDbStore, ConflictingExpectedOffsetWritesNothing) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureTable("stock__v1").ok());
  ASSERT_TRUE(store->Write("stock__v1", "inventory", {{"a", "1"}}, {{0, -1, 10}, {1, -1, 20}}).ok());

  // Partition 0 matches, partition 1 does not: neither moves, no row is written.
  Status s =
      store->Write("stock__v1", "inventory", {{"b", "2"}, {"a", std::nullopt}}, {{0, 10, 11}, {1, 15, 21}});
  EXPECT_EQ(s.code(), StatusCode::kConflict) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "stock__v1")) << s.message();
  EXPECT_TRUE(Contains(s.message(), "partition 1")) << s.message();
  EXPECT_TRUE(Contains(s.message(), "20")) << s.message();

  // "Nothing stored" while something is, is a conflict too.
  s = store->Write("stock__v1", "inventory", {{"b", "2"}}, {{0, -1, 11}});
  EXPECT_EQ(s.code(), StatusCode::kConflict) << s.ToString();
  // And so is expecting an offset where nothing is stored.
  s = store->Write("stock__v1", "inventory", {{"b", "2"}}, {{7, 3, 4}});
  EXPECT_EQ(s.code(), StatusCode::kConflict) << s.ToString();

  EXPECT_EQ(store->Get("stock__v1", "b")->value_or("absent"), "absent");
  EXPECT_EQ(store->Get("stock__v1", "a")->value_or("absent"), "1");
  EXPECT_EQ(*store->LoadOffsets("stock__v1", "inventory"), (std::map<int32_t, int64_t>{{0, 10}, {1, 20}}));
}

TEST(RocksDbStore, ReopenKeepsRowsOffsetsAndAliases) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.Sub("db"));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->EnsureTable("stock__v1").ok());
    ASSERT_TRUE(store->EnsureTable("stock__v2").ok());
    ASSERT_TRUE(store->Write("stock__v2", "inventory", {{"k", "v"}}, {{2, -1, 99}}).ok());
    ASSERT_TRUE(store->SetAlias("stock", "stock__v2").ok());
  }
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->Tables(), (std::vector<std::string>{"stock__v1", "stock__v2"}));
  EXPECT_EQ(store->ResolveAlias("stock").value(), "stock__v2");
  EXPECT_EQ(store->Get("stock__v2", "k")->value_or("?"), "v");
  EXPECT_EQ(*store->LoadOffsets("stock__v2", "inventory"), (std::map<int32_t, int64_t>{{2, 99}}));
  EXPECT_EQ(store->ResolveAlias("other").status().code(), StatusCode::kNotFound);
}

TEST(RocksDbStore, PrefixScanReturnsKeysInOrderWithinLimit) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureTable("t").ok());
  const std::string ff = "\xff";
  ASSERT_TRUE(store
                  ->Write("t", "",
                          {{"a/2", "2"},
                           {"a/10", "10"},
                           {"b/1", "b"},
                           {"a/1", "1"},
                           {"a", "bare"},
                           {"a0", "next"},
                           {ff + ff, "ff"},
                           {ff + "x", "fx"}},
                          {})
                  .ok());
  using Rows = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(*store->Scan("t", "a/", 10), (Rows{{"a/1", "1"}, {"a/10", "10"}, {"a/2", "2"}}));
  EXPECT_EQ(*store->Scan("t", "a/", 2), (Rows{{"a/1", "1"}, {"a/10", "10"}}));
  EXPECT_EQ(*store->Scan("t", "a", 10),
            (Rows{{"a", "bare"}, {"a/1", "1"}, {"a/10", "10"}, {"a/2", "2"}, {"a0", "next"}}));
  EXPECT_EQ(*store->Scan("t", ff, 10), (Rows{{ff + "x", "fx"}, {ff + ff, "ff"}}));
  EXPECT_EQ(store->Scan("t", "", 100)->size(), 8u);
  EXPECT_TRUE(store->Scan("t", "a/", 0)->empty());
  EXPECT_TRUE(store->Scan("t", "c", 10)->empty());
  EXPECT_EQ(store->Scan("missing", "a", 10).status().code(), StatusCode::kNotFound);
}

TEST(RocksDbStore, DeleteRemovesRow) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureTable("t").ok());
  ASSERT_TRUE(store->Write("t", "topic", {{"k/1", "a"}, {"k/2", "b"}}, {{0, -1, 2}}).ok());
  ASSERT_TRUE(store->Write("t", "topic", {{"k/1", std::nullopt}}, {{0, 2, 3}}).ok());
  auto got = store->Get("t", "k/1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_FALSE(got->has_value());
  EXPECT_EQ(store->Scan("t", "k/", 10)->size(), 1u);
  // Within one write, rows apply in order: put then delete leaves nothing.
  ASSERT_TRUE(store->Write("t", "topic", {{"k/3", "c"}, {"k/3", std::nullopt}}, {}).ok());
  EXPECT_FALSE(store->Get("t", "k/3")->has_value());
}

TEST(RocksDbStore, MissingTableIsNamed) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  auto got = store->Get("nope__v1", "k");
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(got.status().message(), "nope__v1")) << got.status().message();
  EXPECT_EQ(store->Write("nope__v1", "t", {{"k", "v"}}, {}).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->LoadOffsets("nope__v1", "t").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->SetAlias("nope", "nope__v1").code(), StatusCode::kNotFound);
}

TEST(RocksDbStore, ReservedAndMalformedNamesAreRefused) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->EnsureTable("default").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->EnsureTable("freshet.offsets").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->EnsureTable("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->EnsureTable(std::string("a\0b", 3)).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->EnsureTable("t").ok());
  EXPECT_EQ(store->Write("t", std::string("x\0y", 3), {}, {{0, -1, 1}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Write("t", "x", {}, {{0, -1, 1}, {0, -1, 2}}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store->Tables() == std::vector<std::string>{"t"});
}

TEST(RocksDbStore, DropTableRefusesTheLiveTableAndForgetsOffsets) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureTable("stock__v1").ok());
  ASSERT_TRUE(store->Write("stock__v1", "inventory", {{"k", "v"}}, {{0, -1, 5}}).ok());
  ASSERT_TRUE(store->SetAlias("stock", "stock__v1").ok());
  Status s = store->DropTable("stock__v1");
  EXPECT_EQ(s.code(), StatusCode::kConflict) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "view stock")) << s.message();

  ASSERT_TRUE(store->RemoveAlias("stock").ok());
  ASSERT_TRUE(store->DropTable("stock__v1").ok());
  EXPECT_TRUE(store->DropTable("stock__v1").ok());  // idempotent
  EXPECT_TRUE(store->Tables().empty());
  ASSERT_TRUE(store->EnsureTable("stock__v1").ok());
  EXPECT_FALSE(store->Get("stock__v1", "k")->has_value());
  EXPECT_TRUE(store->LoadOffsets("stock__v1", "inventory")->empty());
}

TEST(RocksDbStore, SwapAliasIsAtomicForReaders) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  constexpr size_t kOldRows = 200, kNewRows = 300;
  auto build = [&](const std::string& table, size_t rows, const std::string& tag) {
    ASSERT_TRUE(store->EnsureTable(table).ok());
    int64_t next = -1;
    for (size_t i = 0; i < rows; i += 10) {  // many small writes: a half-built table is visible for a while
      std::vector<KvWrite> batch;
      for (size_t j = i; j < i + 10; ++j) batch.push_back({"item/" + std::to_string(j), tag});
      ASSERT_TRUE(store->Write(table, "inventory", batch, {{0, next, static_cast<int64_t>(i + 10)}}).ok());
      next = static_cast<int64_t>(i + 10);
      std::this_thread::yield();
    }
  };
  build("stock__v1", kOldRows, "v1");
  ASSERT_TRUE(store->SetAlias("stock", "stock__v1").ok());

  std::atomic<bool> stop{false};
  std::atomic<int> seen_old{0}, seen_new{0}, dropped_under_us{0};
  std::vector<std::string> violations;  // only the reader touches it until join
  std::thread reader([&] {
    while (!stop.load()) {
      auto table = store->ResolveAlias("stock");
      if (!table.ok()) {
        violations.push_back(table.status().ToString());
        continue;
      }
      auto rows = store->Scan(*table, "item/", 10'000);
      if (!rows.ok() && rows.status().code() == StatusCode::kNotFound) {
        ++dropped_under_us;  // resolved the old table just before it was dropped: resolve again
        continue;
      }
      if (!rows.ok()) {
        violations.push_back(rows.status().ToString());
        continue;
      }
      const bool old_table = *table == "stock__v1";
      const std::string tag = old_table ? "v1" : "v2";
      size_t matching = 0;
      for (const auto& [k, v] : *rows) matching += v == tag;
      if (rows->size() != (old_table ? kOldRows : kNewRows) || matching != rows->size())
        violations.push_back(*table + ": " + std::to_string(rows->size()) + " rows, " +
                             std::to_string(matching) + " tagged " + tag);
      ++(old_table ? seen_old : seen_new);
    }
  });

  // Assertions that fail here must still stop and join the reader.
  auto swap = [&] {
    ASSERT_TRUE(WaitFor([&] { return seen_old.load() >= 5; }));
    build("stock__v2", kNewRows, "v2");
    ASSERT_TRUE(store->SetAlias("stock", "stock__v2").ok());
    ASSERT_TRUE(store->DropTable("stock__v1").ok());
    const int new_before = seen_new.load();
    ASSERT_TRUE(WaitFor([&] { return seen_new.load() >= new_before + 5; }));
  };
  swap();
  stop = true;
  reader.join();

  EXPECT_TRUE(violations.empty()) << violations.size() << " violations, first: " << violations.front();
  EXPECT_GE(seen_old.load(), 5);
  EXPECT_GE(seen_new.load(), 5);
  EXPECT_EQ(store->Tables(), std::vector<std::string>{"stock__v2"});
}

TEST(RocksDbStore, SecondOpenOfSamePathFailsClearly) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  auto store = OpenOrDie(path);
  ASSERT_TRUE(store);

  // In this process.
  auto again = RocksDbStore::Open(path, {});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(again.status().message(), path + "/LOCK")) << again.status().message();

  // In another process, which meets the file lock itself.
  Child child = SpawnChild("second-open", path);
  ASSERT_GT(child.pid, 0);
  const std::string out = ReadAll(child.report);
  close(child.report);
  int status = 0;
  ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status) << ": " << out;
  EXPECT_TRUE(Contains(out, "unavailable")) << out;
  EXPECT_TRUE(Contains(out, path + "/LOCK")) << out;

  // Closing releases the lock.
  store.reset();
  EXPECT_TRUE(OpenOrDie(path) != nullptr);
}

TEST(RocksDbStore, CheckpointOpensReadOnlyWithOffsets) {
  TempDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureTable("stock__v1").ok());
  ASSERT_TRUE(store->Write("stock__v1", "inventory", {{"apple", "3"}}, {{1, -1, 10}}).ok());
  ASSERT_TRUE(store->SetAlias("stock", "stock__v1").ok());
  Status s = store->Checkpoint(dir.Sub("cp"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  // Written after the checkpoint: must not be in it.
  ASSERT_TRUE(store->Write("stock__v1", "inventory", {{"pear", "1"}}, {{1, 10, 11}}).ok());
  EXPECT_EQ(store->Checkpoint(dir.Sub("cp")).code(), StatusCode::kInvalidArgument);  // exists already

  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.Sub("cp"), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status rs =
      rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir.Sub("cp"), families, &handles, &raw);
  ASSERT_TRUE(rs.ok()) << rs.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  std::map<std::string, RocksDbStore::ColumnFamily> cf;
  for (size_t i = 0; i < names.size(); ++i)
    cf.emplace(names[i], RocksDbStore::ColumnFamily(handles[i], {raw}));
  ASSERT_TRUE(cf.count("stock__v1") && cf.count("freshet.offsets"));

  std::string value;
  ASSERT_TRUE(db->Get({}, cf["stock__v1"].get(), "apple", &value).ok());
  EXPECT_EQ(value, "3");
  EXPECT_TRUE(db->Get({}, cf["stock__v1"].get(), "pear", &value).IsNotFound());
  // The documented offsets encoding: table \0 topic \0 partition (BE32) -> next offset (BE64).
  ASSERT_TRUE(
      db->Get({}, cf["freshet.offsets"].get(), std::string("stock__v1\0inventory\0\0\0\0\x01", 24), &value)
          .ok());
  EXPECT_EQ(value, std::string("\0\0\0\0\0\0\0\x0a", 8));
  cf.clear();
  db.reset();

  // The copy is a store of its own, too.
  auto copy = OpenOrDie(dir.Sub("cp"));
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->ResolveAlias("stock").value(), "stock__v1");
  EXPECT_EQ(*copy->LoadOffsets("stock__v1", "inventory"), (std::map<int32_t, int64_t>{{1, 10}}));
}

// A writer killed at an arbitrary point leaves rows that match its stored
// offset exactly: every batch up to the offset, nothing beyond. Five rounds,
// each resuming from the offset the previous one left.
TEST(RocksDbStore, KilledWriterLeavesRowsMatchingTheStoredOffset) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  std::mt19937 random(20261124);
  int64_t previous_next = 0;
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Child child = SpawnChild("crash-writer", path);
    ASSERT_GT(child.pid, 0);
    char ready = 0;
    const ssize_t n = read(child.report, &ready, 1);
    if (n == 1) {
      std::this_thread::sleep_for(std::chrono::microseconds(random() % 20'000));
      kill(child.pid, SIGKILL);
    }
    close(child.report);
    int status = 0;
    ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << DescribeWaitStatus(status);

    auto store = OpenOrDie(path);
    ASSERT_TRUE(store);
    auto offsets = store->LoadOffsets(kCrashTable, kCrashTopic);
    ASSERT_TRUE(offsets.ok()) << offsets.status().ToString();
    ASSERT_EQ(offsets->count(0), 1u);
    const int64_t next = offsets->at(0);
    EXPECT_EQ(next % kRowsPerBatch, 0);
    EXPECT_GE(next, previous_next + (kBatchesBeforeReady + 1) * kRowsPerBatch);
    auto rows = store->Scan(kCrashTable, "", 100'000'000);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    ASSERT_EQ(static_cast<int64_t>(rows->size()), next);
    for (int64_t o = 0; o < next; ++o) ASSERT_EQ((*rows)[static_cast<size_t>(o)].first, RowKey(o));
    previous_next = next;
  }
}

}  // namespace
}  // namespace freshet
