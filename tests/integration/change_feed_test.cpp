// The WebSocket change feed of the real `freshet views` process, with a
// Beast client: a snapshot and then changes reproduce the rows in RocksDB
// and in Postgres; a client that loses its connection resumes with no gap
// and no duplicate; a client that does not read is coalesced (or reset to a
// snapshot) while the server's memory stays bounded; bad requests get clear
// refusals and do not disturb other clients.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
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

constexpr int kPartitions = 3;
constexpr const char* kToken = "s3cret-token";

const char* kDefinitions = R"([
  {"name": "stock", "kind": "aggregate", "stores": ["postgres", "rocksdb"],
   "group_by": {"store": "/store", "sku": "/sku"},
   "aggregates": {"on_hand": {"fn": "sum", "from": "/delta", "type": "bigint"}}},
  {"name": "seen", "kind": "latest", "stores": ["rocksdb"],
   "key": {"eid": "/eid"}, "columns": {"delta": {"from": "/delta", "type": "bigint"}}}
])";

using Rows = std::map<std::string, nlohmann::json>;  // "a/b" -> row

std::string KeyText(const nlohmann::json& key) {
  std::string out;
  for (const auto& part : key) out += (out.empty() ? "" : "/") + part.get<std::string>();
  return out;
}

// A client's picture of a view, built only from feed messages.
struct FeedState {
  Rows rows;
  std::map<int32_t, int64_t> next;                   // resume point
  std::vector<std::pair<int32_t, int64_t>> changes;  // (partition, offset) of every change, in arrival order
  int snapshots = 0, resets = 0, resumes = 0, progress = 0, batches = 0;
  bool snapshot_done = false;
  bool in_snapshot = false;

  void Apply(const nlohmann::json& m) {
    std::string type = m["type"];
    if (type == "snapshot") {
      if (!in_snapshot) rows.clear();  // a snapshot replaces everything
      in_snapshot = true;
      for (const auto& r : m["rows"]) rows[KeyText(r["key"])] = r["row"];
      snapshot_done = m["done"].get<bool>();
      if (snapshot_done) {
        in_snapshot = false;
        ++snapshots;
        for (auto& [p, o] : m["offsets"].items()) next[std::stoi(p)] = o.get<int64_t>();
      }
    } else if (type == "change") {
      ApplyChange(m);
    } else if (type == "changes") {
      ++batches;
      for (const auto& c : m["changes"]) ApplyChange(c);
    } else if (type == "progress") {
      ++progress;
      for (auto& [p, o] : m["offsets"].items())
        next[std::stoi(p)] = std::max(next[std::stoi(p)], o.get<int64_t>());
    } else if (type == "reset") {
      ++resets;
      snapshot_done = false;
    } else if (type == "resume") {
      ++resumes;
    }
  }
  void ApplyChange(const nlohmann::json& c) {
    std::string key = KeyText(c["key"]);
    if (c["op"] == "delete")
      rows.erase(key);
    else
      rows[key] = c["row"];
    int32_t p = c["partition"];
    int64_t o = c["offset"];
    changes.push_back({p, o});
    next[p] = std::max(next[p], o + 1);
  }
  std::string FromParam() const {
    std::string out;
    for (const auto& [p, o] : next)
      out += (out.empty() ? "" : ",") + std::to_string(p) + ":" + std::to_string(o);
    return out;
  }
  bool Reached(const std::map<int32_t, int64_t>& last_offset) const {
    for (const auto& [p, last] : last_offset) {
      auto it = next.find(p);
      if (it == next.end() || it->second <= last) return false;
    }
    return true;
  }
};

