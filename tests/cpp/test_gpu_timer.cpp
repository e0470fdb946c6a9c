// The device-event pool (profilemate/gpu_timer.hpp) on a machine without a GPU.
//
// FAKE DRIVER: the real driver library is absent here, so the pool logic (pair hand-over, oldest
// first, no waiting, exhaustion, abandoned brackets, capture refusal, the final drain) is driven
// through an injected GpuDriver table whose events are plain counters: an event "completes" when
// the test says the fake device has reached it. What the real driver does with real events is not
// tested here (that needs a GPU; see docs/PROBES.md, forward_timing).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "profilemate/gpu_timer.hpp"

namespace pm = profilemate;

namespace {

struct FakeDevice {
  // Event handles are 1-based indices into `recorded_at`; the device "position" is a sequence
  // number: an event recorded at sequence k is complete once position >= k.
  std::vector<long> recorded_at{0};  // [0] unused
  std::map<long, double> time_at;    // sequence -> device time (ms) when it was reached
  long seq = 0;
  long position = 0;
  int queries = 0;
  int waits = 0;  // any blocking call would count here; the pool must make none
  bool capturing = false;
  bool no_context = false;
  int created = 0;
  int destroyed = 0;
};
FakeDevice* dev = nullptr;
int ctx_token = 42;

int f_ctx_get(void** ctx) {
  *ctx = dev->no_context ? nullptr : &ctx_token;
  return 0;
}
int f_ctx_set(void* ctx) { return ctx == &ctx_token ? 0 : 1; }
int f_create(void** ev, unsigned) {
  dev->recorded_at.push_back(-1);
  *ev = reinterpret_cast<void*>(dev->recorded_at.size() - 1);
  ++dev->created;
  return 0;
}
int f_destroy(void*) {
  ++dev->destroyed;
  return 0;
}
int f_record(void* ev, void*) {
  dev->recorded_at[reinterpret_cast<std::size_t>(ev)] = ++dev->seq;
  dev->time_at[dev->seq] = static_cast<double>(dev->seq) * 1.5;  // 1.5 ms of device work each
  return 0;
}
int f_query(void* ev) {
  ++dev->queries;
  const long at = dev->recorded_at[reinterpret_cast<std::size_t>(ev)];
  return (at >= 0 && dev->position >= at) ? 0 : pm::kGpuNotReady;
}
int f_elapsed(float* ms, void* a, void* b) {
  const long sa = dev->recorded_at[reinterpret_cast<std::size_t>(a)];
  const long sb = dev->recorded_at[reinterpret_cast<std::size_t>(b)];
  if (dev->position < sb) return pm::kGpuNotReady;
  *ms = static_cast<float>(dev->time_at[sb] - dev->time_at[sa]);
  return 0;
}
int f_capturing(void*, int* status) {
  *status = dev->capturing ? 1 : 0;
  return 0;
}

pm::GpuDriver fake_driver() {
  pm::GpuDriver d;
  d.ctx_get_current = f_ctx_get;
  d.ctx_set_current = f_ctx_set;
  d.event_create = f_create;
  d.event_destroy = f_destroy;
  d.event_record = f_record;
  d.event_query = f_query;
  d.event_elapsed_ms = f_elapsed;
  d.stream_is_capturing = f_capturing;
  return d;
}

std::vector<pm::GpuTimerRow>* rows = nullptr;
void capture_row(const pm::GpuTimerRow& r) { rows->push_back(r); }

class GpuTimer : public ::testing::Test {
 protected:
  void SetUp() override {
    dev = &device;
    rows = &written;
    pm::gpu_timer_reset();
    pm::gpu_timer_set_row_sink(capture_row);
  }
  void TearDown() override {
    pm::gpu_timer_reset();
    pm::gpu_timer_set_row_sink(nullptr);
    dev = nullptr;
    rows = nullptr;
  }
  // One bracket: begin, end with values (step, tokens, gpu slot 2 = NaN placeholder).
  std::int64_t bracket(std::int64_t step) {
    const std::int64_t p = pm::gpu_timer_begin(0x1234);
    const double vals[3] = {static_cast<double>(step), 7, 0};
    pm::gpu_timer_end(p, 0x1234, 5, 6, step, 0, 1000 * step, 10, vals, 3, 2);
    return p;
  }
  FakeDevice device;
  std::vector<pm::GpuTimerRow> written;
};

}  // namespace

TEST_F(GpuTimer, MissingLibraryDisablesWithAReasonAndEndWritesAtOnce) {
  const std::string why = pm::gpu_timer_open("libprofilemate-no-such-driver.so.1");
  EXPECT_NE(why.find("not loadable"), std::string::npos) << why;
  EXPECT_FALSE(pm::gpu_timer_enabled());
  EXPECT_EQ(pm::gpu_timer_begin(1), -1);
  const double vals[2] = {3, 0};
  pm::gpu_timer_end(-1, 1, 5, 6, 9, 0, 100, 10, vals, 2, 1);
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].step, 9);
  EXPECT_EQ(written[0].values[0], 3);
  EXPECT_TRUE(std::isnan(written[0].values[1]));  // device time empty, not zero
  EXPECT_EQ(pm::gpu_timer_stats().reason, why);
}

