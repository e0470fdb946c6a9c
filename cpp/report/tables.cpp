#include "report/tables.hpp"

#include <algorithm>
#include <charconv>
#include <tuple>

namespace profilemate::report {

double Row::num(int col) const {
  const std::string_view s = str(col);
  if (s.empty()) return NAN;
  double v = NAN;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    ++*bad_;
    return NAN;
  }
  return v;
}

void LogBins::add(double ms) {
  if (!std::isfinite(ms)) return;
  int b = ms <= kLowMs ? 0 : static_cast<int>(std::floor(std::log10(ms / kLowMs) * kPerDecade));
  count[std::clamp(b, 0, kBins - 1)]++;
}

void Series::add(double t, double v) {
  if (!std::isfinite(t) || !std::isfinite(v)) return;
  if (seen_++ % stride_ != 0) return;
  if (pts_.size() == kMaxPoints) {
    std::size_t w = 0;
    for (std::size_t i = 0; i < pts_.size(); i += 2) pts_[w++] = pts_[i];
    pts_.resize(w);
    stride_ *= 2;
    if ((seen_ - 1) % stride_ != 0) return;
  }
  pts_.emplace_back(t, v);
}

namespace {
double or0(double v) { return std::isfinite(v) ? v : 0.0; }
void bump(std::map<std::string, std::uint64_t, std::less<>>& m, std::string_view key) {
  auto it = m.find(key);
  if (it == m.end()) it = m.emplace(std::string(key), 0).first;
  ++it->second;
}
}  // namespace

void CpuOpsAcc::row(const Row& r) {
  const std::string_view op = r.str(kOp);
  auto it = ops.find(op);
  if (it == ops.end()) it = ops.emplace(std::string(op), Dist{}).first;
  const double ms = r.num(kDur);
  it->second.add_ms(ms);
  if (r.id(kStep) >= 0) {
    const double ts = r.num(kTs);
    if (std::isfinite(ts)) {
      window_start = std::min(window_start, ts);
      window_end = std::max(window_end, ts + or0(ms) / 1e3);
    }
    if (op == "schedule") {
      ++schedule_rows;
      schedule_tokens += or0(r.num(kTokens));
    }
  }
}

void BatchAcc::row(const Row& r) {
  ++steps;
  max_step = std::max(max_step, r.id(kStep));
  const double ts = r.num(kTs);
  if (std::isfinite(ts)) {
    first_ts = std::min(first_ts, ts);
    last_ts = std::max(last_ts, ts);
  }
  const double tok = or0(r.num(kSchedTokens));
  const double running = or0(r.num(kRunning));
  const double seqs = r.num(kMaxSeqs), budget = r.num(kBudget);
  if (std::isfinite(seqs)) max_num_seqs = seqs;
  if (std::isfinite(budget)) token_budget = budget;
  preempted += or0(r.num(kPreempted));
  tokens += tok;
  const double run_pct = seqs > 0 ? 100.0 * running / seqs : NAN;
  const double tok_pct = budget > 0 ? 100.0 * tok / budget : NAN;
  if (tok > 0) {
    ++working;
    running_sum += running;
    sched_reqs_sum += or0(r.num(kSchedReqs));
    running_pct_sum += or0(run_pct);
    token_pct_sum += or0(tok_pct);
    bump(limits, r.str(kLimit));
  }
  bump(kinds, r.str(kKind).empty() ? std::string_view("?") : r.str(kKind));
  running_pct.add(ts, run_pct);
  token_pct.add(ts, tok_pct);
}

void KvAcc::row(const Row& r) {
  ++rows;
  const double ts = r.num(kTs), pct = r.num(kUsage);
  if (std::isfinite(ts)) {
    first_ts = std::min(first_ts, ts);
    last_ts = std::max(last_ts, ts);
    if (std::isfinite(prev_ts) && prev_usage >= 90.0 && ts > prev_ts) above90_s += ts - prev_ts;
    prev_ts = ts;
    prev_usage = pct;
  }
  if (!std::isfinite(pct)) return;
  if (pct > peak) {
    peak = pct;
    peak_step = r.id(kStep);
  }
  const std::string_view point = r.str(kPoint);
  if (point.empty() || point == "schedule") {  // the step's peak (blocks allocated)
    ++mean_rows;
    mean_sum += pct;
    usage.add(ts, pct);
  }
  const double tb = r.num(kTotalBlocks);
  if (std::isfinite(tb)) total_blocks = tb;
  prefix_queries += or0(r.num(kPrefixQueries));
  prefix_hits += or0(r.num(kPrefixHits));
  evicted += or0(r.num(kEvicted));
}