long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class ChangeFeedTest : public IntegrationFixture {
 protected:
  ChangeFeedTest() : IntegrationFixture("feed") {}

  void SetUp() override {
    ASSERT_TRUE(CreateTopicAndDatabase(kPartitions));
    config_path_ = WriteViewsConfig(kDefinitions);
    env_["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile(".rocksdb");
    env_["FRESHET_VIEWS_FLUSH_INTERVAL_MS"] = "20";
    env_["FRESHET_VIEWS_FEED_TOKEN"] = kToken;
    producer_ = std::move(TransactionalProducer::Create(KafkaOptions(), UniqueName("feed-producer")).value());
    ASSERT_TRUE(producer_->InitTransactions(30s).ok());
  }

  // `events` stock changes over stores s0..s<stores-1> x skus k0..k<skus-1>,
  // in transactions of 500; updates the reference and the last offsets.
  void Produce(int events, int stores = 5, int skus = 20) {
    std::mt19937 rng(static_cast<unsigned>(events + produced_));
    for (int start = 0; start < events; start += 500) {
      int n = std::min(500, events - start);
      std::vector<DeliveryReport> reports(n);
      ASSERT_TRUE(producer_->Begin().ok());
      for (int i = 0; i < n; ++i) {
        std::string store = "s" + std::to_string(rng() % stores), sku = "k" + std::to_string(rng() % skus);
        int64_t delta = static_cast<int64_t>(rng() % 9) - 3;
        std::string eid = "e" + std::to_string(produced_++);
        stock_[store + "/" + sku] += delta;
        seen_[eid] = delta;
        Event e{"StockAdjusted",
                eid,
                NowMillis(),
                {{"store", store}, {"sku", sku}, {"delta", delta}, {"eid", eid}}};
        ASSERT_TRUE(
            producer_
                ->Produce({topic_, PartitionForKey(store, kPartitions), store, EncodeEventValue(e), {}},
                          &reports[i])
                .ok());
      }
      ASSERT_TRUE(producer_->Commit(30s).ok());
      for (const auto& r : reports) last_offset_[r.partition] = std::max(last_offset_[r.partition], r.offset);
    }
  }

  std::string FeedTarget(const std::string& view, const std::string& query = "") const {
    return "/views/" + view + "/feed?token=" + kToken + (query.empty() ? "" : "&" + query);
  }

  // Reads messages into `state` until `done` holds or `timeout` passes.
  bool ReadUntil(WsClient& ws, FeedState& state, const std::function<bool()>& done,
                 std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return false;
      auto m = ws.Next(left);
      if (!m) return done();
      state.Apply(*m);
    }
    return true;
  }

  Rows PostgresStock() {
    pqxx::connection conn(db_url_);
    pqxx::nontransaction tx(conn);
    Rows rows;
    for (const auto& r : tx.exec("SELECT store, sku, on_hand FROM stock"))
      rows[r[0].as<std::string>() + "/" + r[1].as<std::string>()] = {{"store", r[0].as<std::string>()},
                                                                     {"sku", r[1].as<std::string>()},
                                                                     {"on_hand", r[2].as<int64_t>()}};
    return rows;
  }

  Rows RocksDbRows(const std::string& view) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 10s);
    auto r = client.Get("/views/" + view + "/rows?prefix=&limit=10000");
    EXPECT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().message());
    Rows rows;
    if (!r.ok()) return rows;
    nlohmann::json answer = nlohmann::json::parse(r->body);
    for (const auto& row : answer["rows"]) rows[KeyText(row["key"])] = row["value"];
    return rows;
  }

  Rows ReferenceStock(const std::string& prefix = "") const {
    Rows rows;
    for (const auto& [key, on_hand] : stock_) {
      if (key.rfind(prefix, 0) != 0) continue;
      auto slash = key.find('/');
      rows[key] = {{"store", key.substr(0, slash)}, {"sku", key.substr(slash + 1)}, {"on_hand", on_hand}};
    }
    return rows;
  }

  bool CaughtUp(const std::string& view) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    auto r = client.Get("/views/" + view + "/status");
    if (!r.ok() || r->status != 200) return false;
    auto status = nlohmann::json::parse(r->body);
    auto stores = status.contains("stores") ? status["stores"] : nlohmann::json{{"only", status}};
    for (auto& [name, s] : stores.items())
      for (const auto& [p, last] : last_offset_) {
        auto offsets = s["next_offsets"];
        if (!offsets.contains(std::to_string(p)) || offsets[std::to_string(p)].get<int64_t>() <= last)
          return false;
      }
    return true;
  }

  std::string config_path_;
  std::unique_ptr<TransactionalProducer> producer_;
  int produced_ = 0;
  std::map<std::string, int64_t> stock_;  // "store/sku" -> on_hand
  std::map<std::string, int64_t> seen_;   // eid -> delta
  std::map<int32_t, int64_t> last_offset_;
};

