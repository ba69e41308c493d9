// Scale-out reads: point reads per second and their latency when every
// partition is local (one view process, scale-out off) against the same
// reads through one of three view processes that share the view
// (views.advertise_url set), which asks the other two for their shares and
// merges. The view is an aggregate grouped by sku over a topic keyed by
// store, so every row has shares in every process.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "bench/bench_util.h"
#include "core/envelope.h"
#include "core/http_client.h"
#include "core/kafka.h"

namespace freshet {
namespace {

struct Options {
  std::string brokers = bench::DefaultBrokers();
  std::string pg_url = bench::DefaultPostgresUrl();
  std::string freshet = FRESHET_BINARY;
  int events = 200000;
  int skus = 10000;
  int clients = 8;
  int seconds = 10;
  std::string json;
};

constexpr int kPartitions = 12;

// A port on 127.0.0.1 that was free a moment ago.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// Point reads of random skus from `clients` threads for `seconds`.
nlohmann::json MeasureReads(const Options& o, int port, const std::string& label) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<int64_t>> latencies(o.clients);
  std::vector<int> errors(o.clients, 0);
  std::vector<std::thread> threads;
  for (int c = 0; c < o.clients; ++c)
    threads.emplace_back([&, c] {
      HttpClient client("127.0.0.1", static_cast<uint16_t>(port), std::chrono::seconds(10));
      std::mt19937 rng(c);
      while (!stop) {
        std::string target = "/views/per_sku/rows?key=sku-" + std::to_string(rng() % o.skus);
        auto t0 = std::chrono::steady_clock::now();
        auto r = client.Get(target);
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
                      .count();
        if (!r.ok() || r->status != 200) {
          ++errors[c];
          continue;
        }
        latencies[c].push_back(us);
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<int64_t> all;
  int failed = 0;
  for (int c = 0; c < o.clients; ++c) {
    all.insert(all.end(), latencies[c].begin(), latencies[c].end());
    failed += errors[c];
  }
  auto s = bench::Summarize(all);
  double rate = static_cast<double>(all.size()) / o.seconds;
  std::printf("  %-44s %9.0f reads/s  p50 %6.2f ms  p99 %6.2f ms  (%d errors)\n", label.c_str(), rate,
              s.p50_ms, s.p99_ms, failed);
  nlohmann::json out = bench::ToJson(s);
  out["reads_per_s"] = rate;
  out["errors"] = failed;
  return out;
}

int Run(const Options& o) {
  std::string topic = "scale-out-bench-" + std::to_string(getpid()) + "-" + std::to_string(NowMillis());
  KafkaClientOptions kafka{o.brokers, {}};
  bench::TopicsToDelete throwaway(o.brokers);
  throwaway.Add(topic);
  throwaway.Add(topic + "-owners");
  if (Status st = EnsureTopic(kafka, topic, kPartitions, 1, std::chrono::seconds(30)); !st.ok()) {
    std::cerr << st.ToString() << "\n";
    return 1;
  }
  {
    auto producer = Producer::Create(kafka);
    if (!producer.ok()) {
      std::cerr << producer.status().ToString() << "\n";
      return 1;
    }
    std::mt19937 rng(7);
    for (int i = 0; i < o.events; ++i) {
      std::string store = "store-" + std::to_string(rng() % 100);
      Event e{"StockAdjusted",
              "",
              NowMillis(),
              {{"store", store},
               {"sku", "sku-" + std::to_string(rng() % o.skus)},
               {"delta", static_cast<int>(rng() % 10)}}};
      OutgoingMessage m{topic, PartitionForKey(store, kPartitions), store, EncodeEventValue(e), {}};
      // A full local queue: let it drain, then send the event again.
      for (int attempt = 0; !(*producer)->Produce(m).ok(); ++attempt) {
        if (attempt == 100) {
          std::cerr << "cannot produce to " << topic << "\n";
          return 1;
        }
        (void)(*producer)->Flush(std::chrono::seconds(1));
      }
    }
    if (Status st = (*producer)->Flush(std::chrono::seconds(60)); !st.ok()) {
      std::cerr << st.ToString() << "\n";
      return 1;
    }
  }
  std::string dir = "/tmp/" + topic;
  std::filesystem::create_directories(dir);
  auto start = [&](int i, bool scale_out, const std::string& group) {
    int port = FreePort();
    std::string config = dir + "/views-" + group + "-" + std::to_string(i) + ".json";
    nlohmann::json views = {{"listen", "127.0.0.1:" + std::to_string(port)},
                            {"group_id", group},
                            {"owners_topic", topic + "-owners"},
                            {"rocksdb_path", dir + "/" + group + "-" + std::to_string(i) + ".rocksdb"},
                            {"definitions", nlohmann::json::parse(R"([{"name": "per_sku", "kind": "aggregate",
                               "stores": ["rocksdb"], "group_by": {"sku": "/sku"},
                               "aggregates": {"total": {"fn": "sum", "from": "/delta", "type": "bigint"},
                                              "events": {"fn": "count"}}}])")}};
    if (scale_out) views["advertise_url"] = "http://127.0.0.1:" + std::to_string(port);
    std::ofstream(config) << nlohmann::json{{"kafka", {{"brokers", o.brokers}, {"topic", topic}}},
                                            {"postgres", {{"url", o.pg_url}}},
                                            {"log_level", "warn"},
                                            {"views", views}};
    pid_t pid = bench::Spawn({o.freshet, "views", "--config", config}, config + ".log");
    return std::pair{pid, port};
  };
  // Caught up: every sku's events are counted, read through `port`, and
  // (with scale-out) served by `processes` processes: the group settled.
  auto wait_whole = [&](int port, size_t processes) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(port), std::chrono::seconds(10));
    for (int i = 0; i < 1200; ++i) {
      auto r = client.Get("/views/per_sku/rows?prefix=&limit=10000");
      if (r.ok() && r->status == 200) {
        int64_t events = 0;
        nlohmann::json body =
            nlohmann::json::parse(r->body);  // named: a range-for over a temporary's member dangles
        for (const auto& row : body["rows"]) events += row["value"]["events"].get<int64_t>();
        size_t serving = body.contains("served_by") ? body["served_by"].size() : 1;
        if (events == o.events && serving == processes) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  auto stop_all = [](const std::vector<std::pair<pid_t, int>>& processes) {
    for (const auto& [pid, port] : processes) kill(pid, SIGTERM);
    for (const auto& [pid, port] : processes) waitpid(pid, nullptr, 0);
  };
  nlohmann::json result = {{"bench", "scale_out_reads"},
                           {"events", o.events},
                           {"skus", o.skus},
                           {"partitions", kPartitions},
                           {"clients", o.clients}};
  std::printf("point reads of an aggregate with shares in every partition, %d clients, %d s each:\n",
              o.clients, o.seconds);

  std::vector<std::pair<pid_t, int>> one = {start(0, false, topic + "-single")};
  if (!wait_whole(one[0].second, 1)) {
    std::cerr << "the single view process did not catch up; see " << dir << "\n";
    stop_all(one);
    return 1;
  }
  result["one_process"] = MeasureReads(o, one[0].second, "one process, every partition local");
  stop_all(one);

  std::vector<std::pair<pid_t, int>> three;
  for (int i = 0; i < 3; ++i) three.push_back(start(i, true, topic + "-shared"));
  bool ready = true;
  for (const auto& [pid, port] : three) ready = ready && wait_whole(port, three.size());
  if (!ready) {
    std::cerr << "the three view processes did not catch up; see " << dir << "\n";
    stop_all(three);
    return 1;
  }
  result["three_processes"] = MeasureReads(o, three[0].second, "three processes, through one of them");
  stop_all(three);
  bench::AppendResult(o.json, result);
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace freshet

int main(int argc, char** argv) {
  freshet::Options o;
  CLI::App app{"Point reads of a RocksDB view: one process with every partition against three sharing it"};
  app.add_option("--brokers", o.brokers, "Kafka bootstrap servers");
  app.add_option("--pg-url", o.pg_url, "Postgres URL (the view processes require one)");
  app.add_option("--events", o.events, "events in the topic");
  app.add_option("--skus", o.skus, "distinct rows (skus)");
  app.add_option("--clients", o.clients, "concurrent HTTP readers");
  app.add_option("--seconds", o.seconds, "seconds of reads per setting");
  app.add_option("--json", o.json, "append the result to this JSON-lines file");
  CLI11_PARSE(app, argc, argv);
  return freshet::Run(o);
}
