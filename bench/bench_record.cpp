// Micro benchmarks of the event engine. Figures and the commands that made them:
// docs/PERFORMANCE.md. Targets (issue 3): recording one event <= 2x one clock read;
// collector + CSV sink >= 5M events/s on one core.
#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "collector/pipeline.hpp"
#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"
#include "profilemate/internal/ring.hpp"

namespace pm = profilemate;
namespace fs = std::filesystem;

namespace {

std::string bench_dir(const char* what) {
  const fs::path p = fs::temp_directory_path() /
                     ("profilemate-bench-" + std::string(what) + "-" + std::to_string(::getpid()));
  fs::create_directories(p);
  return p.string();
}

std::uint32_t bench_table() {
  return pm::define_table("bench_spans", {{"timestamp_sec", "ts_sec"},
                                          {"step", "step"},
                                          {"operation", "name"},
                                          {"duration_ms", "dur_ms"},
                                          {"num_tokens", "a0"},
                                          {"batch_size", "a1"},
                                          {"context", "ctx"}});
}

void BM_clock_gettime(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(pm::now_ns());
}
BENCHMARK(BM_clock_gettime);

void BM_rdtsc(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(__rdtsc());
}
BENCHMARK(BM_rdtsc);

// Records through the public API with the collector running. The ring is made large and drained
// (flush(), outside the timed region) every half-ring, so every timed event takes the normal
// "slot free" path, never the drop path; the "dropped" counter proves it.
template <bool kWithClock>
void record_bench(benchmark::State& state) {
  const std::string dir = bench_dir(kWithClock ? "record-clock" : "record");
  pm::StartOptions options;
  options.session_dir = dir;
  options.label = "bench";
  options.ring_capacity = 1 << 20;
  options.trace = false;
  pm::start(options);
  const std::uint32_t table = bench_table();
  const std::uint32_t name = pm::intern("forward");
  const std::uint32_t ctx = pm::intern("decode");
  std::int64_t ts = pm::now_ns();
  std::int64_t i = 0;
  for (auto _ : state) {
    if (kWithClock) ts = pm::now_ns();
    pm::record_span(table, name, ts, 1234, i, ctx, 1.0, 2.0, 0.0, 0.0);
    if ((++i & ((1 << 19) - 1)) == 0) {
      state.PauseTiming();
      pm::flush();
      state.ResumeTiming();
    }
  }
  pm::flush();
  const auto st = pm::stats();
  state.counters["dropped"] = static_cast<double>(st.dropped);
  pm::stop();
  fs::remove_all(dir);
}
void BM_record_span(benchmark::State& state) { record_bench<false>(state); }
void BM_record_span_with_clock(benchmark::State& state) { record_bench<true>(state); }
BENCHMARK(BM_record_span);
BENCHMARK(BM_record_span_with_clock);

// The collector's work on one core: drain a full ring, aggregate, format CSV (and optionally the
// trace), hand the bytes to write(2). Ring filling happens outside the timed region.
void collector_bench(benchmark::State& state, bool trace) {
  const std::string dir = bench_dir(trace ? "collector-trace" : "collector");
  const std::uint32_t table = bench_table();
  const std::uint32_t names[4] = {pm::intern("forward"), pm::intern("sample"),
                                  pm::intern("schedule"), pm::intern("prepare_inputs")};
  const std::uint32_t ctx = pm::intern("decode");
  constexpr std::size_t kCap = 1 << 16;
  pm::Ring ring(kCap, 4242, "bench");
  pm::ProcessInfo info;
  info.pid = 4242;
  info.label = "bench";
  info.process_dir = dir;
  info.session_start_ns = pm::now_ns();
  auto pipeline = std::make_unique<pm::Pipeline>(info, trace);
  pipeline->open();
  std::int64_t ts = info.session_start_ns;
  std::int64_t step = 0;
  std::uint64_t iters = 0;
  for (auto _ : state) {
    state.PauseTiming();
    if (++iters % 32 == 0) {  // start new files now and then, so the benchmark stays ~100 MB
      pipeline = std::make_unique<pm::Pipeline>(info, trace);
      pipeline->open();
    }
    for (std::size_t k = 0; k < kCap; ++k) {
      pm::Event e{};
      ts += 2500 + static_cast<std::int64_t>(k & 1023);
      e.ts_ns = ts;
      e.dur_ns = 180000 + static_cast<std::int64_t>((k * 7919) & 65535);
      e.args[0] = static_cast<double>(k & 511);
      e.args[1] = static_cast<double>(k & 63);
      e.name = names[k & 3];
      e.ctx = ctx;
      e.meta = pm::Event::pack_meta(step += (k & 3) == 0, table, pm::EventKind::kSpan);
      ring.push(e);
    }
    state.ResumeTiming();
    ring.drain([&](const pm::Event* ev, std::size_t n) { pipeline->consume(ev, n, ring.tid()); });
    pipeline->flush();
  }
  if (pipeline->failed()) state.SkipWithError("write error");
  state.SetItemsProcessed(static_cast<std::int64_t>(iters * kCap));
  pipeline.reset();
  fs::remove_all(dir);
}
void BM_collector_csv_throughput(benchmark::State& state) { collector_bench(state, false); }
void BM_collector_csv_trace_throughput(benchmark::State& state) { collector_bench(state, true); }
BENCHMARK(BM_collector_csv_throughput)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_collector_csv_trace_throughput)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