TEST_F(GpuTimer, RowsWaitForTheDeviceAndComeOutOldestFirstWithItsTime) {
  ASSERT_EQ(pm::gpu_timer_open_with(fake_driver(), 8), "");
  EXPECT_EQ(device.created, 0);  // events are made lazily, in the first forward's context
  EXPECT_EQ(bracket(1), 0);
  EXPECT_EQ(device.created, 16);
  EXPECT_EQ(bracket(2), 1);
  EXPECT_EQ(bracket(3), 2);
  EXPECT_TRUE(written.empty());         // parked, not written
  EXPECT_EQ(pm::gpu_timer_poll(), 0u);  // the device has reached nothing yet: no row, no wait
  device.position = 4;                  // end of step 2 (events 3, 4)
  EXPECT_EQ(pm::gpu_timer_poll(), 2u);
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(written[0].step, 1);
  EXPECT_EQ(written[1].step, 2);
  EXPECT_DOUBLE_EQ(written[0].values[2], 1.5);  // end - start of the fake device clock
  EXPECT_EQ(written[0].ts_ns, 1000);
  EXPECT_EQ(written[0].dur_ns, 10);
  EXPECT_EQ(written[0].nvalues, 3);
  device.position = 100;
  EXPECT_EQ(pm::gpu_timer_poll(), 1u);
  EXPECT_EQ(written.back().step, 3);
  const auto st = pm::gpu_timer_stats();
  EXPECT_EQ(st.completed, 3u);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(device.waits, 0);
}

TEST_F(GpuTimer, AFullPoolWritesTheRowWithoutDeviceTimeAndCountsIt) {
  ASSERT_EQ(pm::gpu_timer_open_with(fake_driver(), 2), "");
  EXPECT_EQ(bracket(1), 0);
  EXPECT_EQ(bracket(2), 1);
  EXPECT_EQ(bracket(3), -1);  // both pairs parked
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].step, 3);
  EXPECT_TRUE(std::isnan(written[0].values[2]));
  EXPECT_EQ(pm::gpu_timer_stats().exhausted, 1u);
  device.position = 100;
  EXPECT_EQ(pm::gpu_timer_poll(), 2u);
  EXPECT_EQ(bracket(4), 0);  // pairs are reused once written
}

TEST_F(GpuTimer, ABracketThatNeverEndedIsHandedBackAtTheNextBegin) {
  ASSERT_EQ(pm::gpu_timer_open_with(fake_driver(), 4), "");
  EXPECT_EQ(pm::gpu_timer_begin(1), 0);  // the bracketed call raised: no end()
  EXPECT_EQ(bracket(2), 1);
  device.position = 100;
  EXPECT_EQ(pm::gpu_timer_poll(), 1u);
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].step, 2);
  EXPECT_EQ(pm::gpu_timer_stats().abandoned, 1u);
}

TEST_F(GpuTimer, NeverRecordsIntoAStreamBeingCaptured) {
  ASSERT_EQ(pm::gpu_timer_open_with(fake_driver(), 4), "");
  device.capturing = true;
  const long before = device.seq;
  EXPECT_EQ(bracket(1), -1);
  EXPECT_EQ(device.seq, before);  // no event recorded
  ASSERT_EQ(written.size(), 1u);
  EXPECT_TRUE(std::isnan(written[0].values[2]));
  EXPECT_EQ(pm::gpu_timer_stats().skipped_capturing, 1u);
}

TEST_F(GpuTimer, FinalPollWritesUnfinishedRowsWithoutWaiting) {
  ASSERT_EQ(pm::gpu_timer_open_with(fake_driver(), 4), "");
  bracket(1);
  bracket(2);
  device.position = 2;
  EXPECT_EQ(pm::gpu_timer_poll(true), 2u);
  ASSERT_EQ(written.size(), 2u);
  EXPECT_DOUBLE_EQ(written[0].values[2], 1.5);
  EXPECT_TRUE(std::isnan(written[1].values[2]));
  EXPECT_EQ(pm::gpu_timer_stats().unfinished, 1u);
}

TEST_F(GpuTimer, NoContextDisablesWithAReason) {
  ASSERT_EQ(pm::gpu_timer_open_with(fake_driver(), 4), "");
  device.no_context = true;
  EXPECT_EQ(bracket(1), -1);
  EXPECT_FALSE(pm::gpu_timer_enabled());
  EXPECT_NE(pm::gpu_timer_stats().reason.find("context"), std::string::npos);
  ASSERT_EQ(written.size(), 1u);  // the row is still written, without device time
}

TEST_F(GpuTimer, ProducerAndCollectorThreadsHandOverEveryRow) {
  // A collector thread polls while the producer brackets; the fake device advances in between.
  // Every bracket ends up written exactly once, in order. The fake device (and the row capture)
  // are not thread-safe, so each side holds `mu` around its calls: this checks the interleaving
  // of the pair states, not lock-free concurrency (the real states are atomics; TSan runs it).
  ASSERT_EQ(pm::gpu_timer_open_with(fake_driver(), 16), "");
  std::mutex mu;  // the fake device is not thread-safe; the real driver is
  std::atomic<bool> done{false};
  std::thread collector([&] {
    while (!done.load()) {
      std::lock_guard<std::mutex> l(mu);
      device.position = device.seq;
      pm::gpu_timer_poll();
    }
  });
  int recorded = 0;
  for (int i = 1; i <= 2000; ++i) {
    std::lock_guard<std::mutex> l(mu);
    bracket(i);
    ++recorded;
  }
  done = true;
  collector.join();
  device.position = device.seq;
  pm::gpu_timer_poll(true);
  // Exactly once each (a row that found the pool full is written at once, so not in step order).
  ASSERT_EQ(static_cast<int>(written.size()), recorded);
  std::vector<std::int64_t> steps;
  for (const auto& r : written) steps.push_back(r.step);
  std::sort(steps.begin(), steps.end());
  for (int i = 0; i < recorded; ++i) ASSERT_EQ(steps[i], i + 1);
  const auto st = pm::gpu_timer_stats();
  EXPECT_EQ(st.completed + st.exhausted, static_cast<std::uint64_t>(recorded));
}
