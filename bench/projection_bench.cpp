// The view's per-event CPU cost without Kafka or a store: decoding the
// topic's JSON value and folding it into a declarative projection, for the
// two views of views_bench (an aggregate over 10,000 groups and a latest-row
// view with unique keys). Tells how much of a view's time is its own.
//
//   build/bench/projection_bench
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include "bench/view_workload.h"
#include "core/envelope.h"
#include "views/declarative_projection.h"
#include "views/rocksdb_view_store.h"

using namespace freshet;

namespace {

// views_bench's events, encoded as the topic holds them.
std::vector<std::string> Values(int count, int keys) {
  std::mt19937 rng(1);
  std::vector<std::string> values;
  for (int n = 0; n < count; ++n) values.push_back(EncodeEventValue(bench::BenchEvent(rng, keys, n)));
  return values;
}

// decode_only: nlohmann's DecodeEventValue alone (what views did before
// ApplyValue), for comparison.
void Run(benchmark::State& state, const char* definition, bool decode_only) {
  DeclarativeProjection projection(bench::ParseBenchView(definition));
  const std::vector<std::string> values = Values(100000, 10000);
  size_t i = 0;
  int64_t offset = 0;
  for (auto _ : state) {
    const std::string& value = values[i];
    if (++i == values.size()) i = 0;
    if (decode_only) {
      auto event = DecodeEventValue(value);
      benchmark::DoNotOptimize(event);
      continue;
    }
    int64_t ts = 0;
    Status st = projection.ApplyValue(value, 0, offset++, &ts);
    benchmark::DoNotOptimize(st);
    // A flush every 50,000 events, as views_bench's engine does at most.
    if (offset % 50000 == 0) benchmark::DoNotOptimize(projection.TakePending());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_NlohmannDecode(benchmark::State& state) { Run(state, bench::kAggregateView, true); }
void BM_ApplyValueAggregate(benchmark::State& state) { Run(state, bench::kAggregateView, false); }
void BM_ApplyValueLatest(benchmark::State& state) { Run(state, bench::kLatestView, false); }

// The store's side: one flush of 50,000 rows of either view written into
// RocksDB (a fresh database under /tmp), per row.
void WriteRocksDb(benchmark::State& state, const char* definition) {
  DeclarativeProjection projection(bench::ParseBenchView(definition));
  const std::vector<std::string> values = Values(200000, 10000);
  std::string dir = "/tmp/freshet-projection-bench.rocksdb";
  std::filesystem::remove_all(dir);
  auto store = RocksDbStore::Open(dir, {});
  auto view = RocksDbViewStore::Open(**store, "bench", projection.table());
  if (!view.ok()) {
    state.SkipWithError(view.status().message().c_str());
    return;
  }
  size_t i = 0;
  int64_t rows = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int n = 0; n < 50000; ++n, i = (i + 1) % values.size()) {
      int64_t ts = 0;
      (void)projection.ApplyValue(values[i], 0, static_cast<int64_t>(i), &ts);
    }
    std::vector<RowWrite> pending = projection.TakePending();
    rows += static_cast<int64_t>(pending.size());
    state.ResumeTiming();
    Status st = (*view)->Write(pending, {}, nullptr);
    if (!st.ok()) state.SkipWithError(st.message().c_str());
  }
  state.SetItemsProcessed(rows);
  view->reset();
  store->reset();
  std::filesystem::remove_all(dir);
}

void BM_RocksDbWriteAggregate(benchmark::State& state) { WriteRocksDb(state, bench::kAggregateView); }
void BM_RocksDbWriteLatest(benchmark::State& state) { WriteRocksDb(state, bench::kLatestView); }

BENCHMARK(BM_NlohmannDecode);
BENCHMARK(BM_RocksDbWriteAggregate)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RocksDbWriteLatest)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ApplyValueAggregate);
BENCHMARK(BM_ApplyValueLatest);

}  // namespace

BENCHMARK_MAIN();