void PreemptAcc::row(const Row& r) {
  const std::string_view ev = r.str(kEvent);
  if (ev == "prefix_cache_reset") {
    ++resets;
    return;
  }
  const std::string_view id = r.str(kRequest);
  auto it = by_request.find(id);
  if (ev == "preempted") {
    ++preempted;
    if (it == by_request.end()) it = by_request.emplace(std::string(id), RequestPreemption{}).first;
    ++it->second.preemptions;
    const double d = or0(r.num(kDropped));
    it->second.dropped += d;
    dropped += d;
  } else if (ev == "resumed") {
    ++resumed;
    if (it == by_request.end()) it = by_request.emplace(std::string(id), RequestPreemption{}).first;
    ++it->second.resumes;
    const double rc = or0(r.num(kRecomputed)), ps = or0(r.num(kPreemptedSec));
    it->second.recomputed += rc;
    it->second.preempted_s += ps;
    recomputed += rc;
    preempted_s += ps;
  }
}

void PreemptStepsAcc::row(const Row& r) {
  ++steps;
  preempted += or0(r.num(kPreempted));
  resumed += or0(r.num(kResumed));
  recomputed += or0(r.num(kRecomputed));
}

namespace {
// Keeps the kTop largest by key(row), in bounded memory: trimmed whenever it reaches 4 x kTop.
template <class Key>
void keep_top(std::vector<RequestRow>& v, const RequestRow& row, Key key) {
  if (!std::isfinite(key(row))) return;
  v.push_back(row);
  if (v.size() >= 4 * RequestAcc::kTop) {
    std::nth_element(v.begin(), v.begin() + RequestAcc::kTop - 1, v.end(),
                     [&](const RequestRow& a, const RequestRow& b) { return key(a) > key(b); });
    v.resize(RequestAcc::kTop);
  }
}
template <class Key>
void sort_top(std::vector<RequestRow>& v, Key key) {
  std::sort(v.begin(), v.end(), [&](const RequestRow& a, const RequestRow& b) {
    return key(a) != key(b) ? key(a) > key(b) : a.id < b.id;
  });
  if (v.size() > RequestAcc::kTop) v.resize(RequestAcc::kTop);
}
}  // namespace

void RequestAcc::row(const Row& r) {
  RequestRow q;
  q.id = std::string(r.str(kId));
  q.finish_reason = std::string(r.str(kReason));
  q.arrival = r.num(kArrival);
  q.first_scheduled = r.num(kFirstSched);
  q.first_token = r.num(kFirstToken);
  q.finish = r.num(kFinish);
  q.prompt_tokens = r.num(kPrompt);
  q.output_tokens = r.num(kOutput);
  q.preemptions = r.num(kPreemptions);
  q.first_step = r.id(kFirstSchedStep);
  q.finish_step = r.id(kStep);
  ++requests;
  prompt_tokens += or0(q.prompt_tokens);
  output_tokens += or0(q.output_tokens);
  preemptions += or0(q.preemptions);
  if (std::isfinite(q.arrival)) first_arrival = std::min(first_arrival, q.arrival);
  if (std::isfinite(q.finish)) last_finish = std::max(last_finish, q.finish);
  e2e.add_ms(q.e2e() * 1e3);
  ttft.add_ms(q.ttft() * 1e3);
  queued.add_ms((q.first_scheduled - q.arrival) * 1e3);
  keep_top(slow_e2e, q, [](const RequestRow& x) { return x.e2e(); });
  keep_top(slow_ttft, q, [](const RequestRow& x) { return x.ttft(); });
}

void RequestAcc::finish() {
  sort_top(slow_e2e, [](const RequestRow& x) { return x.e2e(); });
  sort_top(slow_ttft, [](const RequestRow& x) { return x.ttft(); });
}

void ForwardAcc::row(const Row& r) {
  const std::string_view run = r.str(kRun);
  const bool serving = run.empty() ? r.id(kStep) >= 0 : run == "serve";
  if (!serving) {
    bump(other_runs, run);
    return;
  }
  std::string_view phase = r.str(kPhase);
  if (phase.empty()) phase = "?";
  auto it = phases.find(phase);
  if (it == phases.end()) it = phases.emplace(std::string(phase), ForwardPhase{}).first;
  const double ms = r.num(kHostMs);
  it->second.host.add_ms(ms);
  it->second.bins.add(ms);
  it->second.gpu.add_ms(r.num(kGpuMs));
  it->second.tokens += or0(r.num(kTokens));
}

void GraphTimelineAcc::row(const Row& r) {
  const std::int64_t step = r.id(kStep);
  const std::string_view action = r.str(kAction);
  if (action == "capture") ++captures;
  if (step < 0) return;  // not a serving forward
  ++forwards;
  const double tok = or0(r.num(kTokens));
  tokens += tok;
  const bool graph = action == "replay";
  if (graph) {
    ++graph_forwards;
    graph_tokens += tok;
    graph_padded += or0(r.num(kPadded));
  } else if (action == "eager") {
    std::string_view reason = r.str(kEagerReason);
    bump(eager_reasons, reason.empty() ? std::string_view("(none given)") : reason);
  }
  // Per-step flags for the slow-request table, bounded by the highest step (1 byte each).
  if (step < (std::int64_t{1} << 28)) {
    const auto s = static_cast<std::size_t>(step);
    if (step_flags.size() <= s) step_flags.resize(s + 1, 0);
    step_flags[s] =
        static_cast<std::uint8_t>(step_flags[s] | (graph ? 2 : (action == "eager" ? 1 : 0)));
  }
}

