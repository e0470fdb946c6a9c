#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "json_check.hpp"
#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"
#include "test_util.hpp"

namespace pm = profilemate;
using pmtest::lines_of;
using pmtest::read_file;

namespace {

pm::StartOptions options(const std::string& dir, const std::string& label,
                         std::int64_t ring_capacity = 1024, std::int64_t flush_interval_ms = 100,
                         bool trace = false, std::int64_t session_start_ns = 0) {
  pm::StartOptions o;
  o.session_dir = dir;
  o.label = label;
  o.ring_capacity = ring_capacity;
  o.flush_interval_ms = flush_interval_ms;
  o.trace = trace;
  o.session_start_ns = session_start_ns;
  return o;
}

std::uint32_t ops_table() {
  return pm::define_table("cpu_operations_timing", {{"timestamp_sec", "ts_sec"},
                                                    {"operation", "name"},
                                                    {"duration_ms", "dur_ms"},
                                                    {"context", "ctx"},
                                                    {"step", "step"}});
}

// Checks every line of a trace file the way our readers do: "[" and "]" lines are structure; each
// other complete line, without its trailing comma, must be one JSON object.
std::size_t check_trace_lines(const std::string& text) {
  std::size_t events = 0;
  for (std::string line : lines_of(text)) {
    if (line == "[" || line == "]") continue;
    if (!line.empty() && line.back() == ',') line.pop_back();
    EXPECT_TRUE(pmtest::is_valid_json(line)) << line;
    EXPECT_EQ(line.front(), '{');
    ++events;
  }
  return events;
}

}  // namespace