TEST_F(ChangeFeedTest, SnapshotThenChangesMatchRocksDbAndPostgres) {
  Produce(2000);
  FreshetProcess views({"views", "--config", config_path_}, env_, "feed-views");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("stock"); }, 90s, 50ms)) << views.Log();

  auto rocks = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock"));
  auto pg = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock", "store=postgres"));
  ASSERT_TRUE(rocks && pg) << views.Log();
  FeedState rs, ps;
  auto hello = rocks->Next(10s);
  ASSERT_TRUE(hello);
  EXPECT_EQ((*hello)["type"], "hello");
  EXPECT_EQ((*hello)["store"], "rocksdb");
  EXPECT_EQ((*hello)["key_columns"], nlohmann::json::array({"store", "sku"}));
  ASSERT_TRUE(ReadUntil(
      *rocks, rs, [&] { return rs.snapshots == 1; }, 20s));
  ASSERT_TRUE(ReadUntil(
      *pg, ps, [&] { return ps.snapshots == 1; }, 20s));
  EXPECT_EQ(rs.rows, ReferenceStock());
  EXPECT_EQ(ps.rows, ReferenceStock());
  EXPECT_TRUE(rs.changes.empty());

  // Changes after the snapshot, in offset order per partition, until both
  // clients have seen every committed offset.
  Produce(3000);
  ASSERT_TRUE(ReadUntil(
      *rocks, rs, [&] { return rs.Reached(last_offset_); }, 60s))
      << views.Log();
  ASSERT_TRUE(ReadUntil(
      *pg, ps, [&] { return ps.Reached(last_offset_); }, 60s))
      << views.Log();
  EXPECT_FALSE(rs.changes.empty());
  for (const FeedState* s : {&rs, &ps}) {
    std::map<int32_t, int64_t> last;
    for (const auto& [p, o] : s->changes) {
      EXPECT_GT(o, last.count(p) ? last[p] : -1) << "partition " << p << " out of order";
      last[p] = o;
    }
  }
  // Row by row: the feed's picture equals the reference, the RocksDB rows
  // (whose values lack the key columns) and the Postgres table.
  EXPECT_EQ(rs.rows, ReferenceStock());
  EXPECT_EQ(ps.rows, ReferenceStock());
  EXPECT_EQ(ps.rows, PostgresStock());
  Rows stored = RocksDbRows("stock");
  ASSERT_EQ(stored.size(), rs.rows.size());
  for (const auto& [key, row] : rs.rows) EXPECT_EQ(stored[key]["on_hand"], row["on_hand"]) << key;

  // Filters: one key, one prefix.
  auto one = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock", "key=s1/k3"));
  auto prefix = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock", "prefix=s2/"));
  FeedState os, xs;
  ASSERT_TRUE(ReadUntil(
      *one, os, [&] { return os.snapshots == 1; }, 20s));
  ASSERT_TRUE(ReadUntil(
      *prefix, xs, [&] { return xs.snapshots == 1; }, 20s));
  Produce(1000);
  ASSERT_TRUE(ReadUntil(
      *one, os, [&] { return os.Reached(last_offset_); }, 30s));
  ASSERT_TRUE(ReadUntil(
      *prefix, xs, [&] { return xs.Reached(last_offset_); }, 30s));
  Rows want_one;
  if (stock_.count("s1/k3")) want_one["s1/k3"] = ReferenceStock()["s1/k3"];
  EXPECT_EQ(os.rows, want_one);
  EXPECT_EQ(xs.rows, ReferenceStock("s2/"));
  for (const auto& [key, row] : xs.rows) EXPECT_EQ(key.rfind("s2/", 0), 0u) << key;
}

