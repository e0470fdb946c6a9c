// A record after the thread's exit guard ran (another thread_local's destructor, the main thread
// inside exit()) is dropped and counted, not written through a null ring. Each case runs in a fresh
// process (death test, "threadsafe" style: this binary re-executed for the one test), so the crash
// it guards against fails the expectation instead of killing the test binary.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "hardening_util.hpp"
#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"
#include "test_util.hpp"

namespace pm = profilemate;
using pmtest::finish;
using pmtest::hardening_options;
using pmtest::hardening_table;
using pmtest::process_dir_for;

namespace {

struct RecordsAtThreadExit {
  bool armed = false;
  std::uint32_t table = 0;
  ~RecordsAtThreadExit() {
    if (armed) pm::record_instant(table, pm::intern("late"), pm::now_ns());
  }
};

void record_from_a_thread_local_destructor(const std::string& dir) {
  pm::start(hardening_options(dir, "tls"));
  const std::uint32_t table = hardening_table();
  std::thread([table] {
    // Constructed before the thread's first event, so destroyed after the core's exit guard.
    static thread_local RecordsAtThreadExit late;
    late.table = table;
    late.armed = true;
    pm::record_instant(table, pm::intern("early"), pm::now_ns());
  }).join();
  pm::flush();
  pm::flush();
  const pm::Stats st = pm::stats();
  pm::stop();
  finish(st.recorded == 1 && st.lost == 1,
         "recorded=" + std::to_string(st.recorded) + " lost=" + std::to_string(st.lost));
}

void record_from_the_main_threads_thread_local_destructor_at_exit(const std::string& dir) {
  static thread_local RecordsAtThreadExit late;  // before this thread's first event
  pm::start(hardening_options(dir, "mainexit"));
  late.table = hardening_table();
  late.armed = true;
  pm::record_instant(late.table, pm::intern("early"), pm::now_ns());
  std::exit(0);  // runs this thread's thread_local destructors, then atexit (stop())
}

}  // namespace

TEST(HardeningDeathTest, RecordFromThreadLocalDestructorAfterExitGuardIsCountedNotACrash) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  pmtest::TempDir tmp;
  EXPECT_EXIT(record_from_a_thread_local_destructor(tmp.path()), testing::ExitedWithCode(0), "");
}

TEST(HardeningDeathTest, RecordFromMainThreadLocalDestructorDuringExitIsNotACrash) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  pmtest::TempDir tmp;
  EXPECT_EXIT(record_from_the_main_threads_thread_local_destructor_at_exit(tmp.path()),
              testing::ExitedWithCode(0), "");
}
