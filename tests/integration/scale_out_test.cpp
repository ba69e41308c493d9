// Three view processes share a RocksDB view over 12 partitions
// (views.advertise_url set): every process answers every read, and the
// answer is the whole view, never its own share. The aggregate is grouped
// by sku while the topic is partitioned by store, so every group has shares
// in several processes. One process is SIGKILLed while events flow; every
// read in between is checked against the log at the offsets it reports:
// only right answers, 503s, or waits. A feed client on one process follows
// the whole view across the kill: every change once, and at every progress
// message exactly the view the log gives at its offsets.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"
#include "tests/support/ws_client.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;

constexpr int kPartitions = 12;
constexpr int kProcesses = 3;

using SkuTotals = std::map<std::string, std::pair<int64_t, int64_t>>;  // sku -> (sum of deltas, events)

// One committed event of the log, decoded once.
struct LoggedDelta {
  int32_t partition;
  int64_t offset;
  std::string sku;
  int64_t delta;
};

std::vector<LoggedDelta> DecodeLog(const std::vector<ReadRecord>& log) {
  std::vector<LoggedDelta> out;
  for (const ReadRecord& r : log) {
    auto event = DecodeEventValue(r.value);
    if (!event.ok()) continue;
    out.push_back(
        {r.partition, r.offset, event->data["sku"].get<std::string>(), event->data["delta"].get<int64_t>()});
  }
  return out;
}

// The view as the log says it is once each partition is read up to
// (excluding) `next`: what a read reporting those offsets must hold.
SkuTotals TotalsAt(const std::vector<LoggedDelta>& log, const std::map<int32_t, int64_t>& next) {
  SkuTotals totals;
  for (const LoggedDelta& d : log) {
    auto it = next.find(d.partition);
    if (it == next.end() || d.offset >= it->second) continue;
    auto& t = totals[d.sku];
    t.first += d.delta;
    t.second += 1;
  }
  return totals;
}

struct Read {
  int status = 0;
  SkuTotals rows;
  std::map<int32_t, int64_t> next;
  size_t partitions_served = 0;  // over all the processes that answered
  std::string body;
};

Read ReadAllRows(HttpClient& client, const std::string& target = "/views/per_sku/rows?prefix=&limit=1000") {
  Read out;
  auto r = client.Get(target);
  if (!r.ok()) return out;  // the process is gone: no answer at all
  out.status = r->status;
  out.body = r->body;
  if (r->status != 200) return out;
  auto json = nlohmann::json::parse(r->body);
  for (const auto& row : json["rows"])
    out.rows[row["key"][0].get<std::string>()] = {row["value"]["total"].get<int64_t>(),
                                                  row["value"]["events"].get<int64_t>()};
  for (const auto& [p, next] : json["next_offsets"].items()) out.next[std::stoi(p)] = next.get<int64_t>();
  for (const auto& [url, partitions] : json["served_by"].items()) out.partitions_served += partitions.size();
  return out;
}

// A feed client that keeps reading on a thread of its own. It keeps the rows
// it holds after every snapshot and progress message, with the offsets that
// message gave: each must be the log's view at those offsets.
class FeedFollower {
 public:
  using State = std::pair<std::map<int32_t, int64_t>, SkuTotals>;
  explicit FeedFollower(uint16_t port) {
    client_ = WsClient::Connect(port, "/views/per_sku/feed");
    if (client_) thread_ = std::thread([this] { Run(); });
  }
  ~FeedFollower() { Stop(); }
  bool connected() const { return client_ != nullptr; }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<State> states() {
    std::lock_guard lock(mu_);
    return states_;
  }
  SkuTotals rows() {
    std::lock_guard lock(mu_);
    return rows_;
  }
  std::map<int32_t, int64_t> offsets() {
    std::lock_guard lock(mu_);
    return offsets_;
  }
  // Problems seen so far (each a sentence), and counts.
  std::vector<std::string> problems() {
    std::lock_guard lock(mu_);
    return problems_;
  }
  int changes() {
    std::lock_guard lock(mu_);
    return changes_;
  }
  int resets() {
    std::lock_guard lock(mu_);
    return resets_;
  }