TEST_F(ChangeFeedTest, ResumeAfterDroppedConnectionHasNoGapAndNoDuplicate) {
  Produce(500);
  FreshetProcess views({"views", "--config", config_path_}, env_, "feed-views");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("seen"); }, 90s, 50ms)) << views.Log();

  // `seen` has one row per event: every event must arrive exactly once.
  auto first = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("seen"));
  ASSERT_TRUE(first);
  FeedState state;
  ASSERT_TRUE(ReadUntil(
      *first, state, [&] { return state.snapshots == 1; }, 20s));
  ASSERT_EQ(state.rows.size(), 500u);
  auto snapshot_next = state.next;

  std::thread producer([&] { Produce(6000); });
  // Drop the connection in the middle of the stream.
  ASSERT_TRUE(ReadUntil(
      *first, state, [&] { return state.changes.size() >= 1500; }, 60s))
      << views.Log();
  first->Drop();
  size_t before_drop = state.changes.size();

  int status = 0;
  std::string body;
  auto second = WsClient::Connect(static_cast<uint16_t>(port_),
                                  FeedTarget("seen", "from=" + state.FromParam()), {}, &status, &body);
  if (!second) producer.join();
  ASSERT_TRUE(second) << status << " " << body << " running=" << views.running();
  producer.join();
  ASSERT_TRUE(ReadUntil(
      *second, state, [&] { return state.Reached(last_offset_); }, 60s))
      << views.Log();
  EXPECT_EQ(state.resumes, 1) << "the server should resume from history, not send a snapshot";
  EXPECT_EQ(state.snapshots, 1);
  EXPECT_GT(state.changes.size(), before_drop);

  // No duplicate: every (partition, offset) once; no gap: exactly the
  // events produced after the snapshot.
  std::set<std::pair<int32_t, int64_t>> unique(state.changes.begin(), state.changes.end());
  EXPECT_EQ(unique.size(), state.changes.size()) << "a change was delivered twice";
  EXPECT_EQ(state.changes.size(), 6000u);
  for (const auto& [p, o] : state.changes) EXPECT_GE(o, snapshot_next[p]);
  EXPECT_EQ(state.rows.size(), seen_.size());
  for (const auto& [eid, delta] : seen_) EXPECT_EQ(state.rows[eid]["delta"], delta) << eid;
}

// batch=1 clients share one frame per batch window. A client that joins
// mid-stream (snapshot) and one that resumes mid-stream must still get every
// later change exactly once: the shared frame must not hand them changes
// their snapshot or their resume already covers.
TEST_F(ChangeFeedTest, BatchClientsGetEveryChangeOnceAcrossJoinsAndResumes) {
  // A long window, so that clients join while a frame is being gathered.
  env_["FRESHET_VIEWS_FEED_BATCH_WINDOW_MS"] = "150";
  Produce(500);
  FreshetProcess views({"views", "--config", config_path_}, env_, "feed-views");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("seen"); }, 90s, 50ms)) << views.Log();

  auto early = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("seen", "batch=1"));
  ASSERT_TRUE(early);
  FeedState es;
  ASSERT_TRUE(ReadUntil(
      *early, es, [&] { return es.snapshots == 1; }, 20s));
  auto early_snapshot_next = es.next;

  // Paced (not as synchronisation): the stream must still be running when
  // the late client joins and when the early one resumes.
  std::thread producer([&] {
    for (int i = 0; i < 40; ++i) {
      Produce(100);
      std::this_thread::sleep_for(40ms);
    }
  });
  ASSERT_TRUE(ReadUntil(
      *early, es, [&] { return es.changes.size() >= 800; }, 60s))
      << views.Log();
  // Joins while the stream runs, half a window after the early client got
  // a frame (a placement, not a synchronisation): the frame being gathered
  // then holds changes its snapshot already covers.
  std::this_thread::sleep_for(75ms);
  auto late = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("seen", "batch=1"));
  ASSERT_TRUE(late);
  FeedState ls;
  ASSERT_TRUE(ReadUntil(
      *late, ls, [&] { return ls.snapshots == 1; }, 20s));
  auto late_snapshot_next = ls.next;
  // The early client drops and resumes, still mid-stream.
  ASSERT_TRUE(ReadUntil(
      *early, es, [&] { return es.changes.size() >= 2000; }, 60s))
      << views.Log();
  early->Drop();
  std::this_thread::sleep_for(75ms);  // mid-window, as above
  early =
      WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("seen", "batch=1&from=" + es.FromParam()));
  if (!early) producer.join();
  ASSERT_TRUE(early);
  producer.join();
  ASSERT_TRUE(ReadUntil(
      *early, es, [&] { return es.resumes + es.snapshots > 1 && es.Reached(last_offset_); }, 60s))
      << views.Log();
  ASSERT_TRUE(ReadUntil(
      *late, ls, [&] { return ls.Reached(last_offset_); }, 60s))
      << views.Log();

  EXPECT_EQ(es.resumes, 1);
  EXPECT_LT(ls.changes.size(), es.changes.size()) << "the late client should have joined mid-stream";
  EXPECT_EQ(es.resets + ls.resets, 0);
  for (auto* s : {&es, &ls}) {
    std::set<std::pair<int32_t, int64_t>> unique(s->changes.begin(), s->changes.end());
    EXPECT_EQ(unique.size(), s->changes.size()) << "a change was delivered twice";
    EXPECT_GT(s->batches, 0);
    EXPECT_LT(s->batches, static_cast<int>(s->changes.size())) << "changes should arrive several to a frame";
    EXPECT_EQ(s->rows.size(), seen_.size());
    for (const auto& [eid, delta] : seen_) EXPECT_EQ(s->rows[eid]["delta"], delta) << eid;
  }
  // No gap: every event after each client's snapshot, once.
  EXPECT_EQ(es.changes.size(), 4000u);
  for (const auto& [p, o] : es.changes) EXPECT_GE(o, early_snapshot_next[p]);
  for (const auto& [p, o] : ls.changes) EXPECT_GE(o, late_snapshot_next[p]) << "a change the snapshot held";
  size_t after_late_snapshot = 0;
  for (const auto& [p, o] : es.changes) after_late_snapshot += o >= late_snapshot_next[p];
  EXPECT_EQ(ls.changes.size(), after_late_snapshot);
}

