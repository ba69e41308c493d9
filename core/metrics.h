// Counters, gauges and histograms rendered in Prometheus text format.
// Updating a metric is lock-free and safe from any thread; registering one
// takes a lock and returns a reference that stays valid for the registry's life.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace freshet {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);
  std::string Render(const std::string& name, const std::string& labels) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // The smallest bucket bound below which `q` (0..1) of observations fall.
  double Quantile(double q) const;
  // Observations per bucket (not cumulative; the last is above every
  // bound): subtract two snapshots for a window of time.
  std::vector<uint64_t> BucketCounts() const;
  // Quantile() over `counts` as BucketCounts() answers them.
  double QuantileOf(const std::vector<uint64_t>& counts, double q) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, 0.5 ms to 10 s.
std::vector<double> LatencyBuckets();

class MetricsRegistry {
 public:
  // `labels` is rendered as-is inside braces: `view="stock_levels"`.
  Counter& AddCounter(const std::string& name, const std::string& help, const std::string& labels = "");
  Gauge& AddGauge(const std::string& name, const std::string& help, const std::string& labels = "");
  Histogram& AddHistogram(const std::string& name, const std::string& help, std::vector<double> bounds,
                          const std::string& labels = "");
  std::string RenderPrometheus() const;

 private:
  struct Entry {
    std::string name, help, labels, type;
    Counter* counter = nullptr;
    Gauge* gauge = nullptr;
    Histogram* histogram = nullptr;
  };
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
  std::deque<Counter> counters_;
  std::deque<Gauge> gauges_;
  std::deque<Histogram> histograms_;
};

}  // namespace freshet
