// Every lost event is counted (Stats::lost, summary.json), and flush() neither blocks others for
// its whole wait nor gives up silently.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "collector/state.hpp"
#include "hardening_util.hpp"
#include "profilemate/clock.hpp"
#include "profilemate/engine.hpp"
#include "test_util.hpp"

namespace pm = profilemate;
using pmtest::finish;
using pmtest::hardening_options;
using pmtest::hardening_table;
using pmtest::process_dir_for;
using pmtest::read_file;

// A producer that read the epoch before stop() and published after the collector's final drain:
// simulated by publishing straight into this thread's ring once the session is over.
TEST(Hardening, EventThatRacedStopIsCountedAsLost) {
  pmtest::TempDir tmp;
  const std::uint32_t table = hardening_table();
  pm::start(hardening_options(tmp.path(), "race1"));
  pm::record_instant(table, 1, pm::now_ns());  // this thread's ring for the session
  pm::stop();
  ASSERT_NE(pm::detail::tls_ring, nullptr);
  pm::Event late{};
  late.meta = pm::Event::pack_meta(-1, table, pm::EventKind::kInstant);
  ASSERT_TRUE(pm::detail::tls_ring->push(late));
  pm::start(hardening_options(tmp.path(), "race2"));
  pm::flush();
  const pm::Stats st = pm::stats();
  pm::stop();
  EXPECT_EQ(st.lost, 1u);
  EXPECT_EQ(st.recorded, 0u);
  EXPECT_EQ(st.written_rows, 0u);
  EXPECT_NE(read_file(process_dir_for(tmp.path(), "race2") + "/summary.json").find("\"lost\": 1,"),
            std::string::npos);
}

namespace {

// Holds the stats lock on a thread of its own (as a stats() caller would) until release(): the
// collector cannot publish a cycle meanwhile, so flush() cannot complete.
class StatsLockHolder {
 public:
  StatsLockHolder() : thread_([this] { run(); }) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return held_; });
  }
  ~StatsLockHolder() { release(); }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      release_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::lock_guard<std::mutex> stats(pm::collector::g().stats_mu);
    std::unique_lock<std::mutex> lock(mu_);
    held_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return release_; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  bool release_ = false;
  std::thread thread_;
};

}  // namespace

TEST(Hardening, TimedOutFlushWarnsOnce) {
  pmtest::TempDir tmp;
  auto& gl = pm::collector::g();
  const std::int64_t saved = gl.flush_timeout_ms.load();
  gl.flush_timeout_ms.store(200);
  pm::start(hardening_options(tmp.path(), "slow"));
  pm::record_instant(hardening_table(), 1, pm::now_ns());
  testing::internal::CaptureStderr();
  {
    StatsLockHolder hold;
    pm::flush();
    pm::flush();
  }
  const std::string err = testing::internal::GetCapturedStderr();
  gl.flush_timeout_ms.store(saved);
  pm::stop();
  const std::string line = "[profilemate " + std::to_string(::getpid()) + "] flush() timed out";
  EXPECT_NE(err.find(line), std::string::npos) << err;
  EXPECT_EQ(err.find(line), err.rfind(line)) << "warned more than once: " << err;
}

TEST(Hardening, FlushDoesNotHoldTheControlLockWhileWaiting) {
  pmtest::TempDir tmp;
  const std::string dir = pm::start(hardening_options(tmp.path(), "ctl"));
  pm::record_instant(hardening_table(), 1, pm::now_ns());
  StatsLockHolder hold;  // stalls flush() until released
  std::thread flusher([] { pm::flush(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // flush() is waiting now
  const std::int64_t t0 = pm::now_ns();
  const std::string seen = pm::process_dir();  // takes the control lock (as fork() does)
  const std::int64_t took_ms = (pm::now_ns() - t0) / 1'000'000;
  hold.release();
  flusher.join();
  pm::stop();
  EXPECT_EQ(seen, dir);
  EXPECT_LT(took_ms, 1000) << "the control lock was held by a waiting flush()";
}
