#include "core/metrics.h"

#include <cmath>
#include <map>
#include <sstream>

namespace freshet {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

double Histogram::Quantile(double q) const { return QuantileOf(BucketCounts(), q); }

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) counts[i] = buckets_[i].load(std::memory_order_relaxed);
  return counts;
}

double Histogram::QuantileOf(const std::vector<uint64_t>& counts, double q) const {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return 0;
  uint64_t target = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size() && i <= bounds_.size(); ++i) {
    seen += counts[i];
    if (seen >= target) return i < bounds_.size() ? bounds_[i] : INFINITY;
  }
  return INFINITY;
}

std::string Histogram::Render(const std::string& name, const std::string& labels) const {
  std::ostringstream out;
  std::string sep = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    out << name << "_bucket{" << sep << "le=\"" << bounds_[i] << "\"} " << cumulative << "\n";
  }
  cumulative += buckets_[bounds_.size()].load(std::memory_order_relaxed);
  out << name << "_bucket{" << sep << "le=\"+Inf\"} " << cumulative << "\n";
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out << name << "_sum" << braces << " " << sum_.load(std::memory_order_relaxed) << "\n";
  out << name << "_count" << braces << " " << count() << "\n";
  return out.str();
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};
}

Counter& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     const std::string& labels) {
  std::lock_guard lock(mu_);
  Counter& c = counters_.emplace_back();
  entries_.push_back({name, help, labels, "counter", &c, nullptr, nullptr});
  return c;
}

Gauge& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                 const std::string& labels) {
  std::lock_guard lock(mu_);
  Gauge& g = gauges_.emplace_back();
  entries_.push_back({name, help, labels, "gauge", nullptr, &g, nullptr});
  return g;
}

Histogram& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> bounds, const std::string& labels) {
  std::lock_guard lock(mu_);
  Histogram& h = histograms_.emplace_back(std::move(bounds));
  entries_.push_back({name, help, labels, "histogram", nullptr, nullptr, &h});
  return h;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  // Prometheus wants one HELP/TYPE block per metric name, samples together.
  std::map<std::string, std::vector<const Entry*>> by_name;
  std::vector<std::string> order;
  for (const auto& e : entries_) {
    if (!by_name.count(e.name)) order.push_back(e.name);
    by_name[e.name].push_back(&e);
  }
  std::ostringstream out;
  for (const auto& name : order) {
    const auto& group = by_name[name];
    out << "# HELP " << name << " " << group.front()->help << "\n";
    out << "# TYPE " << name << " " << group.front()->type << "\n";
    for (const Entry* e : group) {
      std::string braces = e->labels.empty() ? "" : "{" + e->labels + "}";
      if (e->counter) out << name << braces << " " << e->counter->value() << "\n";
      if (e->gauge) out << name << braces << " " << e->gauge->value() << "\n";
      if (e->histogram) out << e->histogram->Render(name, e->labels);
    }
  }
  return out.str();
}

}  // namespace freshet
