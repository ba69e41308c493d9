// Three Kafka brokers, faults injected under load, nothing lost.
//
// A three-node KRaft cluster of its own (scripts/services, cluster "chaos",
// replication factor 3, min.insync.replicas 2), two real writer processes
// and a view process (Postgres and RocksDB). Client threads send commands
// through the writers' HTTP API without pause, each with an idempotency key,
// retrying a command that got a 5xx, a timeout or no connection with the
// same key. Meanwhile the test SIGKILLs the leader of a busy partition,
// SIGKILLs the transaction coordinator, SIGSTOPs a broker for 20 s, and
// restarts every killed broker. Then, against what is really in the topic
// (read_committed): every acknowledged command is there exactly once, at
// the (partition, offset) it was acknowledged with; nothing else is there;
// the writers' state is a replay of the topic; both stores of the view hold
// the reference row by row. Neither the writers nor the view process is
// ever restarted. The test prints how many commands were acknowledged and
// the longest window without an acknowledgement per fault.
//
// The cluster is this test's alone: its ports (FRESHET_CHAOS_KAFKA_PORT,
// default 19192, and the five above it) and its data folder
// ($FRESHET_DATA_DIR/services/kafka-chaos) never touch the suite's broker.
// It is started here and stopped at the end, also when the test fails; the
// CTest fixture chaos.cluster.stop stops it should this process die.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/envelope.h"
#include "core/http_client.h"
#include "tests/support/integration_fixture.h"
#include "tests/support/test_env.h"
#include "writer/inventory.h"