// The whole engine end to end: start, record from two threads, stop. The exact bytes of CSV,
// trace.json and summary.json are pinned by test_golden.cpp (the Pipeline with fixed input); this
// test checks what only a real session does: the process dir, collection from threads, stats, the
// trace closed into strict JSON and a final summary.
TEST(Engine, WritesCsvTraceAndSummary) {
  pmtest::TempDir tmp;
  const std::int64_t t0 = pm::now_ns();
  const std::string dir = pm::start(options(tmp.path(), "worker", 1024, 20, true, t0));
  EXPECT_EQ(dir, tmp.path() + "/worker-" + std::to_string(::getpid()));
  EXPECT_TRUE(pm::enabled());
  const auto table = ops_table();
  const auto fwd = pm::intern("forward");
  const auto tricky = pm::intern("decode, \"fast\"\npath");
  pm::record_span(table, fwd, t0 + 1'500'000'000, 2'345'678, 7, tricky);
  pm::record_span(table, fwd, t0 + 2'000'000'000, 1'000'000);  // no step, no ctx
  pm::record_instant(table, pm::intern("preempted"), t0 + 5'000'000, 4);
  pm::record_counter(table, pm::intern("kv_usage"), t0 + 6'000'000, 0.75, 5);
  // Rows of one thread keep their order; across threads they do not, so the second thread
  // writes to a table of its own.
  const auto other = pm::define_table("other_thread", {{"step", "step"}, {"tid", "tid"}});
  std::thread([&] { pm::record_span(other, fwd, t0, 10, 1); }).join();
  pm::flush();
  auto st = pm::stats();
  EXPECT_EQ(st.recorded, 5u);
  EXPECT_EQ(st.dropped, 0u);
  EXPECT_EQ(st.written_rows, 5u);
  pm::stop();
  pm::stop();  // idempotent
  EXPECT_FALSE(pm::enabled());

  const auto ops = lines_of(read_file(dir + "/cpu_operations_timing.csv"));
  ASSERT_EQ(ops.size(), 1u + 4u + 1u);  // header, 4 rows, one with an embedded newline
  EXPECT_EQ(ops[0], "timestamp_sec,operation,duration_ms,context,step");
  EXPECT_EQ(ops[1], "1.500000,forward,2.345678,\"decode, \"\"fast\"\"");  // t0 is the session start
  const auto other_rows = lines_of(read_file(dir + "/other_thread.csv"));
  ASSERT_EQ(other_rows.size(), 2u);
  EXPECT_EQ(other_rows[1].substr(0, 2), "1,");
  EXPECT_NE(other_rows[1], "1," + std::to_string(::getpid()));  // another thread's tid

  const std::string trace = read_file(dir + "/trace.json");
  EXPECT_TRUE(pmtest::is_valid_json(trace));  // closed by stop(): strict JSON
  // events, process, 2 threads, end; in one process after other tests, rings those left behind
  // may add thread_name lines of their own.
  EXPECT_GE(check_trace_lines(trace), 5u + 1u + 2u + 1u);
  const auto count = [&](const std::string& what) {
    std::size_t n = 0;
    for (auto pos = trace.find(what); pos != std::string::npos; pos = trace.find(what, pos + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(count("{\"ph\":\"X\""), 3u);
  EXPECT_EQ(count("{\"ph\":\"i\""), 1u);
  EXPECT_EQ(count("{\"ph\":\"C\""), 1u);

  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_TRUE(pmtest::is_valid_json(summary)) << summary;
  EXPECT_NE(summary.find("\"final\": true"), std::string::npos);
  EXPECT_NE(summary.find("\"session_start_ns\": " + std::to_string(t0)), std::string::npos);
}

TEST(Engine, NoLossBelowCapacityFromManyThreads) {
  pmtest::TempDir tmp;
  const std::string dir = pm::start(options(tmp.path(), "p", 4096, 100, false));
  const auto table = ops_table();
  const auto name = pm::intern("op");
  constexpr int kThreads = 8, kEach = 2000;  // below each thread's ring capacity
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) pm::record_span(table, name, pm::now_ns(), i, i);
    });
  }
  for (auto& th : threads) th.join();
  pm::flush();
  pm::flush();  // the exited threads' rings are drained, then retired
  const auto st = pm::stats();
  EXPECT_EQ(st.recorded, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(st.dropped, 0u);
  EXPECT_EQ(st.written_rows, st.recorded);
  // All 8 threads exited, so their rings are freed; only this thread's may remain (earlier tests).
  EXPECT_EQ(st.rings, pm::detail::tls_ring != nullptr ? 1u : 0u);
  pm::stop();
  EXPECT_EQ(lines_of(read_file(dir + "/cpu_operations_timing.csv")).size(), 1u + kThreads * kEach);
}

TEST(Engine, DropsAreCountedExactlyPerTable) {
  pmtest::TempDir tmp;
  const std::string dir = pm::start(options(tmp.path(), "d", 64, 1000, false));
  const auto a = ops_table();
  const auto b = pm::define_table("other", {{"v", "a0"}});
  const auto name = pm::intern("op");
  constexpr int kBurst = 5000;  // far above the 64-slot ring: most of it must be dropped
  std::thread([&] {
    for (int i = 0; i < kBurst; ++i) pm::record_instant(i % 2 ? a : b, name, pm::now_ns());
  }).join();
  pm::flush();
  pm::flush();
  const auto st = pm::stats();
  EXPECT_EQ(st.recorded + st.dropped, static_cast<std::uint64_t>(kBurst));
  EXPECT_GT(st.dropped, 0u);
  EXPECT_EQ(st.written_rows, st.recorded);
  ASSERT_EQ(st.dropped_by_table.size(), 2u);
  EXPECT_EQ(st.dropped_by_table.at("cpu_operations_timing") + st.dropped_by_table.at("other"),
            st.dropped);
  pm::stop();
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_NE(summary.find("\"dropped\": " + std::to_string(st.dropped)), std::string::npos);
}

TEST(Engine, BadConfigNamesTheParameter) {
  pmtest::TempDir tmp;
  auto message = [&](std::int64_t cap, std::int64_t interval) -> std::string {
    try {
      pm::start(options(tmp.path(), "x", cap, interval, true));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    pm::stop();
    return "";
  };
  EXPECT_NE(message(-1, 100).find("ring_capacity must be a power of two"), std::string::npos);
  EXPECT_NE(message(0, 100).find("ring_capacity"), std::string::npos);
  EXPECT_NE(message(1000, 100).find("(got 1000)"), std::string::npos);
  EXPECT_NE(message(1024, 0).find("flush_interval_ms must be an integer from 1 to 1000"),
            std::string::npos);
  EXPECT_NE(message(1024, -5).find("flush_interval_ms"), std::string::npos);
  EXPECT_FALSE(pm::enabled());
}

TEST(Engine, UnwritableDirRaisesOsErrorAndStaysOff) {
  pmtest::TempDir tmp;
  const std::string blocker = tmp.path() + "/a-file";
  std::ofstream(blocker) << "x";
  try {
    pm::start(options(blocker + "/session", "w", 1024, 100, true));
    FAIL() << "expected OsError";
  } catch (const pm::OsError& e) {
    EXPECT_EQ(e.err(), ENOTDIR);
    EXPECT_NE(std::string(e.what()).find(blocker + "/session/w-"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(pm::enabled());
  pm::record_span(ops_table(), 1, 0, 0);  // a no-op, not a crash
  EXPECT_EQ(pm::process_dir(), "");
}

TEST(Engine, SecondStartIsAnErrorUntilStop) {
  pmtest::TempDir tmp;
  pm::start(options(tmp.path(), "s"));
  EXPECT_THROW(pm::start(options(tmp.path(), "s")), std::runtime_error);
  pm::stop();
  EXPECT_NO_THROW(pm::start(options(tmp.path(), "s2")));
  pm::stop();
}

TEST(Engine, RestartDoesNotReplayOldEvents) {
  pmtest::TempDir tmp;
  const auto table = ops_table();
  const auto dir1 = pm::start(options(tmp.path(), "r1"));
  pm::record_span(table, pm::intern("a"), pm::now_ns(), 1);
  pm::stop();
  const auto dir2 = pm::start(options(tmp.path(), "r2"));
  pm::record_span(table, pm::intern("b"), pm::now_ns(), 1);
  pm::flush();
  EXPECT_EQ(pm::stats().recorded, 1u);
  pm::stop();
  EXPECT_EQ(lines_of(read_file(dir1 + "/cpu_operations_timing.csv")).size(), 2u);
  const auto rows = lines_of(read_file(dir2 + "/cpu_operations_timing.csv"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_NE(rows[1].find(",b,"), std::string::npos);
}

TEST(Engine, UndefinedTableIsCountedNotWritten) {
  pmtest::TempDir tmp;
  pm::start(options(tmp.path(), "u"));
  pm::record_span(250, 1, 0, 0);   // id below the limit but never defined
  pm::record_span(9999, 1, 0, 0);  // beyond the limit
  pm::flush();
  EXPECT_EQ(pm::stats().invalid_events, 2u);
  EXPECT_EQ(pm::stats().written_rows, 0u);
  pm::stop();
}

TEST(Engine, RelabelMovesTheSessionToANewFolder) {
  pmtest::TempDir tmp;
  EXPECT_THROW(pm::relabel("nobody"), std::runtime_error);  // not started
  const auto table = ops_table();
  const std::int64_t t0 = pm::now_ns();
  const std::string a = pm::start(options(tmp.path(), "a", 1024, 100, false, t0));
  pm::record_span(table, pm::intern("in_a"), pm::now_ns(), 1);
  EXPECT_EQ(pm::relabel("a"), a);  // the same label: nothing happens
  EXPECT_THROW(pm::relabel("bad/label"), std::invalid_argument);
  EXPECT_TRUE(pm::enabled());
  const std::string b = pm::relabel("b");
  EXPECT_EQ(b, tmp.path() + "/b-" + std::to_string(::getpid()));
  EXPECT_EQ(pm::process_dir(), b);
  pm::record_span(table, pm::intern("in_b"), pm::now_ns(), 1);
  pm::stop();
  const auto rows_a = lines_of(read_file(a + "/cpu_operations_timing.csv"));
  const auto rows_b = lines_of(read_file(b + "/cpu_operations_timing.csv"));
  ASSERT_EQ(rows_a.size(), 2u);
  ASSERT_EQ(rows_b.size(), 2u);
  EXPECT_NE(rows_a[1].find(",in_a,"), std::string::npos);
  EXPECT_NE(rows_b[1].find(",in_b,"), std::string::npos);
  // The same time zero in both folders.
  const std::string zero = "\"session_start_ns\": " + std::to_string(t0);
  EXPECT_NE(read_file(a + "/summary.json").find(zero), std::string::npos);
  EXPECT_NE(read_file(b + "/summary.json").find(zero), std::string::npos);
}
