// What the report keeps of each table: one accumulator per (process, table), fed row by row while
// the file streams by, so memory depends on the number of distinct keys (operations, phases,
// descriptors, preempted requests, the slowest requests kept), not on the file's length.
//
// A new table is one small addition: a struct deriving from TableAcc with its columns (kColumns,
// and an enum naming their positions) and row(), one line in table_specs() (tables.cpp), and the
// lines of the summary that use it (sections in report.cpp). A table that is absent is left out.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "profilemate/histogram.hpp"
#include "report/csv_reader.hpp"

namespace profilemate::report {

struct Column {
  const char* name;
  bool required;  // a file without it is skipped with a warning; others read as empty
};

// One record, its fields found by column position in the table's kColumns (the file's own column
// order does not matter, and extra columns are ignored).
class Row {
 public:
  Row(Fields fields, const int* index, std::uint64_t* bad_values)
      : fields_(fields), index_(index), bad_(bad_values) {}
  std::string_view str(int col) const {
    const int i = index_[col];
    return i < 0 ? std::string_view() : fields_[static_cast<std::size_t>(i)];
  }
  // NaN when empty or absent; a field that is not a number is NaN too and counted.
  double num(int col) const;
  // An integer column (a step id): -1 when empty, absent or not a number.
  std::int64_t id(int col) const {
    const double v = num(col);
    return std::isfinite(v) ? static_cast<std::int64_t>(v) : -1;
  }

 private:
  Fields fields_;
  const int* index_;
  std::uint64_t* bad_;
};

// Durations in ms: count, total and the core's log-linear histogram (percentiles within 0.4%).
struct Dist {
  Histogram h;
  std::uint64_t n = 0;
  double total_ms = 0;
  void add_ms(double ms) {
    if (!std::isfinite(ms) || ms < 0) return;
    ++n;
    total_ms += ms;
    h.add(static_cast<std::int64_t>(std::llround(ms * 1e6)));
  }
  double p_ms(double q) const { return static_cast<double>(h.percentile(q)) / 1e6; }
  double max_ms() const { return static_cast<double>(h.max()) / 1e6; }
};

// Log-scale bins for a histogram chart: 8 per decade from 0.01 ms (bin 0) to 10^5 ms.
struct LogBins {
  static constexpr int kPerDecade = 8;
  static constexpr int kBins = 56;
  static constexpr double kLowMs = 0.01;
  std::uint64_t count[kBins] = {};
  void add(double ms);
  static double edge_ms(int bin) { return kLowMs * std::pow(10.0, double(bin) / kPerDecade); }
};

// A time series of at most kMaxPoints points: when full, every other point is dropped and only
// every 2nd (4th, ...) later point is kept, so memory stays bounded and the shape stays even.
class Series {
 public:
  static constexpr std::size_t kMaxPoints = 2048;
  void add(double t, double v);
  const std::vector<std::pair<double, double>>& points() const { return pts_; }

