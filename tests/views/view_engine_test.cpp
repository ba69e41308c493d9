// ViewEngine driven through its seam (views/engine_env.h): a scripted
// consumer stands in for Kafka, an in-memory store for Postgres and
// RocksDB, and a manual clock for time. What these tests show is the
// engine's own logic: every record applied once, offsets stored with the
// rows, a failed write rewound and applied again, a bad record
// dead-lettered, a restart resuming where the store says. Exactly-once
// against a real broker (transactions, fencing, read_committed) is the
// integration tests' job.
#include "views/view_engine.h"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>
#include <thread>

#include "views/declarative_projection.h"
#include "views/partition_rows.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;

// One topic's records, in memory. Thread-safe: the test appends while an
// engine reads.
struct ScriptedTopic {
  std::string name = "orders";
  int partitions = 2;
  std::mutex mu;
  std::map<int32_t, std::deque<std::string>> values;  // partition -> values by offset

  void Append(int32_t partition, std::string value) {
    std::lock_guard lock(mu);
    values[partition].push_back(std::move(value));
  }
  int64_t End(int32_t partition) {
    std::lock_guard lock(mu);
    return static_cast<int64_t>(values[partition].size());
  }
};

// A consumer that reads a ScriptedTopic: the group hands it every partition
// at its first poll, from where the engine's assign hook says.
class ScriptedConsumer final : public SourceConsumer {
 public:
  explicit ScriptedConsumer(ScriptedTopic& topic) : topic_(topic) {}

  Status Subscribe(const std::string&, AssignHook on_assign, RevokeHook on_revoke) override {
    on_assign_ = std::move(on_assign);
    on_revoke_ = std::move(on_revoke);
    return Status::Ok();
  }

  Result<Consumer::PollOutcome> Poll(std::chrono::milliseconds timeout, RawRecord* record,
                                     int32_t* eof_partition) override {
    if (!assigned_) {
      std::vector<TopicPartitionOffset> assignment;
      for (int32_t p = 0; p < topic_.partitions; ++p)
        assignment.push_back({topic_.name, p, kOffsetBeginning});
      if (Status st = on_assign_(assignment); !st.ok()) {
        assignment_failed_ = true;
        return st;
      }
      for (const auto& tp : assignment) (void)Seek(topic_.name, tp.partition, tp.offset);
      assigned_ = true;
      return Consumer::PollOutcome::kTimeout;
    }
    for (int i = 0; i < topic_.partitions; ++i) {
      int32_t p = (next_partition_ + i) % topic_.partitions;
      std::lock_guard lock(topic_.mu);
      auto& log = topic_.values[p];
      if (position_[p] >= static_cast<int64_t>(log.size())) continue;
      next_partition_ = p + 1;
      *record = RawRecord{};
      record->topic = topic_.name;
      record->partition = p;
      record->offset = position_[p];
      record->timestamp_ms = 1764000000000 + position_[p];
      record->value = log[static_cast<size_t>(position_[p])];  // deque: stable while appended to
      ++position_[p];
      at_end_reported_[p] = false;
      return Consumer::PollOutcome::kMessage;
    }
    for (int32_t p = 0; p < topic_.partitions; ++p)
      if (!at_end_reported_[p]) {
        at_end_reported_[p] = true;
        if (eof_partition) *eof_partition = p;
        return Consumer::PollOutcome::kPartitionEnd;
      }
    // Nothing to read: what a real consumer does for `timeout`, briefly.
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(timeout, 1ms));
    return Consumer::PollOutcome::kTimeout;
  }

  Status Seek(const std::string&, int32_t partition, int64_t offset) override {
    position_[partition] = offset < 0 ? 0 : offset;
    at_end_reported_[partition] = false;
    ++seeks;
    return Status::Ok();
  }
  Status CommitOffsets(const std::string&, const std::map<int32_t, int64_t>& next) override {
    for (const auto& [p, o] : next) committed_[p] = o;
    return Status::Ok();
  }
  Result<std::map<int32_t, int64_t>> CommittedOffsets(const std::string&, const std::vector<int32_t>&,
                                                      std::chrono::milliseconds) override {
    return committed_;
  }
  Result<std::pair<int64_t, int64_t>> QueryWatermarks(const std::string&, int32_t partition,
                                                      std::chrono::milliseconds) override {
    return std::make_pair(int64_t{0}, topic_.End(partition));
  }
  int64_t CachedHighWatermark(const std::string&, int32_t partition) override {
    return topic_.End(partition);
  }
  Result<int> PartitionCount(const std::string&, std::chrono::milliseconds) override {
    return topic_.partitions;
  }
  bool assignment_failed() const override { return assignment_failed_; }
  Status Close() override {
    if (assigned_ && on_revoke_) {
      std::vector<TopicPartitionOffset> all;
      for (int32_t p = 0; p < topic_.partitions; ++p) all.push_back({topic_.name, p, position_[p]});
      on_revoke_(all);
    }
    assigned_ = false;
    return Status::Ok();
  }

  int seeks = 0;

 private:
  ScriptedTopic& topic_;
  AssignHook on_assign_;
  RevokeHook on_revoke_;
  bool assigned_ = false;
  bool assignment_failed_ = false;
  int32_t next_partition_ = 0;
  std::map<int32_t, int64_t> position_;
  std::map<int32_t, bool> at_end_reported_;
  std::map<int32_t, int64_t> committed_;
};

