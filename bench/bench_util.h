// Small helpers shared by the benchmarks: latency percentiles, JSON output.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/kafka.h"

namespace freshet::bench {

// Starts `args` (args[0] a path) with stdout and stderr in `log`; -1 if it
// cannot be started. The caller signals and waits for it.
inline pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// The local services scripts/services starts, unless the environment names others.
inline std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}
inline std::string DefaultBrokers() { return EnvOr("FRESHET_KAFKA_BROKERS", "127.0.0.1:19092"); }
inline std::string DefaultPostgresUrl() {
  return EnvOr("FRESHET_PG_URL", "postgresql://freshet@127.0.0.1:15432/freshet");
}

// Deletes a run's throwaway topics when it goes out of scope: a local
// broker that keeps every run's topics grows slower, run after run
// (11-12 GB and 1,300 partition directories after a day of runs here).
// Declare it before whatever uses the topics, so it goes last.
class TopicsToDelete {
 public:
  explicit TopicsToDelete(std::string brokers) : kafka_{std::move(brokers), {}} {}
  ~TopicsToDelete() {
    Status st = DeleteTopics(kafka_, topics_, std::chrono::seconds(30));
    if (!st.ok()) std::cerr << "benchmark topics left on the broker: " << st.ToString() << "\n";
  }
  TopicsToDelete(const TopicsToDelete&) = delete;
  TopicsToDelete& operator=(const TopicsToDelete&) = delete;
  void Add(std::string topic) { topics_.push_back(std::move(topic)); }

 private:
  KafkaClientOptions kafka_;
  std::vector<std::string> topics_;
};

// The end (high watermark) of each partition of `topic`: a view has read
// the topic once its stored offsets reach these.
inline std::map<int32_t, int64_t> HighWatermarks(const std::string& brokers, const std::string& topic,
                                                 int partitions) {
  auto consumer = Consumer::Create({brokers, {}}, "");
  std::map<int32_t, int64_t> ends;
  for (int p = 0; p < partitions; ++p)
    ends[p] = (*consumer)->QueryWatermarks(topic, p, std::chrono::seconds(10))->second;
  return ends;
}

// The raw baseline: librdkafka read_committed consumption of `topic` from
// offset 0 to its end, in records/s; the count read goes to `*records`.
// Offset 0 rather than "beginning": librdkafka (2.0.2 and 2.8.0) looks
// "beginning" up and may wait ~500 ms first, which is not consumption.
inline double RawConsumeRate(const std::string& brokers, const std::string& topic, int partitions,
                             int64_t* records = nullptr) {
  auto consumer = Consumer::Create({brokers, {}}, "");
  std::vector<TopicPartitionOffset> all;
  for (int p = 0; p < partitions; ++p) all.push_back({topic, p, 0});
  (void)(*consumer)->Assign(all);
  auto started = std::chrono::steady_clock::now();
  std::set<int32_t> ended;
  int64_t n = 0;
  while (static_cast<int>(ended.size()) < partitions) {
    KafkaMessage m;
    int32_t eof = -1;
    auto r = (*consumer)->Poll(std::chrono::milliseconds(100), &m, &eof);
    if (!r.ok()) continue;
    if (*r == Consumer::PollOutcome::kMessage) ++n;
    if (*r == Consumer::PollOutcome::kPartitionEnd) ended.insert(eof);
  }
  if (records) *records = n;
  return n / std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

struct LatencySummary {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  size_t count = 0;
};

inline LatencySummary Summarize(std::vector<int64_t> micros) {
  LatencySummary s;
  s.count = micros.size();
  if (micros.empty()) return s;
  std::sort(micros.begin(), micros.end());
  auto at = [&](double q) {
    return micros[std::min(micros.size() - 1, static_cast<size_t>(q * micros.size()))] / 1000.0;
  };
  s.p50_ms = at(0.50);
  s.p99_ms = at(0.99);
  s.max_ms = micros.back() / 1000.0;
  return s;
}

inline nlohmann::json ToJson(const LatencySummary& s) {
  return {{"p50_ms", s.p50_ms}, {"p99_ms", s.p99_ms}, {"max_ms", s.max_ms}, {"count", s.count}};
}

inline void AppendResult(const std::string& path, const nlohmann::json& result) {
  if (path.empty()) return;
  std::ofstream(path, std::ios::app) << result.dump() << "\n";
}

}  // namespace freshet::bench