 private:
  void Run() {
    while (!stop_) {
      auto message = client_->Next(100ms);
      if (!message) {
        if (client_->closed()) {
          std::lock_guard lock(mu_);
          problems_.push_back("the feed closed (code " + std::to_string(client_->close_code()) + ")");
          return;
        }
        continue;
      }
      std::lock_guard lock(mu_);
      Take(*message);
    }
  }

  void Take(const nlohmann::json& m) {
    const std::string type = m.value("type", "");
    if (type == "snapshot") {
      if (!in_snapshot_) rows_.clear();
      in_snapshot_ = true;
      for (const auto& r : m["rows"]) SetRow(r["key"][0].get<std::string>(), r["row"]);
      if (m.value("done", false)) {
        in_snapshot_ = false;
        offsets_.clear();
        for (const auto& [p, next] : m["offsets"].items()) offsets_[std::stoi(p)] = next.get<int64_t>();
        delivered_.clear();
        Check("snapshot");
      }
    } else if (type == "change") {
      int32_t p = m["partition"].get<int32_t>();
      int64_t offset = m["offset"].get<int64_t>();
      if (!delivered_.insert({p, offset}).second)
        problems_.push_back("offset " + std::to_string(offset) + " of partition " + std::to_string(p) +
                            " came twice");
      if (offsets_.count(p) && offset < offsets_[p])
        problems_.push_back("offset " + std::to_string(offset) + " of partition " + std::to_string(p) +
                            " is behind the feed's own offsets (" + std::to_string(offsets_[p]) + ")");
      offsets_[p] = offset + 1;
      if (m["row"].is_null())
        rows_.erase(m["key"][0].get<std::string>());
      else
        SetRow(m["key"][0].get<std::string>(), m["row"]);
      ++changes_;
    } else if (type == "progress") {
      for (const auto& [p, next] : m["offsets"].items()) {
        int64_t n = next.get<int64_t>();
        if (n < offsets_[std::stoi(p)]) problems_.push_back("progress went back on partition " + p);
        offsets_[std::stoi(p)] = n;
      }
      Check("progress");
    } else if (type == "reset") {
      ++resets_;
    } else if (type != "hello" && type != "resume") {
      problems_.push_back("unexpected message " + m.dump());
    }
  }

  void SetRow(const std::string& sku, const nlohmann::json& row) {
    rows_[sku] = {row["total"].get<int64_t>(), row["events"].get<int64_t>()};
  }

  void Check(const char* what) {
    for (int32_t p = 0; p < kPartitions; ++p)
      if (!offsets_.count(p)) {
        problems_.push_back(std::string(what) + " without partition " + std::to_string(p));
        return;
      }
    states_.push_back({offsets_, rows_});
  }

  std::unique_ptr<WsClient> client_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  SkuTotals rows_;
  std::map<int32_t, int64_t> offsets_;
  std::set<std::pair<int32_t, int64_t>> delivered_;
  std::vector<std::string> problems_;
  std::vector<State> states_;
  bool in_snapshot_ = false;
  int changes_ = 0, resets_ = 0;
};

class ScaleOut : public IntegrationFixture {
 protected:
  ScaleOut() : IntegrationFixture("scale-out") {}

  void SetUp() override {
    ASSERT_TRUE(CreateTopicAndDatabase(kPartitions));
    config_ = WriteViewsConfig(R"([
        {"name": "per_sku", "kind": "aggregate", "stores": ["rocksdb"], "group_by": {"sku": "/sku"},
         "aggregates": {"total": {"fn": "sum", "from": "/delta", "type": "bigint"}, "events": {"fn": "count"}},
         "freshness": {"flush_interval_ms": 20}}])");
    owners_ = UniqueName("scale-owners");
    for (int i = 0; i < kProcesses; ++i) ports_.push_back(FreePort());
  }

  std::unique_ptr<FreshetProcess> StartProcess(int i) {
    std::map<std::string, std::string> env = env_;
    env["FRESHET_VIEWS_OWNERS_TOPIC"] = owners_;
    env["FRESHET_VIEWS_LISTEN"] = Loopback(ports_[i]);
    env["FRESHET_VIEWS_ADVERTISE_URL"] = "http://" + Loopback(ports_[i]);
    env["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile("-" + std::to_string(i) + ".rocksdb");
    env["FRESHET_VIEWS_SESSION_TIMEOUT_MS"] = "3000";
    env["FRESHET_LOG_LEVEL"] = "info";
    return std::make_unique<FreshetProcess>(std::vector<std::string>{"views", "--config", config_}, env,
                                            "scale-out-" + std::to_string(i));
  }

  std::string config_, owners_;
  std::vector<int> ports_;
};

