// Golden output tests: fixed events (fixed pid, tids, session start, timestamps and strings) go
// through the real Pipeline, and every file it writes (<table>.csv, trace.json) plus
// render_summary()'s text is compared BYTE FOR BYTE with tests/cpp/golden/<case>/. The set of
// files must match too. Interned and table ids never reach the output (names are printed), so the
// process-global interner and table registry may hold anything else; the tables here have names of
// their own ("golden_*") so no other test can define them differently.
//
// To regenerate the golden files on purpose (after a deliberate format change), run
//   PROFILEMATE_UPDATE_GOLDEN=1 build/cpp-tests/profilemate_tests --gtest_filter='Golden.*'
// which rewrites tests/cpp/golden/ in the source tree; review `git diff tests/cpp/golden` before
// committing it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "collector/pipeline.hpp"
#include "profilemate/engine.hpp"
#include "profilemate/interner.hpp"
#include "profilemate/table.hpp"
#include "sinks/summary.hpp"
#include "test_util.hpp"

namespace pm = profilemate;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kPid = 4242;
constexpr std::int64_t kStart = 1'000'000'000'000;  // session start: 1000 s of CLOCK_MONOTONIC
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

using Files = std::map<std::string, std::string>;  // file name -> bytes

pm::Event event(pm::EventKind kind, std::uint32_t table, std::uint32_t name, std::int64_t ts,
                std::int64_t dur, std::int64_t step, std::uint32_t ctx, double a0 = 0,
                double a1 = 0, double a2 = 0, double a3 = 0) {
  pm::Event e{};
  e.ts_ns = ts;
  e.dur_ns = dur;
  e.args[0] = a0;
  e.args[1] = a1;
  e.args[2] = a2;
  e.args[3] = a3;
  e.name = name;
  e.ctx = ctx;
  e.meta = pm::Event::pack_meta(step, table, kind);
  return e;
}

double id_arg(std::string_view s) { return static_cast<double>(pm::intern(s)); }

pm::ProcessInfo process_info(const std::string& dir, std::string label) {
  pm::ProcessInfo info;
  info.pid = kPid;
  info.label = std::move(label);
  info.process_dir = dir;
  info.session_start_ns = kStart;
  return info;
}

// Every file the pipeline left in dir, plus summary.json rendered with a fixed process_dir (the
// files themselves go to a temporary folder).
Files collect(const std::string& dir, const pm::Pipeline& p, pm::SummaryFacts facts) {
  Files files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    files[entry.path().filename().string()] = pmtest::read_file(entry.path().string());
  }
  pm::ProcessInfo shown = p.info();
  shown.process_dir = "/golden/" + shown.label + "-4242";
  files["summary.json"] = pm::render_summary(shown, p.aggregates(), facts,
                                             pm::TableRegistry::global(), pm::Interner::global());
  return files;
}

pm::SummaryFacts fixed_facts(const pm::Pipeline& p) {
  pm::SummaryFacts f;
  f.version =
      "1.2.3-golden";  // the real one is profilemate::version(); fixed so bumps do not matter
  f.written_rows = p.written_rows();
  f.invalid_events = p.invalid_events();
  f.clock_monotonic_ns = kStart + 123'456;
  f.clock_realtime_ns = 1'700'000'000'123'456'789;
  f.written_at_ns = kStart + 5'000'000'000;
  f.final = true;
  return f;
}

