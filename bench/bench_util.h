// Small helpers shared by the benchmarks: latency percentiles, JSON output.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/kafka.h"

namespace freshet::bench {

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

struct LatencySummary {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  size_t count = 0;
};

inline LatencySummary Summarize(std::vector<int64_t> micros) {
  LatencySummary s;
  s.count = micros.size();
  if (micros.empty()) return s;
  std::sort(micros.begin(), micros.end());
  auto at = [&](double q) { return micros[std::min(micros.size() - 1, static_cast<size_t>(q * micros.size()))] / 1000.0; };
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