TEST_F(ScaleOut, EveryProcessAnswersWholeViewsAndASigkillNeverYieldsAWrongRead) {
  auto started = std::chrono::steady_clock::now();
  auto phase = [&](const char* what) {
    std::cout << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                       started)
                     .count()
              << " ms: " << what << std::endl;
  };
  DeltaStream first = ProduceDeltaStream(topic_, kPartitions, 20000, 500, 11);
  phase("produced the first half");
  std::vector<std::unique_ptr<FreshetProcess>> processes;
  for (int i = 0; i < kProcesses; ++i) processes.push_back(StartProcess(i));
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < kProcesses; ++i)
    clients.push_back(std::make_unique<HttpClient>("127.0.0.1", static_cast<uint16_t>(ports_[i]), 10s));

  // Every process gives the whole view: each sku's total over all stores.
  std::vector<LoggedDelta> log = DecodeLog(ReadAll(topic_, kPartitions));
  std::map<int32_t, int64_t> ends;
  for (int32_t p = 0; p < kPartitions; ++p)
    ends[p] = first.last_offset.count(p) ? first.last_offset[p] + 1 : 0;
  SkuTotals expected = TotalsAt(log, ends);
  ASSERT_EQ(expected.size(), 60u);
  // Once the group has settled, the partitions are spread over all three.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = clients[0]->Get("/views/per_sku/rows?prefix=&limit=1");
        return r.ok() && r->status == 200 &&
               nlohmann::json::parse(r->body)["served_by"].size() == static_cast<size_t>(kProcesses);
      },
      90s, 50ms))
      << clients[0]->Get("/views/per_sku/rows?prefix=&limit=1")->body << "\n"
      << processes[2]->Log();
  for (int i = 0; i < kProcesses; ++i) {
    ASSERT_TRUE(WaitUntil([&] { return ReadAllRows(*clients[i]).rows == expected; }, 90s, 50ms))
        << "process " << i << ": " << ReadAllRows(*clients[i]).body << "\n"
        << processes[i]->Log();
  }
  phase("every process answers the whole view");
  // A feed of the whole view on process 0, through the kill below.
  FeedFollower feed(static_cast<uint16_t>(ports_[0]));
  ASSERT_TRUE(feed.connected());
  ASSERT_TRUE(WaitUntil([&] { return feed.rows() == expected; }, 30s, 20ms))
      << feed.rows().size() << " rows; problems: " << (feed.problems().empty() ? "" : feed.problems()[0]);
  // Point reads and limited prefix reads, on every process.
  for (int i = 0; i < kProcesses; ++i) {
    for (const auto& [sku, totals] : expected) {
      auto r = clients[i]->Get("/views/per_sku/rows?key=" + sku);
      ASSERT_TRUE(r.ok());
      ASSERT_EQ(r->status, 200) << r->body;
      auto rows = nlohmann::json::parse(r->body)["rows"];
      ASSERT_EQ(rows.size(), 1u) << r->body;
      EXPECT_EQ(rows[0]["value"]["total"].get<int64_t>(), totals.first) << sku << " on process " << i;
      EXPECT_EQ(rows[0]["value"]["events"].get<int64_t>(), totals.second) << sku << " on process " << i;
    }
    auto limited =
        nlohmann::json::parse(clients[i]->Get("/views/per_sku/rows?prefix=sku-1&limit=5")->body)["rows"];
    ASSERT_EQ(limited.size(), 5u);
    auto it = expected.lower_bound("sku-1");
    for (const auto& row : limited) {
      EXPECT_EQ(row["key"][0].get<std::string>(), it->first);
      EXPECT_EQ(row["value"]["total"].get<int64_t>(), it->second.first);
      ++it;
    }
    auto missing = clients[i]->Get("/views/per_sku/rows?key=no-such-sku");
    ASSERT_EQ(missing->status, 200);
    EXPECT_TRUE(nlohmann::json::parse(missing->body)["rows"].empty());
  }

  // Events flow while process 2 is SIGKILLed; the survivors keep being read.
  std::atomic<bool> producing{true};
  DeltaStream second;
  std::thread producer([&] {
    second = ProduceDeltaStream(topic_, kPartitions, 20000, 100, 12);
    producing = false;
  });
  std::vector<Read> during;
  auto read_survivors = [&] {
    for (int i = 0; i < 2; ++i) during.push_back(ReadAllRows(*clients[i]));
  };
  for (int k = 0; k < 20; ++k) read_survivors();
  processes[2]->Signal(SIGKILL);
  EXPECT_EQ(processes[2]->Wait(10s), 128 + SIGKILL);
  auto killed_at = std::chrono::steady_clock::now();
  phase("killed process 2");
  while (producing || std::chrono::steady_clock::now() - killed_at < 8s) read_survivors();
  producer.join();
  phase("produced the second half");

  // After the rebalance the survivors serve everything, exactly.
  log = DecodeLog(ReadAll(topic_, kPartitions));
  for (int32_t p = 0; p < kPartitions; ++p) {
    int64_t last = std::max(first.last_offset.count(p) ? first.last_offset[p] : -1,
                            second.last_offset.count(p) ? second.last_offset[p] : -1);
    ends[p] = last + 1;
  }
  expected = TotalsAt(log, ends);
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(WaitUntil([&] { return ReadAllRows(*clients[i]).rows == expected; }, 90s, 50ms))
        << "process " << i << ": " << ReadAllRows(*clients[i]).body << "\n"
        << processes[i]->Log();
  phase("the survivors answer the whole view");
  // The feed followed every change of every partition, each once.
  auto feed_reached_ends = [&] {
    auto offsets = feed.offsets();
    for (const auto& [p, end] : ends)
      if (offsets[p] < end) return false;
    return true;
  };
  ASSERT_TRUE(WaitUntil([&] { return feed.rows() == expected && feed_reached_ends(); }, 30s, 20ms))
      << feed.rows().size() << " rows, " << feed.changes() << " changes";
  feed.Stop();
  for (const std::string& problem : feed.problems()) ADD_FAILURE() << "feed: " << problem;
  EXPECT_EQ(feed.resets(), 0) << "a moved partition's new owner should resume where the feed was";
  auto states = feed.states();
  for (const auto& [offsets, rows] : states)
    ASSERT_EQ(rows, TotalsAt(log, offsets)) << "feed state at some offsets";
  std::cout << "feed on process 0: " << feed.changes() << " changes, " << states.size()
            << " states checked against the log\n";
  EXPECT_GT(feed.changes(), 0);
  auto after =
      nlohmann::json::parse(clients[0]->Get("/views/per_sku/rows?prefix=&limit=1")->body)["served_by"];
  EXPECT_EQ(after.size(), 2u) << after.dump();

  // Every read in between: right at the offsets it reports, or a 503.
  int right = 0, unavailable = 0;
  std::map<std::string, int> reasons;
  for (const Read& r : during) {
    if (r.status == 503) {
      ++unavailable;
      auto why = nlohmann::json::parse(r.body, nullptr, false);
      std::string reason = why.is_object() ? why.value("error", r.body) : r.body;
      // Partition numbers and URLs vary; the kind of reason is what counts.
      reasons[reason.substr(0, 60)]++;
      continue;
    }
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.partitions_served, static_cast<size_t>(kPartitions))
        << "a read must cover every partition: " << r.body;
    std::map<int32_t, int64_t> at;
    for (const auto& [p, next] : r.next) at[p] = std::max<int64_t>(next, 0);
    ASSERT_EQ(r.rows, TotalsAt(log, at)) << r.body;
    ++right;
  }
  std::cout << during.size() << " reads during the kill: " << right << " right, " << unavailable << " 503\n";
  for (const auto& [reason, count] : reasons) std::cout << "  503 x" << count << ": " << reason << "\n";
  EXPECT_GT(right, 0);
  RecordProperty("reads_right", right);
  RecordProperty("reads_503", unavailable);

  for (int i = 0; i < 2; ++i) {
    processes[i]->Signal(SIGTERM);
    EXPECT_EQ(processes[i]->Wait(30s), 0) << processes[i]->Log();
  }
}

}  // namespace
}  // namespace freshet