// The "basic" case: spans, instants and counters from three threads, every column source, and the
// strings and numbers that need care (CSV quoting, JSON escaping, non-finite and huge numbers).
Files run_basic(const std::string& dir) {
  const auto ops = pm::define_table("golden_ops", {{"timestamp_sec", "ts_sec"},
                                                   {"operation", "name"},
                                                   {"duration_ms", "dur_ms"},
                                                   {"context", "ctx"},
                                                   {"step", "step"}});
  // Every column source. Numbers and string ids share the argument slots, and ids depend on what
  // else the process interned, so a0..a3 (numbers) and s0..s3 (string ids) are separate tables.
  const auto nums = pm::define_table("golden_numbers", {{"ts", "ts_sec"},
                                                        {"end", "end_sec"},
                                                        {"ms", "dur_ms"},
                                                        {"us", "dur_us"},
                                                        {"step", "step"},
                                                        {"name", "name"},
                                                        {"ctx", "ctx"},
                                                        {"a0 \"x\"", "a0"},
                                                        {"a1,y", "a1"},
                                                        {"a2", "a2"},
                                                        {"a3", "a3"},
                                                        {"pid", "pid"},
                                                        {"tid", "tid"}});
  const auto strs = pm::define_table("golden_strings", {{"ts", "ts_sec"},
                                                        {"name", "name"},
                                                        {"s0", "s0"},
                                                        {"s1", "s1"},
                                                        {"s2", "s2"},
                                                        {"s3", "s3"},
                                                        {"step", "step"},
                                                        {"tid", "tid"}});
  const auto counters =
      pm::define_table("golden_counters", {{"ts", "ts_sec"}, {"name", "name"}, {"kv usage", "a0"}});
  const auto fwd = pm::intern("forward");
  const auto tricky = pm::intern("decode, \"fast\"\npath");            // comma, quotes, newline
  const auto ctl = pm::intern("ctl\x01\x1f\x7f tab\t cr\r bs\\ end");  // control characters
  const auto uni = pm::intern("ünïcode ✓ 日本");                       // non-ASCII passes through
  const auto prefill = pm::intern("prefill");
  const auto kv = pm::intern("kv_cache");
  const auto preempted = pm::intern("preempted");

  pm::Pipeline p(process_info(dir, "wörker \"1\""), /*trace=*/true);
  EXPECT_TRUE(p.open());

  // Thread 101: spans on the CSV-like table, covering steps, contexts and rounding.
  p.on_thread(101, "main");
  const std::vector<pm::Event> t1 = {
      event(pm::EventKind::kSpan, ops, fwd, kStart + 1'500'000'000, 2'345'678, 7, tricky),
      event(pm::EventKind::kSpan, ops, fwd, kStart + 2'000'000'000, 1'000'000, -1, 0),
      event(pm::EventKind::kSpan, ops, uni, kStart + 1'234'567'500, 999, 0, prefill),  // rounds up
      event(pm::EventKind::kSpan, ops, ctl, kStart - 1'500, -5, 140737488355327,
            ctl),  // before start
      event(pm::EventKind::kInstant, ops, preempted, kStart + 3'000'000'000, 0, 12, 0),
  };
  EXPECT_TRUE(p.consume(t1.data(), t1.size(), 101));

  // Thread 202 (non-ASCII and control characters in its name): every column source.
  p.on_thread(202, "wörker\t\x01");
  const std::vector<pm::Event> t2 = {
      event(pm::EventKind::kSpan, nums, fwd, kStart + 1'000'000, 2'500, 3, tricky, 42, 0.25, -1,
            1e20),
      event(pm::EventKind::kSpan, nums, tricky, kStart + 10'000'000, 1'500'000'000, -1, 0, kNaN,
            kInf, -kInf, -2.5),
      event(pm::EventKind::kSpan, nums, ctl, kStart + 20'000'000, 1, 99, uni, 1e300,
            9007199254740992.0, 9007199254740991.0, -0.0),
      event(pm::EventKind::kSpan, nums, fwd, kStart + 30'000'000, 0, 5, 0, 0.1, 5e-324, -7,
            4294967296.0),
      event(pm::EventKind::kInstant, nums, preempted, kStart + 5'000'000, 0, 4, 0, -1e-7,
            123456789012345.0, 1.5, 2e-300),
      // String slots: interned ids print their string; anything that is not an id prints "".
      event(pm::EventKind::kInstant, strs, preempted, kStart + 5'000'000, 0, 4, 0, id_arg("req-1"),
            id_arg("req \"2\",x"), id_arg("ünï\n"), 0),
      event(pm::EventKind::kInstant, strs, uni, kStart + 6'000'000, 0, -1, 0, 0.5, -1, 1e12,
            4294967295.0),
      event(pm::EventKind::kSpan, strs, fwd, kStart + 6'500'000, 10, 2, 0, kNaN, kInf, 3.5,
            id_arg("")),
  };
  EXPECT_TRUE(p.consume(t2.data(), t2.size(), 202));

  // Thread 303 (no name: the trace says "thread"): counters, and an event of an undefined table.
  p.on_thread(303, "");
  const std::vector<pm::Event> t3 = {
      event(pm::EventKind::kCounter, counters, kv, kStart + 7'000'000, 0, 5, 0, 0.75),
      event(pm::EventKind::kCounter, counters, kv, kStart + 8'000'000, 0, 6, 0, kNaN),
      event(pm::EventKind::kCounter, counters, tricky, kStart + 9'000'000, 0, -1, 0, -3),
      event(pm::EventKind::kSpan, pm::kMaxTables - 1, fwd, kStart, 1, 0, 0),  // never defined
  };
  EXPECT_TRUE(p.consume(t3.data(), t3.size(), 303));
  // Thread 101 again, after the others (rows of one table from two threads interleave as drained).
  const std::vector<pm::Event> t1b = {
      event(pm::EventKind::kSpan, ops, fwd, kStart + 4'000'000'000, 3'000'000, 8, prefill),
      event(pm::EventKind::kSpan, nums, fwd, kStart + 4'000'000'000, 3'000'000, 8, prefill, 1, 2, 3,
            4),
      event(pm::EventKind::kInstant, strs, kv, kStart + 4'000'000'000, 0, 8, 0, id_arg("forward"),
            id_arg("decode, \"fast\"\npath"), id_arg("ctl\x01\x1f\x7f tab\t cr\r bs\\ end"),
            id_arg("ünïcode ✓ 日本")),
  };
  EXPECT_TRUE(p.consume(t1b.data(), t1b.size(), 101));
  EXPECT_TRUE(p.flush());
  EXPECT_TRUE(p.finish());

  pm::SummaryFacts facts = fixed_facts(p);
  facts.recorded = t1.size() + t2.size() + t3.size() + t1b.size();
  facts.dropped = 5;
  facts.lost = 2;
  facts.signal_snapshots_missed = 1;
  facts.dropped_by_table = {{"golden_ops", 3}, {"golden_counters", 2}};
  return collect(dir, p, facts);
}

// A session that recorded nothing: the trace's opening and closing, an empty summary.
Files run_empty(const std::string& dir) {
  pm::Pipeline p(process_info(dir, "idle"), /*trace=*/true);
  EXPECT_TRUE(p.open());
  EXPECT_TRUE(p.flush());
  EXPECT_TRUE(p.finish());
  pm::SummaryFacts facts = fixed_facts(p);
  facts.final = false;
  return collect(dir, p, facts);
}

// Wide rows (a0..a15, s-columns past a3): a head plus its continuation events, one row split
// across two drained runs (the ring's wrap-around), and a stray continuation (counted invalid).
Files run_wide(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> cols = {{"step", "step"}, {"name", "name"}};
  for (int i = 0; i < 16; ++i) {
    cols.emplace_back("v" + std::to_string(i), (i == 9 ? "s" : "a") + std::to_string(i));
  }
  cols.emplace_back("request", "text");
  const auto wide = pm::define_table("golden_wide", cols);
  const auto row = pm::intern("row");
  const auto reason = id_arg("kv_cache");
  auto ext = [&](std::int64_t step, double a0, double a1, double a2, double a3) {
    return event(pm::EventKind::kRowExt, wide, row, kStart, 0, step, 0, a0, a1, a2, a3);
  };
  auto head = [&](std::int64_t step, std::uint32_t n_ext, double base) {
    pm::Event e = event(pm::EventKind::kInstant, wide, row, kStart + step * 1000, 0, step, 0, base,
                        base + 1, base + 2, base + 3);
    e.meta = pm::Event::pack_meta(step, wide, pm::EventKind::kInstant, n_ext);
    return e;
  };
  pm::Pipeline p(process_info(dir, "wide"), /*trace=*/true);
  EXPECT_TRUE(p.open());
  p.on_thread(7, "engine");
  const std::vector<pm::Event> run1 = {
      head(1, 3, 0),          ext(1, 4, 5, 6, 7),    ext(1, 8, reason, 10, 11),
      ext(1, 12, 13, 14, 15), head(2, 0, 20),         // four values only: the rest print 0
      ext(2, 99, 99, 99, 99),                         // a continuation without its head: not a row
      head(3, 2, 30),         ext(3, 34, 35, 36, 37)  // ... its second continuation wraps around
  };
  EXPECT_TRUE(p.consume(run1.data(), run1.size(), 7));
  const std::vector<pm::Event> run2 = {ext(3, 38, reason, 40, 41), head(4, 1, 50),
                                       ext(4, 54, 55, 56, 57)};
  EXPECT_TRUE(p.consume(run2.data(), run2.size(), 7));
  // Rows with text (a request id, CSV/JSON-escaped on output), built by the real producer code
  // path into a small ring and drained the way the collector does: a 100-byte text takes two text
  // continuations, a 130-byte one is cut at kMaxRowText, and the last row wraps the ring.
  {
    pm::Ring ring(16, 7, "engine");
    const double v[5] = {1, 2, 3, 4, 5};
    const std::string long_id = "cmpl-" + std::string(95, 'x');  // 100 bytes
    const std::string cut = std::string(130, 'y');
    auto put = [&](std::int64_t step, const double* vals, int n, std::string_view text) {
      pm::record_row_into(ring, pm::EventKind::kInstant, wide, row, kStart + step * 1000, 0, step,
                          0, vals, n, text);
    };
    put(5, v, 2, "req-\"5\", a,b");  // quotes and commas
    put(6, v, 5, long_id);
    auto drain = [&] {
      ring.drain([&](const pm::Event* ev, std::size_t k) { EXPECT_TRUE(p.consume(ev, k, 7)); });
    };
    drain();
    for (int k = 0; k < 4; ++k) put(100 + k, v, 5, "");  // 4 x 2 slots: the head is now at 14
    drain();
    put(7, v, 0, cut);  // head + 2 text slots at 14, 15, 0: wraps the ring
    put(8, v, 1, "");
    drain();
  }
  EXPECT_EQ(p.invalid_events(), 1u);
  EXPECT_TRUE(p.finish());
  pm::SummaryFacts facts = fixed_facts(p);
  facts.recorded = 12;
  return collect(dir, p, facts);
}

// Where two texts first differ, with the line there, for a readable failure.
std::string first_difference(const std::string& want, const std::string& got) {
  std::size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  const std::size_t line_start = want.rfind('\n', i == 0 ? 0 : i - 1);
  const std::size_t from = line_start == std::string::npos ? 0 : line_start + 1;
  const auto line_of = [&](const std::string& s) {
    const std::size_t end = s.find('\n', from);
    return from >= s.size() ? std::string("<end of file>") : s.substr(from, end - from);
  };
  return "first difference at byte " + std::to_string(i) + " (line " +
         std::to_string(1 + std::count(want.begin(), want.begin() + static_cast<long>(i), '\n')) +
         ")\n  golden: " + line_of(want) + "\n  actual: " + line_of(got) + "\n  sizes: golden " +
         std::to_string(want.size()) + ", actual " + std::to_string(got.size());
}

void check_against_golden(const std::string& name, const Files& actual) {
  const fs::path dir = fs::path(PROFILEMATE_GOLDEN_DIR) / name;
  const char* update = std::getenv("PROFILEMATE_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& [file, bytes] : actual) {
      std::ofstream(dir / file, std::ios::binary) << bytes;
    }
    std::cerr << "[golden] rewrote " << dir << " (" << actual.size() << " files)\n";
    return;
  }
  ASSERT_TRUE(fs::is_directory(dir)) << dir << " is missing; see the top of " << __FILE__;
  Files golden;
  for (const auto& entry : fs::directory_iterator(dir)) {
    golden[entry.path().filename().string()] = pmtest::read_file(entry.path().string());
  }
  for (const auto& [file, bytes] : golden) {
    const auto it = actual.find(file);
    if (it == actual.end()) {
      ADD_FAILURE() << name << "/" << file << ": in the golden folder, not written";
    } else if (it->second != bytes) {
      ADD_FAILURE() << name << "/" << file
                    << " differs from the golden file: " << first_difference(bytes, it->second);
    }
  }
  for (const auto& [file, bytes] : actual) {
    if (golden.count(file) == 0) ADD_FAILURE() << name << "/" << file << ": written, not golden";
  }
}

}  // namespace

TEST(Golden, Basic) {
  pmtest::TempDir tmp;
  check_against_golden("basic", run_basic(tmp.path()));
}

TEST(Golden, WideRows) {
  pmtest::TempDir tmp;
  check_against_golden("wide", run_wide(tmp.path()));
}

TEST(Golden, Empty) {
  pmtest::TempDir tmp;
  check_against_golden("empty", run_empty(tmp.path()));
}