TEST_F(ChangeFeedTest, SlowClientsAreCoalescedOrResetAndMemoryStaysBounded) {
  env_["FRESHET_VIEWS_FEED_MAX_PENDING"] = "300";
  Produce(1000, 10, 100);
  FreshetProcess views({"views", "--config", config_path_}, env_, "feed-views");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("stock"); }, 90s, 50ms)) << views.Log();

  // Two clients that stop reading after their snapshot, with tiny socket
  // buffers: one follows 100 keys (under max_pending: coalesced), one all
  // 1,000 keys (over it: reset to a fresh snapshot).
  WsClient::Options slow;
  slow.receive_buffer_bytes = 4096;
  auto narrow = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock", "prefix=s1/"), slow);
  auto wide = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock"), slow);
  ASSERT_TRUE(narrow && wide);
  FeedState ns, ws;
  ASSERT_TRUE(ReadUntil(
      *narrow, ns, [&] { return ns.snapshots == 1; }, 20s));
  ASSERT_TRUE(ReadUntil(
      *wide, ws, [&] { return ws.snapshots == 1; }, 20s));
  long rss_before = RssKb(views.pid());

  Produce(150000, 10, 100);
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("stock"); }, 120s, 50ms)) << views.Log();
  long rss_after = RssKb(views.pid());
  // What the feed holds for the stalled clients is bounded by design: at
  // most max_pending (300) changes each, here 100 + 300. The process's RSS
  // also grows with RocksDB's memtables, so it is reported and only
  // checked loosely.
  auto metric = [&](const std::string& name) -> double {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
    std::string text = client.Get("/metrics")->body;
    auto at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
  };
  double pending = metric("freshet_feed_pending_changes");
  std::printf(
      "view process RSS with two stalled feed clients: %ld KiB before, %ld KiB after 150,000 events; "
      "changes held for them: %.0f\n",
      rss_before, rss_after, pending);
  EXPECT_GE(pending, 0);
  EXPECT_LE(pending, 400) << "the feed held more than max_pending per client";
  EXPECT_LT(rss_after - rss_before, 256 * 1024) << "the view process grew far beyond its stores' buffers";

  // Now the clients read again: what they end with is exactly the data.
  ASSERT_TRUE(ReadUntil(
      *narrow, ns, [&] { return ns.Reached(last_offset_) && ns.snapshot_done; }, 60s));
  ASSERT_TRUE(ReadUntil(
      *wide, ws, [&] { return ws.Reached(last_offset_) && ws.snapshot_done; }, 60s));
  EXPECT_EQ(ns.rows, ReferenceStock("s1/"));
  EXPECT_EQ(ws.rows, ReferenceStock());
  EXPECT_EQ(ns.resets, 0);
  EXPECT_GE(ws.resets, 1);
  EXPECT_GE(ws.snapshots, 2);
  EXPECT_LT(ns.changes.size(), 150000u / 10) << "the slow client's changes were not coalesced";

  HttpClient client("127.0.0.1", static_cast<uint16_t>(port_), 5s);
  std::string metrics = client.Get("/metrics")->body;
  EXPECT_NE(metrics.find("freshet_feed_coalesced_total"), std::string::npos);
  EXPECT_EQ(metrics.find("freshet_feed_coalesced_total 0\n"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("freshet_feed_resets_total 0\n"), std::string::npos) << metrics;
}