class ScriptedEnv final : public EngineEnv {
 public:
  explicit ScriptedEnv(ScriptedTopic& topic) : topic_(topic) {}
  Result<std::unique_ptr<SourceConsumer>> NewConsumer(const KafkaClientOptions&,
                                                      const std::string&) override {
    return std::unique_ptr<SourceConsumer>(std::make_unique<ScriptedConsumer>(topic_));
  }
  const Clock& clock() const override { return clock_; }
  ManualClock clock_;

 private:
  ScriptedTopic& topic_;
};

// Rows and offsets in memory, committed together as a real store does: an
// offset advance from anything but the stored value fails the whole write.
// The state outlives the engine (which owns its store): a test looks at it
// afterwards, or hands it to the next engine.
struct StoreState {
  explicit StoreState(TableSpec t) : table(std::move(t)) {}
  TableSpec table;
  std::mutex mu;
  std::map<std::string, nlohmann::json> rows;
  std::map<int32_t, int64_t> offsets;
  int fail_next_writes = 0;
  int writes = 0;

  nlohmann::json Row(const std::string& key) {
    std::lock_guard lock(mu);
    auto it = rows.find(EncodeKey({key}));
    return it == rows.end() ? nlohmann::json() : it->second;
  }
  std::map<int32_t, int64_t> Offsets() {
    std::lock_guard lock(mu);
    return offsets;
  }
};

class MemoryViewStore final : public ViewStore {
 public:
  explicit MemoryViewStore(std::shared_ptr<StoreState> state) : s_(std::move(state)) {}
  const char* kind() const override { return "memory"; }
  std::string table_name() const override { return s_->table.view_name; }
  Result<std::map<int32_t, int64_t>> LoadOffsets() override { return s_->Offsets(); }
  Status Write(const std::vector<RowWrite>& rows, const std::vector<OffsetAdvance>& offsets,
               std::vector<RowChange>*) override {
    std::lock_guard lock(s_->mu);
    if (s_->fail_next_writes > 0) {
      --s_->fail_next_writes;
      return Status::Unavailable("the store is down (scripted)");
    }
    for (const auto& a : offsets) {
      auto it = s_->offsets.find(a.partition);
      if ((it == s_->offsets.end() ? -1 : it->second) != a.expected_next)
        return Status::Conflict("partition " + std::to_string(a.partition) + " moved on");
    }
    for (const RowWrite& row : rows) {
      std::string key = EncodeKey(row.key);
      if (row.deleted) {
        s_->rows.erase(key);
        continue;
      }
      nlohmann::json& stored = s_->rows[key];
      if (!stored.is_object()) stored = nlohmann::json::object();
      for (size_t i = 0; i < s_->table.value_columns.size() && i < row.values.size(); ++i) {
        const ColumnSpec& c = s_->table.value_columns[i];
        stored[c.name] =
            CombineColumn(c, stored.value(c.name, nlohmann::json()), TypedColumn(row.values[i], c.sql_type));
      }
    }
    for (const auto& a : offsets) s_->offsets[a.partition] = a.next_offset;
    ++s_->writes;
    return Status::Ok();
  }
  Result<std::vector<RowChange>> ReadRows(const std::string&, size_t) override {
    return std::vector<RowChange>{};
  }

 private:
  std::shared_ptr<StoreState> s_;
};

// Keeps what the engine dead-letters.
class MemoryDeadLetters final : public DeadLetterSink {
 public:
  Status Produce(const OutgoingMessage& message) override {
    std::lock_guard lock(mu_);
    sent_.push_back(message);
    return Status::Ok();
  }
  Status Flush(std::chrono::milliseconds) override { return Status::Ok(); }
  std::vector<OutgoingMessage> sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }

 private:
  std::mutex mu_;
  std::vector<OutgoingMessage> sent_;
};

ViewSpec UnitsPerSku() {
  auto specs = ParseViewSpecs(nlohmann::ordered_json::parse(R"([{"name": "units_per_sku", "kind": "aggregate",
      "source": {"topic": "orders", "format": "json", "envelope": "append"},
      "group_by": {"sku": "/sku"},
      "aggregates": {"units": {"fn": "sum", "from": "/qty", "type": "bigint"}, "orders": {"fn": "count"}}}])"),
                              "views.definitions");
  EXPECT_TRUE(specs.ok()) << specs.status().message();
  return (*specs)[0];
}

std::string Order(const std::string& sku, int qty) {
  return nlohmann::json{{"sku", sku}, {"qty", qty}}.dump();
}

class ViewEngineUnit : public ::testing::Test {
 protected:
  ViewEngineUnit()
      : env_(topic_),
        metrics_(registry_, "view=\"units_per_sku\",store=\"memory\""),
        state_(std::make_shared<StoreState>(DeclarativeProjection(UnitsPerSku()).table())) {}