 private:
  std::vector<std::pair<double, double>> pts_;
  std::uint64_t stride_ = 1, seen_ = 0;
};

struct TableAcc {
  virtual ~TableAcc() = default;
  virtual void row(const Row& r) = 0;
};

struct TableSpec {
  const char* name;  // the file is <name>.csv
  std::span<const Column> columns;
  std::unique_ptr<TableAcc> (*make)();
};
// Every table the report understands. Other CSV files are read (validated, rows counted) only.
std::span<const TableSpec> table_specs();

// ---- the accumulators ----

struct CpuOpsAcc : TableAcc {
  enum { kTs, kStep, kOp, kDur, kTokens };
  static constexpr Column kColumns[] = {{"timestamp_sec", true},
                                        {"step_id", true},
                                        {"operation", true},
                                        {"duration_ms", true},
                                        {"num_tokens", false}};
  std::map<std::string, Dist, std::less<>> ops;
  double window_start = INFINITY, window_end = -INFINITY;  // rows with a step, session seconds
  std::uint64_t schedule_rows = 0;
  double schedule_tokens = 0;
  void row(const Row& r) override;
};

struct BatchAcc : TableAcc {
  enum {
    kTs,
    kStep,
    kRunning,
    kMaxSeqs,
    kSchedReqs,
    kSchedTokens,
    kBudget,
    kKind,
    kPreempted,
    kLimit
  };
  static constexpr Column kColumns[] = {{"timestamp_sec", true},   {"step_id", true},
                                        {"running_reqs", true},    {"max_num_seqs", true},
                                        {"scheduled_reqs", false}, {"scheduled_tokens", true},
                                        {"token_budget", true},    {"batch_kind", false},
                                        {"preempted_reqs", false}, {"limit", true}};
  std::uint64_t steps = 0, working = 0;
  std::int64_t max_step = -1;
  double first_ts = INFINITY, last_ts = -INFINITY;
  double tokens = 0, running_sum = 0, sched_reqs_sum = 0, running_pct_sum = 0, token_pct_sum = 0;
  double max_num_seqs = NAN, token_budget = NAN, preempted = 0;
  std::map<std::string, std::uint64_t, std::less<>> limits, kinds;  // over working steps
  Series running_pct, token_pct;
  void row(const Row& r) override;
};

struct KvAcc : TableAcc {
  enum { kTs, kStep, kPoint, kUsage, kTotalBlocks, kPrefixQueries, kPrefixHits, kEvicted };
  static constexpr Column kColumns[] = {{"timestamp_sec", true}, {"step_id", true},
                                        {"point", false},        {"usage_pct", true},
                                        {"total_blocks", false}, {"prefix_queries", false},
                                        {"prefix_hits", false},  {"evicted_blocks", false}};
  std::uint64_t rows = 0, mean_rows = 0;
  double peak = -INFINITY, mean_sum = 0, first_ts = INFINITY, last_ts = -INFINITY;
  std::int64_t peak_step = -1;
  double above90_s = 0, prev_ts = NAN, prev_usage = NAN;
  double total_blocks = NAN, prefix_queries = 0, prefix_hits = 0, evicted = 0;
  Series usage;
  void row(const Row& r) override;
};

struct RequestPreemption {
  std::uint64_t preemptions = 0, resumes = 0;
  double recomputed = 0, dropped = 0, preempted_s = 0;
};

struct PreemptAcc : TableAcc {
  enum { kTs, kStep, kEvent, kRequest, kDropped, kRecomputed, kPreemptedSec };
  static constexpr Column kColumns[] = {{"timestamp_sec", true},
                                        {"step_id", true},
                                        {"event", true},
                                        {"request_id", true},
                                        {"kv_tokens_dropped", false},
                                        {"recomputed_tokens", false},
                                        {"preempted_sec", false}};
  std::uint64_t preempted = 0, resumed = 0, resets = 0;
  double dropped = 0, recomputed = 0, preempted_s = 0;
  std::map<std::string, RequestPreemption, std::less<>> by_request;  // preempted requests only
  void row(const Row& r) override;
};

// preemption_steps.csv: one row per schedule() call, also when nothing was preempted (then
// preemption_events.csv is never created): the report can say "0 preemptions" from it.
struct PreemptStepsAcc : TableAcc {
  enum { kStep, kPreempted, kResumed, kRecomputed };
  static constexpr Column kColumns[] = {{"step_id", true},
                                        {"preempted_reqs", true},
                                        {"resumed_reqs", false},
                                        {"recomputed_tokens", false}};
  std::uint64_t steps = 0;
  double preempted = 0, resumed = 0, recomputed = 0;
  void row(const Row& r) override;
};

struct RequestRow {
  std::string id, finish_reason;
  double arrival = NAN, first_scheduled = NAN, first_token = NAN, finish = NAN;
  double prompt_tokens = NAN, output_tokens = NAN, preemptions = NAN;
  std::int64_t first_step = -1, finish_step = -1;
  double e2e() const { return finish - arrival; }
  double ttft() const { return first_token - arrival; }
};

struct RequestAcc : TableAcc {
  static constexpr std::size_t kTop = 10;
  enum {
    kTs,
    kStep,
    kId,
    kReason,
    kArrival,
    kFirstSched,
    kFirstToken,
    kFinish,
    kPrompt,
    kOutput,
    kPreemptions,
    kFirstSchedStep
  };
  static constexpr Column kColumns[] = {
      {"timestamp_sec", true},  {"step_id", false},         {"request_id", true},
      {"finish_reason", false}, {"arrival_s", true},        {"first_scheduled_s", false},
      {"first_token_s", true},  {"finish_s", true},         {"prompt_tokens", false},
      {"output_tokens", true},  {"num_preemptions", false}, {"first_scheduled_step", false}};
  std::uint64_t requests = 0;
  double prompt_tokens = 0, output_tokens = 0, preemptions = 0;
  double first_arrival = INFINITY, last_finish = -INFINITY;
  Dist e2e, ttft, queued;
  std::vector<RequestRow> slow_e2e, slow_ttft;  // the kTop slowest (sorted once read)
  void row(const Row& r) override;
  void finish();
};

struct ForwardPhase {
  Dist host, gpu;
  double tokens = 0;
  LogBins bins;
};

struct ForwardAcc : TableAcc {
  enum { kTs, kStep, kRun, kPhase, kTokens, kHostMs, kGpuMs };
  static constexpr Column kColumns[] = {
      {"timestamp_sec", true}, {"step_id", true},         {"run", false},        {"phase", false},
      {"num_tokens", false},   {"forward_time_ms", true}, {"gpu_time_ms", false}};
  std::map<std::string, ForwardPhase, std::less<>> phases;       // serving forwards
  std::map<std::string, std::uint64_t, std::less<>> other_runs;  // profile, capture, dummy
  void row(const Row& r) override;
};

struct GraphTimelineAcc : TableAcc {
  enum { kTs, kStep, kMode, kEagerReason, kAction, kTokens, kPadded };
  static constexpr Column kColumns[] = {{"timestamp_sec", true},     {"step_id", true},
                                        {"runtime_mode", false},     {"eager_reason", false},
                                        {"graph_action", true},      {"num_tokens", false},
                                        {"num_padded_tokens", false}};
  std::uint64_t forwards = 0, graph_forwards = 0, captures = 0;
  double tokens = 0, graph_tokens = 0, graph_padded = 0;
  std::map<std::string, std::uint64_t, std::less<>> eager_reasons;
  std::vector<std::uint8_t> step_flags;  // per step: 1 = a forward ran eager, 2 = from a graph
  void row(const Row& r) override;
};

struct Descriptor {
  std::string mode;
  double tokens = NAN, reqs = NAN;
  bool uniform = false, lora = false;
  bool operator<(const Descriptor& o) const;
};
struct DescriptorStat {
  std::uint64_t captures = 0, replays = 0;
  double capture_ms = 0;
};

struct GraphCapturesAcc : TableAcc {
  enum { kMode, kTokens, kReqs, kUniform, kLora, kMs };
  static constexpr Column kColumns[] = {{"runtime_mode", true}, {"num_tokens", true},
                                        {"num_reqs", false},    {"uniform", false},
                                        {"has_lora", false},    {"capture_time_ms", false}};
  std::map<Descriptor, DescriptorStat> desc;
  void row(const Row& r) override;
};

struct GraphUsageAcc : TableAcc {
  enum { kMode, kTokens, kReqs, kUniform, kLora, kReplayCount };
  static constexpr Column kColumns[] = {{"runtime_mode", true}, {"num_tokens", true},
                                        {"num_reqs", false},    {"uniform", false},
                                        {"has_lora", false},    {"replay_count", false}};
  std::map<Descriptor, DescriptorStat> desc;  // replays: rows (one per replaying forward)
  void row(const Row& r) override;
};

struct EncoderComponent {
  Dist host, gpu;
  double items = 0, tokens = 0;
};

struct EncoderAcc : TableAcc {
  enum { kComponent, kItems, kTokens, kDur, kGpu };
  static constexpr Column kColumns[] = {{"component", true},
                                        {"num_items", false},
                                        {"num_tokens", false},
                                        {"duration_ms", true},
                                        {"gpu_time_ms", false}};
  std::map<std::string, EncoderComponent, std::less<>> components;
  void row(const Row& r) override;
};

// moe_expert_activations.csv: tokens per (MoE layer, expert) summed over the run's intervals
// (memory: layers x experts).
struct MoeActivationsAcc : TableAcc {
  enum { kLayer, kExpert, kCount };
  static constexpr Column kColumns[] = {
      {"layer_idx", true}, {"expert_id", true}, {"activation_count", true}};
  struct Layer {
    std::map<std::int64_t, double> experts;  // expert id (-1: ids out of range) -> tokens
    double routed = 0;                       // every (token, expert) assignment, -1 included
    std::uint64_t rows = 0;
  };
  std::map<std::int64_t, Layer> layers;
  void row(const Row& r) override;
};

// moe_load_imbalance.csv: per MoE layer, over its intervals.
struct MoeImbalanceAcc : TableAcc {
  enum { kLayer, kRouted, kMeanCount, kRatio, kIdle };
  static constexpr Column kColumns[] = {{"layer_idx", true},
                                        {"routed_tokens", true},
                                        {"mean_count", true},
                                        {"max_mean_ratio", true},
                                        {"idle_experts", false}};
  struct Layer {
    std::uint64_t intervals = 0, ratio_n = 0;
    double routed = 0, experts = NAN;  // E: the least routed_tokens / mean_count
    double worst_ratio = NAN, ratio_sum = 0, max_idle = NAN;
  };
  std::map<std::int64_t, Layer> layers;
  void row(const Row& r) override;
};

}  // namespace profilemate::report