namespace freshet {
namespace {

using namespace std::chrono_literals;
using namespace freshet::testing;
using Clock = std::chrono::steady_clock;

constexpr int kPartitions = 4;
constexpr int kBrokers = 3;
constexpr int kClientsPerPartition = 2;
constexpr int kStoresPerPartition = 6;
const std::vector<std::string> kSkus = {"A", "B", "C"};

int ChaosPort() {
  const char* v = std::getenv("FRESHET_CHAOS_KAFKA_PORT");
  return v && *v ? std::atoi(v) : 19192;
}

// Node N of the chaos cluster listens on ChaosPort() + 2(N-1) (scripts/services).
std::string ChaosBrokers() {
  std::string list;
  for (int n = 1; n <= kBrokers; ++n)
    list += (list.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(ChaosPort() + 2 * (n - 1));
  return list;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// scripts/services on the chaos cluster. Its variables are set in this
// process (children of FreshetProcess never see FRESHET_* variables they
// were not given).
const Clock::time_point kProcessStart = Clock::now();

bool ChaosServices(const std::string& args, std::string* output = nullptr) {
  setenv("FRESHET_KAFKA_CLUSTER", "chaos", 1);
  setenv("FRESHET_KAFKA_PORT", std::to_string(ChaosPort()).c_str(), 1);
  setenv("FRESHET_KAFKA_CONTROLLER_PORT", std::to_string(ChaosPort() + 1).c_str(), 1);
  std::string out;
  auto t0 = Clock::now();
  int rc = RunProjectScript("services " + args, &out);
  std::cout << "[chaos] at " << std::fixed << std::setprecision(1) << Seconds(t0 - kProcessStart)
            << " s: scripts/services " << args << ": exit " << rc << " after " << Seconds(Clock::now() - t0)
            << " s" << std::endl;
  if (rc != 0) std::cout << out;
  if (output) *output = out;
  return rc == 0;
}

// ---- Cluster metadata (librdkafka directly: the test inspects the cluster) ----

struct PartitionMeta {
  int32_t leader = -1;
  std::vector<int32_t> replicas, isr;
};
using TopicMeta = std::map<int32_t, PartitionMeta>;

class MetadataClient {
 public:
  MetadataClient() {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", ChaosBrokers().c_str(), err, sizeof(err));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  }
  ~MetadataClient() {
    if (rk_) rd_kafka_destroy(rk_);
  }
  MetadataClient(const MetadataClient&) = delete;
  MetadataClient& operator=(const MetadataClient&) = delete;

  // Every topic's partitions as the cluster sees them now; empty on error
  // (a broker may just have died).
  std::map<std::string, TopicMeta> Topics() {
    const rd_kafka_metadata_t* md = nullptr;
    std::map<std::string, TopicMeta> out;
    if (!rk_ || rd_kafka_metadata(rk_, 1, nullptr, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
    for (int t = 0; t < md->topic_cnt; ++t) {
      const auto& topic = md->topics[t];
      if (topic.err) continue;
      for (int p = 0; p < topic.partition_cnt; ++p) {
        const auto& part = topic.partitions[p];
        PartitionMeta m;
        m.leader = part.leader;
        m.replicas.assign(part.replicas, part.replicas + part.replica_cnt);
        m.isr.assign(part.isrs, part.isrs + part.isr_cnt);
        out[topic.topic][part.id] = m;
      }
    }
    rd_kafka_metadata_destroy(md);
    return out;
  }

 private:
  rd_kafka_t* rk_ = nullptr;
};

// Kafka's TransactionStateManager.partitionFor: Utils.abs(String.hashCode)
// modulo the partition count of __transaction_state. The leader of that
// partition is the transaction coordinator of `transactional_id`.
int32_t TransactionStatePartition(const std::string& transactional_id, int partitions) {
  uint32_t h = 0;  // Java's int arithmetic, wrapping (the ids are ASCII: one UTF-16 unit per char)
  for (unsigned char c : transactional_id) h = 31 * h + c;
  auto hash = static_cast<int32_t>(h);
  int32_t abs = hash == INT32_MIN ? 0 : (hash < 0 ? -hash : hash);
  return abs % partitions;
}

// ---- The load: commands with idempotency keys, retried until decided --------

struct Ack {
  int32_t partition = -1;
  int64_t offset = -1;
  Clock::time_point at;
};

struct LoadStats {
  std::mutex mu;
  std::map<std::string, Ack> acked;   // idempotency key -> first acknowledgement
  std::set<std::string> refused;      // 409: decided, nothing published
  std::vector<std::string> problems;  // anything a correct writer never answers
  std::vector<std::vector<Clock::time_point>> ack_times =
      std::vector<std::vector<Clock::time_point>>(kPartitions);
  int64_t attempts = 0, retries = 0, redirects = 0, duplicates = 0, undecided = 0;
  std::map<std::string, int64_t> retry_causes;  // "503", "timeout", ...

  int64_t AcksSince(int32_t partition, Clock::time_point t) {
    std::lock_guard lock(mu);
    const auto& v = ack_times[partition];
    return v.end() - std::lower_bound(v.begin(), v.end(), t);
  }
  int64_t MinAcksSince(Clock::time_point t) {
    int64_t least = INT64_MAX;
    for (int p = 0; p < kPartitions; ++p) least = std::min(least, AcksSince(p, t));
    return least;
  }
  size_t AckCount() {
    std::lock_guard lock(mu);
    return acked.size();
  }
  // "partition 0: 12, partition 1: 0, ...": which partitions a failed wait
  // was waiting for.
  std::string AcksSinceByPartition(Clock::time_point t) {
    std::string out;
    for (int p = 0; p < kPartitions; ++p)
      out += (p ? ", " : "") + std::string("partition ") + std::to_string(p) + ": " +
             std::to_string(AcksSince(p, t));
    return out;
  }
};

// Sends one command until it is answered 2xx or refused (409), following
// redirects and retrying everything else with the same key on the other
// writer. Gives up (undecided) only after `deadline`. `port` is where the
// client sends first, and afterwards the writer that answered.
void SendUntilDecided(const std::vector<int>& ports, int& port, const std::string& id,
                      const nlohmann::json& command, Clock::time_point deadline, LoadStats& stats) {
  size_t next = 0;
  bool failed_before = false;
  while (Clock::now() < deadline) {
    // A fresh connection per attempt: after a timeout the old one may still
    // carry the old answer.
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port), 10s);
    auto r = client.Request("POST", "/commands", command.dump(), {{"Idempotency-Key", id}});
    std::string retry_cause;
    {
      std::lock_guard lock(stats.mu);
      ++stats.attempts;
      if (failed_before) ++stats.retries;
      if (r.ok() && r->status == 307) {
        auto body = nlohmann::json::parse(r->body, nullptr, false);
        ++stats.redirects;
        if (body.is_object() && body["owner"].is_string()) {
          std::string owner = body["owner"];
          port = std::atoi(owner.substr(owner.rfind(':') + 1).c_str());
        }
        continue;
      }
      if (r.ok() && r->status == 200) {
        auto body = nlohmann::json::parse(r->body, nullptr, false);
        Ack ack{body["partition"].get<int32_t>(), body["offset"].get<int64_t>(), Clock::now()};
        if (body.value("duplicate", false)) ++stats.duplicates;
        auto [it, first] = stats.acked.try_emplace(id, ack);
        if (!first && (it->second.partition != ack.partition || it->second.offset != ack.offset))
          stats.problems.push_back(id +
                                   " acknowledged at two places: " + std::to_string(it->second.partition) +
                                   ":" + std::to_string(it->second.offset) + " and " + r->body);
        if (first) {
          auto& times = stats.ack_times[ack.partition];
          times.insert(std::upper_bound(times.begin(), times.end(), ack.at), ack.at);
        }
        return;
      }
      if (r.ok() && r->status == 409) {
        stats.refused.insert(id);
        return;
      }
      if (r.ok() && r->status / 100 == 4) {
        stats.problems.push_back(id + ": unexpected " + std::to_string(r->status) + " " + r->body);
        return;
      }
      if (r.ok())
        retry_cause = std::to_string(r->status);
      else
        retry_cause = r.status().code() == StatusCode::kTimeout ? "timeout" : "no connection";
      stats.retry_causes[retry_cause]++;
    }
    failed_before = true;
    port = ports[++next % ports.size()];
    std::this_thread::sleep_for(50ms);  // a client's back-off between attempts, not a wait for a condition
  }
  std::lock_guard lock(stats.mu);
  ++stats.undecided;
  stats.problems.push_back(id + ": neither acknowledged nor refused before the deadline");
}

// ---- Faults and what they cost ------------------------------------------------

struct FaultWindow {
  std::string name;
  Clock::time_point start, end;
};

// The longest stretch of [start, end] in which `times` (sorted) has no entry.
double LongestGap(const std::vector<Clock::time_point>& times, Clock::time_point start,
                  Clock::time_point end) {
  Clock::time_point last = start;
  Clock::duration longest{0};
  for (auto t : times) {
    if (t < start) continue;
    if (t > end) break;
    longest = std::max(longest, t - last);
    last = t;
  }
  return Seconds(std::max(longest, end - last));
}

class Chaos : public IntegrationFixture {
 protected:
  Chaos() : IntegrationFixture("chaos") {}

  static void SetUpTestSuite() {
    cluster_started_ = Clock::now();
    cluster_ok_ = ChaosServices("kafka-start --brokers 3");
  }
  static void TearDownTestSuite() { (void)ChaosServices("kafka-stop"); }

  void SetUp() override {
    ASSERT_TRUE(cluster_ok_)
        << "could not start the chaos cluster (scripts/services kafka-start --brokers 3)";
    CreateDatabase();
    env_["FRESHET_KAFKA_BROKERS"] = ChaosBrokers();
    env_["FRESHET_VIEWS_ROCKSDB_PATH"] = TestFile(".rocksdb");
    env_["FRESHET_VIEWS_SESSION_TIMEOUT_MS"] = "6000";
  }

  // The cluster's data stays between runs: leave no topics behind for its
  // next start to load.
  void TearDown() override {
    if (cluster_ok_)
      (void)DeleteTopics({ChaosBrokers(), {}}, {topic_, topic_ + "-owners", topic_ + ".snapshots"}, 15s);
  }

  std::map<std::string, std::string> ChaosWriterEnv(const std::string& name, int port) {
    std::map<std::string, std::string> env = WriterEnv(name, port, kPartitions);
    env["FRESHET_KAFKA_BROKERS"] = ChaosBrokers();
    // The event topic on all three brokers (the writer's default is 1).
    env["FRESHET_KAFKA_REPLICATION_FACTOR"] = "3";
    env["FRESHET_WRITER_SESSION_TIMEOUT_MS"] = "6000";
    return env;
  }

  static int OwnedCount(int port) {
    HttpClient c("127.0.0.1", static_cast<uint16_t>(port), 5s);
    auto r = c.Get("/readyz");
    if (!r.ok()) return -1;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j.contains("partitions")) return -1;
    int owned = 0;
    for (const auto& p : j["partitions"]) owned += p["role"] == "owner";
    return owned;
  }

  // Every partition of the event topic and of Kafka's internal topics has
  // all three replicas in sync: the cluster can lose a broker again.
  bool FullyReplicated(MetadataClient& md) {
    auto topics = md.Topics();
    for (const std::string& t :
         {topic_, std::string("__transaction_state"), std::string("__consumer_offsets")}) {
      if (!topics.count(t)) return false;
      for (const auto& [p, m] : topics[t])
        if (m.isr.size() != kBrokers || m.leader < 0) return false;
    }
    return true;
  }

  static inline Clock::time_point cluster_started_;
  static inline bool cluster_ok_ = false;
};

TEST_F(Chaos, BrokerFaultsUnderLoadLoseAndDuplicateNothing) {
  auto test_started = Clock::now();
  MetadataClient md;

  // ---- Writers, views, load ----
  int port_a = FreePort(), port_b = FreePort();
  FreshetProcess writer_a({"writer"}, ChaosWriterEnv("a", port_a), "chaos-writer-a");
  ASSERT_TRUE(WaitUntil([&] { return OwnedCount(port_a) == kPartitions || !writer_a.running(); }, 60s, 50ms));
  ASSERT_TRUE(writer_a.running()) << writer_a.Log();
  FreshetProcess writer_b({"writer"}, ChaosWriterEnv("b", port_b), "chaos-writer-b");
  ASSERT_TRUE(WaitUntil(
      [&] {
        int a = OwnedCount(port_a), b = OwnedCount(port_b);
        return (a > 0 && b > 0 && a + b == kPartitions) || !writer_b.running();
      },
      60s, 50ms));
  ASSERT_TRUE(writer_b.running()) << writer_b.Log();

  // The topic is what the cluster promises: three replicas, two in sync at least.
  auto topic_config = DescribeTopicConfig({ChaosBrokers(), {}}, topic_, 15s);
  ASSERT_TRUE(topic_config.ok()) << topic_config.status().ToString();
  EXPECT_EQ((*topic_config)["min.insync.replicas"], "2");
  auto topics_at_start = md.Topics();  // named: a range-for over a temporary's member dangles
  ASSERT_EQ(topics_at_start[topic_].size(), static_cast<size_t>(kPartitions));
  for (const auto& [p, m] : topics_at_start[topic_]) EXPECT_EQ(m.replicas.size(), 3u) << "partition " << p;

  std::string config = WriteViewsConfig(R"([
      {"name": "stock_levels", "kind": "aggregate", "stores": ["postgres", "rocksdb"],
       "group_by": {"store": "/store", "sku": "/sku"},
       "aggregates": {"on_hand": {"fn": "sum", "from": "/delta", "type": "bigint"}},
       "freshness": {"flush_interval_ms": 20}}])");
  FreshetProcess views({"views", "--config", config}, env_, "chaos-views");

  // Stores per partition, so that every partition has its own steady load
  // and a stall of one is visible in its own acknowledgements.
  std::vector<std::vector<std::string>> stores(kPartitions);
  for (int i = 0;
       std::any_of(stores.begin(), stores.end(), [](auto& s) { return s.size() < kStoresPerPartition; });
       ++i) {
    std::string store = "store-" + std::to_string(i);
    auto& mine = stores[PartitionForKey(store, kPartitions)];
    if (mine.size() < kStoresPerPartition) mine.push_back(store);
  }

  LoadStats stats;
  std::atomic<bool> stop_load{false};
  std::atomic<Clock::time_point> drain_deadline{Clock::time_point::max()};
  std::vector<std::thread> clients;
  for (int p = 0; p < kPartitions; ++p) {
    for (int c = 0; c < kClientsPerPartition; ++c) {
      clients.emplace_back([&, p, c] {
        std::mt19937 rng(p * 100 + c);
        int port = port_a;
        for (int i = 0; !stop_load; ++i) {
          std::string id = "chaos-" + std::to_string(p) + "-" + std::to_string(c) + "-" + std::to_string(i);
          nlohmann::json cmd = {{"store", stores[p][rng() % stores[p].size()]},
                                {"sku", kSkus[rng() % kSkus.size()]}};
          if (rng() % 10 < 3)
            cmd.update({{"type", "sell"}, {"qty", 1 + rng() % 3}});
          else
            cmd.update({{"type", "receive"}, {"qty", 1 + rng() % 5}});
          SendUntilDecided({port_a, port_b}, port, id, cmd,
                           std::min(drain_deadline.load(), Clock::now() + 120s), stats);
        }
      });
    }
  }
  // Joins the clients however the test ends: an ASSERT must not leave
  // threads running into destroyed state.
  struct Joiner {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } joiner{stop_load, clients};

  auto every_partition_acks = [&](Clock::time_point since, int64_t n, std::chrono::seconds timeout) {
    return WaitUntil([&] { return stats.MinAcksSince(since) >= n; }, timeout, 10ms);
  };
  auto load_started = Clock::now();
  ASSERT_TRUE(every_partition_acks(load_started, 100, 60s))
      << "no steady load: " << stats.AckCount() << " acks";
  std::vector<FaultWindow> faults;
  faults.push_back({"no fault (baseline)", load_started, Clock::now()});

  // A fault: inject it, see every partition acknowledge again without the
  // broker, have the broker back (a killed one is restarted at once, beside
  // that: a JVM takes its time to boot), wait until it is in every ISR again
  // and every partition acknowledges. The fault's window spans all of it.
  auto recover = [&](const std::string& name, int broker, Clock::time_point start, bool restart) {
    std::atomic<bool> restarted{!restart};
    std::thread restarter;
    if (restart) {
      restarter =
          std::thread([&] { restarted = ChaosServices("kafka-node start " + std::to_string(broker)); });
    }
    EXPECT_TRUE(every_partition_acks(start, 20, 90s))
        << name << ": the writers did not acknowledge on every partition within 90 s ("
        << stats.AcksSinceByPartition(start) << ")";
    auto served = Clock::now();
    if (restarter.joinable()) restarter.join();
    EXPECT_TRUE(restarted) << name << ": broker " << broker << " did not start again";
    EXPECT_TRUE(WaitUntil([&] { return FullyReplicated(md); }, 90s, 200ms))
        << name << ": replicas not back in sync";
    auto back = Clock::now();
    EXPECT_TRUE(every_partition_acks(back, 20, 60s))
        << name << ": no acknowledgements after the broker came back (" << stats.AcksSinceByPartition(back)
        << ")";
    std::cout << "[chaos] " << name << ": every partition acknowledged again after " << std::fixed
              << std::setprecision(1) << Seconds(served - start) << " s, broker back in every ISR after "
              << Seconds(back - start) << " s" << std::endl;
    faults.push_back({name, start, Clock::now()});
  };

  // 1. SIGKILL the leader of the busiest partition.
  {
    int32_t busiest = 0;
    {
      std::lock_guard lock(stats.mu);
      for (int p = 1; p < kPartitions; ++p)
        if (stats.ack_times[p].size() > stats.ack_times[busiest].size()) busiest = p;
    }
    auto topics = md.Topics();
    int leader = topics[topic_][busiest].leader;
    ASSERT_GE(leader, 1);
    std::string led;  // every partition it leads, the busiest first
    for (const auto& [p, m] : topics[topic_])
      if (m.leader == leader && p != busiest) led += "," + std::to_string(p);
    std::string name = "SIGKILL broker " + std::to_string(leader) + ", leader of partitions " +
                       std::to_string(busiest) + led;
    auto start = Clock::now();
    ASSERT_TRUE(ChaosServices("kafka-node kill " + std::to_string(leader)));
    recover(name, leader, start, /*restart=*/true);
  }

  // 2. SIGKILL the transaction coordinator: the broker that coordinates the
  // most of the writers' transactional.ids (freshet-writer-<topic>-<p> and
  // its ".1", the partition's two producers).
  {
    auto topics = md.Topics();
    const auto& txn_state = topics["__transaction_state"];
    ASSERT_FALSE(txn_state.empty());
    std::map<int, int> coordinated;  // broker -> transactional.ids it coordinates
    for (int p = 0; p < kPartitions; ++p) {
      for (std::string suffix : {"", ".1"}) {
        std::string txn_id = "freshet-writer-" + topic_ + "-" + std::to_string(p) + suffix;
        coordinated[txn_state.at(TransactionStatePartition(txn_id, static_cast<int>(txn_state.size())))
                        .leader]++;
      }
    }
    auto coordinator = std::max_element(coordinated.begin(), coordinated.end(), [](auto& x, auto& y) {
                         return x.second < y.second;
                       })->first;
    ASSERT_GE(coordinator, 1);
    std::string name = "SIGKILL broker " + std::to_string(coordinator) + ", transaction coordinator of " +
                       std::to_string(coordinated[coordinator]) +
                       " of the 8 transactional.ids of 4 partitions";
    auto start = Clock::now();
    ASSERT_TRUE(ChaosServices("kafka-node kill " + std::to_string(coordinator)));
    recover(name, coordinator, start, /*restart=*/true);
  }

  // 3. SIGSTOP the broker that leads the most partitions of the topic for
  // 20 s (a hung machine: its sockets stay open, nothing answers), then
  // SIGCONT it.
  {
    std::map<int, int> leads;
    auto topics = md.Topics();
    for (const auto& [p, m] : topics[topic_]) leads[m.leader]++;
    auto paused = std::max_element(leads.begin(), leads.end(), [](auto& x, auto& y) {
                    return x.second < y.second;
                  })->first;
    ASSERT_GE(paused, 1);
    std::string name = "SIGSTOP broker " + std::to_string(paused) + " for 20 s, leader of " +
                       std::to_string(leads[paused]) + " of 4 partitions";
    auto start = Clock::now();
    ASSERT_TRUE(ChaosServices("kafka-node pause " + std::to_string(paused)));
    std::this_thread::sleep_for(20s);  // the fault's duration, not a wait for a condition
    ASSERT_TRUE(ChaosServices("kafka-node resume " + std::to_string(paused)));
    recover(name, paused, start, /*restart=*/false);
  }

  // ---- Stop the load; every command in flight is decided ----
  auto load_stopped = Clock::now();
  drain_deadline = Clock::now() + 60s;
  stop_load = true;
  for (auto& t : clients) t.join();

  // ---- What is in the topic (read_committed) ----
  auto consumer = Consumer::Create({ChaosBrokers(), {}}, "");
  ASSERT_TRUE(consumer.ok());
  std::vector<TopicPartitionOffset> assign;
  for (int p = 0; p < kPartitions; ++p) assign.push_back({topic_, p, kOffsetBeginning});
  ASSERT_TRUE((*consumer)->Assign(assign).ok());
  std::map<std::string, std::vector<std::pair<int32_t, int64_t>>> found;  // id -> where
  OverlayState<InventoryDomain> replay;
  std::map<std::pair<std::string, std::string>, int64_t> reference;  // (store, sku) -> sum of deltas
  std::map<int32_t, int64_t> next_offsets;                           // last data offset + 1
  std::set<int32_t> ended;
  ASSERT_TRUE(WaitUntil(
      [&] {
        KafkaMessage m;
        int32_t eof = -1;
        auto outcome = (*consumer)->Poll(100ms, &m, &eof);
        if (outcome.ok() && *outcome == Consumer::PollOutcome::kPartitionEnd) ended.insert(eof);
        if (outcome.ok() && *outcome == Consumer::PollOutcome::kMessage) {
          auto event = DecodeEventValue(m.value());
          if (event.ok()) {
            found[event->id].push_back({m.partition(), m.offset()});
            EXPECT_TRUE(replay.ApplyCommitted(*event).ok());
            reference[{event->data["store"], event->data["sku"]}] += event->data["delta"].get<int64_t>();
          } else {
            ADD_FAILURE() << "undecodable event at " << m.partition() << ":" << m.offset();
          }
          next_offsets[m.partition()] = m.offset() + 1;
        }
        return static_cast<int>(ended.size()) == kPartitions;
      },
      60s, 0ms))
      << "could not read the topic to its end";

  std::lock_guard lock(stats.mu);  // the clients are done; this quiets the analyzers
  // ---- The report, before any check can stop the test ----
  std::ostringstream report;
  report << std::fixed << std::setprecision(1);
  report << "chaos: " << stats.acked.size() << " commands acknowledged, " << stats.refused.size()
         << " refused (409), in " << Seconds(load_stopped - load_started) << " s of load on " << kPartitions
         << " partitions (" << kPartitions * kClientsPerPartition << " clients); " << stats.retries
         << " retries with the same key (";
  for (const auto& [cause, n] : stats.retry_causes) report << cause << ": " << n << ", ";
  report << stats.duplicates << " answered as duplicates), " << stats.redirects << " redirects, "
         << stats.undecided << " undecided\n";
  report << "events in the topic (read_committed): " << found.size() << " ids, " << reference.size()
         << " (store, sku) rows in the reference\n";
  report << "longest window without an acknowledgement (any partition / the worst single partition):\n";
  for (const auto& f : faults) {
    std::vector<Clock::time_point> all;
    double worst = 0;
    int worst_partition = -1;
    for (int p = 0; p < kPartitions; ++p) {
      all.insert(all.end(), stats.ack_times[p].begin(), stats.ack_times[p].end());
      double gap = LongestGap(stats.ack_times[p], f.start, f.end);
      if (gap > worst) worst = gap, worst_partition = p;
    }
    std::sort(all.begin(), all.end());
    report << "  " << std::left << std::setw(62) << f.name << std::right << " over " << std::setw(5)
           << Seconds(f.end - f.start) << " s: " << std::setw(5) << LongestGap(all, f.start, f.end) << " s / "
           << std::setw(5) << worst << " s (partition " << worst_partition << ")\n";
  }
  report << "cluster start " << Seconds(test_started - cluster_started_) << " s, test "
         << Seconds(Clock::now() - test_started) << " s (plus the cluster's stop)\n";
  std::cout << report.str();
  std::ofstream(std::string(FRESHET_TEST_LOG_DIR) + "/chaos-report.txt") << report.str();
  // ---- Every acknowledged command exactly once, where it was acknowledged;
  // nothing that was not acknowledged ----
  for (const auto& problem : stats.problems) ADD_FAILURE() << problem;
  size_t missing = 0, misplaced = 0, doubled = 0, unacknowledged = 0;
  for (const auto& [id, ack] : stats.acked) {
    auto it = found.find(id);
    if (it == found.end()) {
      if (++missing <= 10)
        ADD_FAILURE() << id << " was acknowledged at " << ack.partition << ":" << ack.offset
                      << " but is not in the topic";
      continue;
    }
    if (it->second.size() != 1 && ++doubled <= 10)
      ADD_FAILURE() << id << " is in the topic " << it->second.size() << " times";
    if (it->second[0] != std::make_pair(ack.partition, ack.offset) && ++misplaced <= 10)
      ADD_FAILURE() << id << " was acknowledged at " << ack.partition << ":" << ack.offset << " but is at "
                    << it->second[0].first << ":" << it->second[0].second;
  }
  for (const auto& [id, where] : found) {
    if (stats.acked.count(id)) continue;
    if (++unacknowledged <= 10)
      ADD_FAILURE() << id << " is in the topic at " << where[0].first << ":" << where[0].second
                    << " but was never acknowledged" << (stats.refused.count(id) ? " (it was refused)" : "");
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(doubled, 0u);
  EXPECT_EQ(misplaced, 0u);
  EXPECT_EQ(unacknowledged, 0u);

  // ---- The writers survived, and their state is the topic's replay ----
  EXPECT_TRUE(writer_a.running()) << writer_a.Log();
  EXPECT_TRUE(writer_b.running()) << writer_b.Log();
  EXPECT_TRUE(views.running()) << views.Log();
  size_t state_checked = 0;
  for (int p = 0; p < kPartitions; ++p) {
    for (const auto& store : stores[p]) {
      for (const auto& sku : kSkus) {
        nlohmann::json entity = "unanswered";
        // A partition may still be moving after the last fault (503 while
        // its new owner takes over): ask again until an owner answers.
        WaitUntil(
            [&] {
              int port = port_a;
              for (int hop = 0; hop < 3; ++hop) {
                HttpClient c("127.0.0.1", static_cast<uint16_t>(port), 10s);
                auto r = c.Get("/state/" + store + "/" + sku);
                if (!r.ok()) return false;
                auto body = nlohmann::json::parse(r->body, nullptr, false);
                if (r->status == 307) {
                  std::string owner = body["owner"];
                  port = std::atoi(owner.substr(owner.rfind(':') + 1).c_str());
                  continue;
                }
                if (r->status != 200 && r->status != 404) return false;
                entity = body.value("entity", nlohmann::json());
                return true;
              }
              return false;
            },
            60s, 100ms);
        EXPECT_EQ(entity, replay.EntityJson(store, sku)) << store << "/" << sku;
        ++state_checked;
      }
    }
  }

  // ---- The views: Postgres and RocksDB, row by row ----
  int64_t target = 0;
  for (const auto& [p, next] : next_offsets) target += next;
  HttpClient view_client("127.0.0.1", static_cast<uint16_t>(port_), 10s);
  // The RocksDB copy's offsets come with its rows (the live version's).
  auto rocksdb_progress = [&] {
    auto r = view_client.Get("/views/stock_levels/rows?prefix=&limit=1");
    if (!r.ok() || r->status != 200) return int64_t{0};
    nlohmann::json body = nlohmann::json::parse(r->body, nullptr, false);
    int64_t total = 0;
    if (!body.is_object() || !body["next_offsets"].is_object()) return total;
    for (const auto& [p, next] : body["next_offsets"].items())
      total += std::max<int64_t>(0, next.get<int64_t>());
    return total;
  };
  EXPECT_TRUE(
      WaitUntil([&] { return StoredProgress(db_url_) >= target && rocksdb_progress() >= target; }, 60s, 50ms))
      << "views did not reach the end of the topic: postgres " << StoredProgress(db_url_) << ", rocksdb "
      << rocksdb_progress() << " of " << target << "\n"
      << views.Log();
  auto postgres_rows = StockLevels(db_url_);
  EXPECT_EQ(postgres_rows, reference) << "Postgres view differs from the topic";
  auto scan = view_client.Get("/views/stock_levels/rows?prefix=&limit=10000");
  ASSERT_TRUE(scan.ok());
  nlohmann::json scanned = nlohmann::json::parse(scan->body, nullptr, false);
  std::map<std::pair<std::string, std::string>, int64_t> rocksdb_rows;
  for (const auto& row : scanned["rows"])
    rocksdb_rows[{row["key"][0], row["key"][1]}] = row["value"]["on_hand"];
  EXPECT_EQ(rocksdb_rows, reference) << "RocksDB view differs from the topic";

  RecordProperty("acknowledged", static_cast<int>(stats.acked.size()));
  std::cout << "[chaos] test done after " << Seconds(Clock::now() - test_started) << " s" << std::endl;
}

}  // namespace
}  // namespace freshet
