// Small helpers shared by the benchmarks: latency percentiles, JSON output.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace freshet::bench {

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