  // Runs an engine over the store until `done` holds (or 20 s), then stops
  // it and returns what Run returned.
  Status RunUntil(const std::function<bool()>& done) {
    ViewSpec spec = UnitsPerSku();
    ViewEngineOptions options;
    options.env = &env_;
    options.topic = topic_.name;
    options.source = spec.source;
    options.group_id = "unit";
    options.flush_interval = 10ms;
    options.dead_letters = &dead_letters_;
    options.dead_letter_topic = "orders-dlq";
    ViewEngine engine(options, std::make_unique<DeclarativeProjection>(spec),
                      std::make_unique<MemoryViewStore>(state_), metrics_);
    std::atomic<bool> stop{false};
    Status result;
    std::thread runner([&] { result = engine.Run(stop); });
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    stop = true;
    runner.join();
    return result;
  }
  bool StoredUpTo(const std::map<int32_t, int64_t>& ends) { return state_->Offsets() == ends; }

  // Appends `n` orders alternating over the two partitions and adds them to
  // the expected totals.
  void Produce(int n) {
    for (int i = 0; i < n; ++i, ++produced_) {
      int32_t p = produced_ % 2;
      std::string sku = produced_ % 3 == 0 ? "a" : "b";
      expected_units_[sku] += produced_;
      ++expected_orders_[sku];
      topic_.Append(p, Order(sku, produced_));
    }
  }
  void ExpectTotals() {
    for (const auto& [sku, units] : expected_units_) {
      EXPECT_EQ(state_->Row(sku)["units"], units) << sku;
      EXPECT_EQ(state_->Row(sku)["orders"], expected_orders_[sku]) << sku;
    }
  }

  ScriptedTopic topic_;
  ScriptedEnv env_;
  MetricsRegistry registry_;
  ViewMetrics metrics_;
  MemoryDeadLetters dead_letters_;
  std::shared_ptr<StoreState> state_;
  int produced_ = 0;
  std::map<std::string, int64_t> expected_units_, expected_orders_;
};

TEST_F(ViewEngineUnit, AppliesEveryRecordOnceWithItsOffsetsInTheSameWrite) {
  Produce(200);
  Status run = RunUntil([&] { return StoredUpTo({{0, 100}, {1, 100}}); });
  ASSERT_TRUE(run.ok()) << run.message();
  EXPECT_EQ(state_->Offsets(), (std::map<int32_t, int64_t>{{0, 100}, {1, 100}}));
  ExpectTotals();
  EXPECT_EQ(metrics_.events.value(), 200);
  EXPECT_TRUE(dead_letters_.sent().empty());
}

TEST_F(ViewEngineUnit, AFailedWriteIsRewoundAndItsRecordsAppliedOnce) {
  Produce(100);
  state_->fail_next_writes = 2;
  Status run = RunUntil([&] { return StoredUpTo({{0, 50}, {1, 50}}); });
  ASSERT_TRUE(run.ok()) << run.message();
  ExpectTotals();
  EXPECT_EQ(metrics_.flush_failures.value(), 2);
}

TEST_F(ViewEngineUnit, ARestartResumesFromTheOffsetsStoredWithTheRows) {
  Produce(60);
  ASSERT_TRUE(RunUntil([&] { return StoredUpTo({{0, 30}, {1, 30}}); }).ok());
  Produce(40);
  ASSERT_TRUE(RunUntil([&] { return StoredUpTo({{0, 50}, {1, 50}}); }).ok());
  ExpectTotals();  // the first 60 were not applied twice
}

TEST_F(ViewEngineUnit, ABadRecordIsDeadLetteredWithWhereItWasAndTheRestApplied) {
  Produce(10);
  topic_.Append(0, "{not json");  // partition 0, offset 5
  Produce(10);                    // continues on partition 0 at offset 6
  Status run = RunUntil([&] { return StoredUpTo({{0, 11}, {1, 10}}); });
  ASSERT_TRUE(run.ok()) << run.message();
  ExpectTotals();
  auto sent = dead_letters_.sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].topic, "orders-dlq");
  EXPECT_EQ(sent[0].value, "{not json");
  std::map<std::string, std::string> headers;
  for (const auto& h : sent[0].headers) headers[h.name] = h.value;
  EXPECT_EQ(headers["freshet.view"], "units_per_sku");
  EXPECT_EQ(headers["freshet.source.partition"], "0");
  EXPECT_EQ(headers["freshet.source.offset"], "5");
  EXPECT_FALSE(headers["freshet.error"].empty());
}

TEST_F(ViewEngineUnit, MeasuresFreshnessOnTheEnvironmentsClock) {
  Produce(10);
  env_.clock_.Advance(std::chrono::hours(24));
  ASSERT_TRUE(RunUntil([&] { return StoredUpTo({{0, 5}, {1, 5}}); }).ok());
  // Events are stamped 1764000000000 + offset; the clock says a day later:
  // event-to-visible is measured on it (beyond the last bucket, 10 s), not
  // on the machine's.
  ASSERT_EQ(metrics_.visible_seconds.count(), 10u);
  EXPECT_EQ(metrics_.visible_seconds.BucketCounts().back(), 10u);
}

}  // namespace
}  // namespace freshet