TEST_F(ChangeFeedTest, BadRequestsAreRefusedAndOthersKeepBeingServed) {
  Produce(100);
  FreshetProcess views({"views", "--config", config_path_}, env_, "feed-views");
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp("stock"); }, 90s, 50ms)) << views.Log();
  auto good = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock"));
  ASSERT_TRUE(good);
  FeedState gs;
  ASSERT_TRUE(ReadUntil(
      *good, gs, [&] { return gs.snapshots == 1; }, 20s));

  struct Case {
    std::string target;
    std::map<std::string, std::string> headers;
    int status;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"/views/nope/feed?token=" + std::string(kToken), {}, 404, "no such view: nope"},
      {FeedTarget("stock", "from=0:x"), {}, 400, "from: expected partition:offset"},
      {FeedTarget("stock", "key=a&prefix=b"), {}, 400, "at most one of key"},
      {FeedTarget("stock", "store=mysql"), {}, 400, "store: expected rocksdb or postgres"},
      {"/views/stock/feed", {}, 401, "a token is required"},
      {"/views/stock/feed?token=wrong", {}, 401, "wrong token"},
      {"/views/stock/feed", {{"Authorization", "Bearer wrong"}}, 401, "wrong token"},
  };
  for (const auto& c : cases) {
    int status = 0;
    std::string body;
    WsClient::Options options;
    options.headers = c.headers;
    auto ws = WsClient::Connect(static_cast<uint16_t>(port_), c.target, options, &status, &body);
    EXPECT_FALSE(ws) << c.target;
    EXPECT_EQ(status, c.status) << c.target;
    EXPECT_NE(body.find(c.reason), std::string::npos) << c.target << ": " << body;
  }
  // The bearer header works as well as the query parameter.
  WsClient::Options bearer;
  bearer.headers = {{"Authorization", std::string("Bearer ") + kToken}};
  EXPECT_TRUE(WsClient::Connect(static_cast<uint16_t>(port_), "/views/stock/feed", bearer));

  // A frame over 64 KiB closes that client with 1009; a message at all
  // (the feed takes none) closes with 1008.
  auto big = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock"));
  ASSERT_TRUE(big);
  big->Send(std::string(100 * 1024, 'x'));
  while (big->Next(10s)) {
  }
  EXPECT_TRUE(big->closed());
  // 1009, unless the kernel resets the connection first because the server
  // closed it with our unread payload still in its buffer.
  EXPECT_TRUE(big->close_code() == 1009 || big->close_code() == 0) << big->close_code();
  auto chatty = WsClient::Connect(static_cast<uint16_t>(port_), FeedTarget("stock"));
  ASSERT_TRUE(chatty);
  chatty->Send(R"({"hello": 1})");
  while (chatty->Next(10s)) {
  }
  EXPECT_EQ(chatty->close_code(), 1008);

  // The well-behaved client is still served.
  Produce(200);
  ASSERT_TRUE(ReadUntil(
      *good, gs, [&] { return gs.Reached(last_offset_); }, 30s));
  EXPECT_EQ(gs.rows, ReferenceStock());
  // And an idle feed keeps sending progress (a heartbeat) every 5 s.
  int progress = gs.progress;
  ASSERT_TRUE(ReadUntil(
      *good, gs, [&] { return gs.progress > progress; }, 8s));
}

}  // namespace
}  // namespace freshet