bool Descriptor::operator<(const Descriptor& o) const {
  auto key = [](const Descriptor& d) {
    return std::make_tuple(d.mode, std::isfinite(d.tokens) ? d.tokens : -1.0,
                           std::isfinite(d.reqs) ? d.reqs : -1.0, d.uniform, d.lora);
  };
  return key(*this) < key(o);
}

namespace {
template <class Acc>
Descriptor descriptor_of(const Row& r) {
  Descriptor d;
  d.mode = std::string(r.str(Acc::kMode));
  d.tokens = r.num(Acc::kTokens);
  d.reqs = r.num(Acc::kReqs);
  d.uniform = r.num(Acc::kUniform) == 1;
  d.lora = r.num(Acc::kLora) == 1;
  return d;
}
}  // namespace

void GraphCapturesAcc::row(const Row& r) {
  DescriptorStat& s = desc[descriptor_of<GraphCapturesAcc>(r)];
  ++s.captures;
  s.capture_ms += or0(r.num(kMs));
}

void GraphUsageAcc::row(const Row& r) { ++desc[descriptor_of<GraphUsageAcc>(r)].replays; }

void EncoderAcc::row(const Row& r) {
  std::string_view c = r.str(kComponent);
  auto it = components.find(c);
  if (it == components.end()) it = components.emplace(std::string(c), EncoderComponent{}).first;
  it->second.host.add_ms(r.num(kDur));
  it->second.gpu.add_ms(r.num(kGpu));
  it->second.items += or0(r.num(kItems));
  it->second.tokens += or0(r.num(kTokens));
}

void MoeActivationsAcc::row(const Row& r) {
  const std::int64_t layer = r.id(kLayer);
  const double n = r.num(kCount);
  if (layer < 0 || !std::isfinite(n) || n < 0) return;
  Layer& l = layers[layer];
  ++l.rows;
  l.routed += n;
  const std::int64_t e = r.id(kExpert);
  l.experts[e < 0 ? -1 : e] += n;
}

void MoeImbalanceAcc::row(const Row& r) {
  const std::int64_t layer = r.id(kLayer);
  if (layer < 0) return;
  Layer& l = layers[layer];
  ++l.intervals;
  const double routed = or0(r.num(kRouted)), mean = r.num(kMeanCount), ratio = r.num(kRatio);
  l.routed += routed;
  // routed_tokens also counts ids outside 0 ... E-1, mean_count does not: routed / mean >= E,
  // equal in every interval without such ids.
  if (mean > 0 && routed > 0) {
    const double e = std::round(routed / mean);
    l.experts = std::isfinite(l.experts) ? std::min(l.experts, e) : e;
  }
  if (std::isfinite(ratio)) {
    ++l.ratio_n;
    l.ratio_sum += ratio;
    l.worst_ratio = std::isfinite(l.worst_ratio) ? std::max(l.worst_ratio, ratio) : ratio;
  }
  const double idle = r.num(kIdle);
  if (std::isfinite(idle))
    l.max_idle = std::isfinite(l.max_idle) ? std::max(l.max_idle, idle) : idle;
}

namespace {
template <class T>
std::unique_ptr<TableAcc> make() {
  return std::make_unique<T>();
}
template <class T>
constexpr TableSpec spec(const char* name) {
  return TableSpec{name, std::span<const Column>(T::kColumns), &make<T>};
}
// The tables the report crunches; one line per table.
const TableSpec kSpecs[] = {
    spec<CpuOpsAcc>("cpu_operations_timing"),
    spec<BatchAcc>("batch_utilization"),
    spec<KvAcc>("kv_cache_usage"),
    spec<PreemptAcc>("preemption_events"),
    spec<PreemptStepsAcc>("preemption_steps"),
    spec<RequestAcc>("request_lifecycle"),
    spec<ForwardAcc>("forward_pass_timing"),
    spec<GraphTimelineAcc>("cuda_graph_timeline"),
    spec<GraphCapturesAcc>("cuda_graph_captures"),
    spec<GraphUsageAcc>("cuda_graph_usage"),
    spec<EncoderAcc>("encoder_decoder_timing"),
    spec<MoeActivationsAcc>("moe_expert_activations"),
    spec<MoeImbalanceAcc>("moe_load_imbalance"),
};
}  // namespace

std::span<const TableSpec> table_specs() { return kSpecs; }

}  // namespace profilemate::report
