// What summary.txt/json and report.html share: number formatting (locale-free) and the
// per-request "why was this slow" split.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "report/model.hpp"

namespace profilemate::report {

std::string num(double v, int decimals);  // fixed decimals; "n/a" when not finite
std::string pct(double p);                // "12.3%"; "n/a"
double share_pct(double part, double whole);
std::string pad(std::string s, std::size_t width, bool right);
// Text from the tables as valid UTF-8 (a corrupt file may hold any bytes): each byte that does not
// start a well-formed sequence becomes U+FFFD, and control characters other than tab become '?'.
std::string utf8_clean(std::string_view s);

// One slow request with its time split: queued (arrival to first scheduled), prefill (first
// scheduled to first token), decode (first token to finish); preempted_s is the time it spent
// preempted (inside prefill or decode), recomputed its tokens computed again after resumes.
struct SlowRequest {
  std::string process;
  const RequestRow* row = nullptr;
  double preempted_s = NAN, recomputed = NAN, preemptions = NAN;
  double steps = NAN, eager_steps = NAN;  // steps it was in the batch for, of them eager
  double queued() const { return row->first_scheduled - row->arrival; }
  double prefill() const { return row->first_token - row->first_scheduled; }
  double decode() const { return row->finish - row->first_token; }
};

// Every CUDA-graph descriptor a process captured or replayed: captures (cuda_graph_captures) and
// replays (cuda_graph_usage) merged. Empty when it wrote neither table.
std::map<Descriptor, DescriptorStat> graph_descriptors(const Process& p);

// Per step: 1 = some worker ran a forward of it eagerly, 2 = some from a graph
// (cuda_graph_timeline).
std::vector<std::uint8_t> merged_step_flags(const Run& run);
SlowRequest slow_request(const Process& p, const RequestRow& q,
                         const std::vector<std::uint8_t>& flags);

// One MoE layer over the run: routed (token, expert) assignments, experts E (from
// moe_load_imbalance.csv; else the experts that got tokens), the run's max/mean expert load and
// the hottest experts (id, tokens), busiest first.
struct MoeCrunch {
  static constexpr std::size_t kHottest = 3;
  double routed = NAN, experts = NAN, run_ratio = NAN;
  std::vector<std::pair<std::int64_t, double>> hottest;
};
MoeCrunch moe_crunch(const MoeActivationsAcc::Layer* a, const MoeImbalanceAcc::Layer* m);

}  // namespace profilemate::report
