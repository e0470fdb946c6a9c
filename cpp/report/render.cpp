// summary.txt and summary.json from a loaded run: one section per question a tuner asks, each
// line naming the process and the table (and its row count) it comes from. The JSON keys are the
// contract documented in docs/OUTPUTS.md ("Report"); a section with no data is an empty list
// there and absent from the text.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>

#include "core/format.hpp"
#include "core/json_writer.hpp"
#include "profilemate/version.hpp"
#include "report/model.hpp"
#include "report/render_util.hpp"

namespace profilemate::report {

std::string num(double v, int decimals) {
  if (!std::isfinite(v)) return "n/a";
  char b[64];
  const auto r = std::to_chars(b, b + sizeof b, v, std::chars_format::fixed, decimals);
  return std::string(b, r.ptr);
}
std::string pct(double p) { return std::isfinite(p) ? num(p, 1) + "%" : "n/a"; }
double share_pct(double part, double whole) { return whole > 0 ? 100.0 * part / whole : NAN; }
std::string pad(std::string s, std::size_t width, bool right) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

std::string utf8_clean(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = p[i];
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      r.push_back(c < 0x20 && c != '\t' && c != '\n' ? '?' : static_cast<char>(c));
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = len > 0 && i + len <= n && p[i + 1] >= lo && p[i + 1] <= hi;
    for (std::size_t k = 2; ok && k < len; ++k) ok = p[i + k] >= 0x80 && p[i + k] <= 0xBF;
    if (ok) {
      r.append(s.substr(i, len));
      i += len;
    } else {
      r.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return r;
}

std::map<Descriptor, DescriptorStat> graph_descriptors(const Process& p) {
  std::map<Descriptor, DescriptorStat> all;
  if (const auto* cap = p.get<GraphCapturesAcc>("cuda_graph_captures"))
    for (const auto& [d, s] : cap->desc) all[d] = s;
  if (const auto* use = p.get<GraphUsageAcc>("cuda_graph_usage"))
    for (const auto& [d, s] : use->desc) all[d].replays += s.replays;
  return all;
}

std::vector<std::uint8_t> merged_step_flags(const Run& run) {
  std::vector<std::uint8_t> flags;
  for (const Process& p : run.processes)
    if (const auto* g = p.get<GraphTimelineAcc>("cuda_graph_timeline")) {
      if (flags.size() < g->step_flags.size()) flags.resize(g->step_flags.size(), 0);
      for (std::size_t s = 0; s < g->step_flags.size(); ++s) flags[s] |= g->step_flags[s];
    }
  return flags;
}

SlowRequest slow_request(const Process& p, const RequestRow& q,
                         const std::vector<std::uint8_t>& flags) {
  SlowRequest s;
  s.process = p.name;
  s.row = &q;
  s.preemptions = q.preemptions;
  if (const auto* pre = p.get<PreemptAcc>("preemption_events")) {
    const auto it = pre->by_request.find(q.id);
    s.preempted_s = 0;
    s.recomputed = 0;
    if (it != pre->by_request.end()) {
      s.preempted_s = it->second.preempted_s;
      s.recomputed = it->second.recomputed;
      if (!std::isfinite(s.preemptions)) s.preemptions = double(it->second.preemptions);
    }
  } else if (const auto* ps = p.get<PreemptStepsAcc>("preemption_steps");
             ps && ps->preempted == 0) {
    s.preempted_s = 0;  // no preemption at all in this process (so no preemption_events.csv)
    s.recomputed = 0;
  }
  if (q.first_step >= 0 && q.finish_step >= q.first_step && !flags.empty()) {
    std::uint64_t known = 0, eager = 0;
    for (std::int64_t st = q.first_step; st <= q.finish_step; ++st) {
      if (st >= static_cast<std::int64_t>(flags.size())) break;
      const std::uint8_t f = flags[static_cast<std::size_t>(st)];
      known += f != 0;
      eager += (f & 1) != 0;
    }
    if (known) {
      s.steps = double(known);
      s.eager_steps = double(eager);
    }
  }
  return s;
}

MoeCrunch moe_crunch(const MoeActivationsAcc::Layer* a, const MoeImbalanceAcc::Layer* m) {
  MoeCrunch c;
  c.routed = a ? a->routed : m ? m->routed : NAN;
  c.experts = m ? m->experts : NAN;
  if (!a) return c;
  double in_range = 0, top = 0, seen = 0, highest = -1;
  std::vector<std::pair<double, std::int64_t>> v;
  for (const auto& [e, n] : a->experts) {
    if (e < 0) continue;
    highest = std::max(highest, double(e));
    in_range += n;
    top = std::max(top, n);
    ++seen;
    v.emplace_back(n, e);
  }
  // Without moe_load_imbalance.csv, experts that never got a token are not known.
  if (!std::isfinite(c.experts) || c.experts < highest + 1) c.experts = std::max(seen, highest + 1);
  c.run_ratio = in_range > 0 && c.experts > 0 ? top / (in_range / c.experts) : NAN;
  std::sort(v.begin(), v.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  for (std::size_t i = 0; i < v.size() && i < MoeCrunch::kHottest; ++i)
    c.hottest.emplace_back(v[i].second, v[i].first);
  return c;
}

namespace {

using json::Layout;

struct Out {
  std::string text;
  fmt::OutBuf buf;
  json::Writer w{buf};
  void line(const std::string& s) {
    text += "  ";
    text += utf8_clean(s);
    text += '\n';
  }
  void heading(const std::string& s) {
    text += '\n';
    text += s;
    text += '\n';
  }
  void k(const char* key, double v) {
    w.key(key);
    w.value_double(v);
  }
  void ku(const char* key, std::uint64_t v) {
    w.key(key);
    w.value_uint(v);
  }
  void ks(const char* key, std::string_view v) {
    w.key(key);
    w.value_str(utf8_clean(v));
  }
  void counts(const char* key, const std::map<std::string, std::uint64_t, std::less<>>& m) {
    w.key(key);
    w.begin_object(Layout::kInline);
    for (const auto& [name, n] : m) {
      w.key(utf8_clean(name));
      w.value_uint(n);
    }
    w.end_object();
  }
  // One entry of a section: {"process": ..., "events": ...} then the caller's keys.
  void begin_entry(const Process& p, std::uint64_t events) {
    w.begin_object(Layout::kInline);
    ks("process", p.name);
    ku("events", events);
  }
  void end_entry() { w.end_object(); }
};

std::string source(const Process& p, const std::string& table) {
  return "   [" + p.name + ": " + table + ".csv, " + std::to_string(p.rows_of(table)) + " rows]";
}

// "a 60%, b 30%, c 10%" of the largest counts.
std::string top_counts(const std::map<std::string, std::uint64_t, std::less<>>& m,
                       std::size_t top) {
  std::vector<std::pair<std::uint64_t, std::string>> v;
  std::uint64_t total = 0;
  for (const auto& [k, n] : m) {
    v.emplace_back(n, k);
    total += n;
  }
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < top; ++i) {
    if (i) s += ", ";
    s += v[i].second + " " + std::to_string(v[i].first) + " (" +
         pct(share_pct(double(v[i].first), double(total))) + ")";
  }
  return s.empty() ? "none" : s;
}

template <class Fn>
void section(Out& o, const char* key, const char* title, Fn&& body) {
  o.w.key(key);
  o.w.begin_array(Layout::kBlock);
  const std::size_t before = o.text.size();
  o.heading(title);
  const std::size_t after = o.text.size();
  body();
  if (o.text.size() == after) o.text.resize(before);  // nothing to say: leave the section out
  o.w.end_array();
}

void steps_section(const Run& run, Out& o) {
  section(o, "steps", "Steps and throughput", [&] {
    for (const Process& p : run.processes) {
      const auto* b = p.get<BatchAcc>("batch_utilization");
      const auto* c = p.get<CpuOpsAcc>("cpu_operations_timing");
      std::uint64_t steps = 0, working = 0;
      double tokens = 0, span = NAN;
      std::int64_t last = -1;
      std::string table;
      if (b && b->steps) {
        steps = b->steps;
        working = b->working;
        tokens = b->tokens;
        span = b->last_ts - b->first_ts;
        last = b->max_step;
        table = "batch_utilization";
      } else if (c && c->schedule_rows) {
        steps = c->schedule_rows;
        tokens = c->schedule_tokens;
        span = c->window_end - c->window_start;
        table = "cpu_operations_timing";
      } else {
        continue;
      }
      const double rate = span > 0 ? double(steps) / span : NAN;
      const double tps = span > 0 ? tokens / span : NAN;
      o.begin_entry(p, p.rows_of(table));
      o.ks("table", table);
      o.ku("steps", steps);
      if (b && b->steps)
        o.ku("working_steps", working);
      else
        o.k("working_steps", NAN);
      o.k("last_step_id", last >= 0 ? double(last) : NAN);
      o.k("span_s", span);
      o.k("steps_per_s", rate);
      o.k("scheduled_tokens", tokens);
      o.k("scheduled_tokens_per_s", tps);
      o.end_entry();
      o.line(p.name + ": " + std::to_string(steps) + " steps" +
             (b && b->steps ? " (" + std::to_string(working) + " scheduled work)" : "") + " in " +
             num(span, 3) + " s = " + num(rate, 1) + " steps/s; " + num(tokens, 0) +
             " tokens scheduled = " + num(tps, 1) + " tokens/s" + source(p, table));
    }
  });
  section(o, "generation", "Requests and generated tokens", [&] {
    for (const Process& p : run.processes) {
      const auto* r = p.get<RequestAcc>("request_lifecycle");
      if (!r || !r->requests) continue;
      const double span = r->last_finish - r->first_arrival;
      const double tps = span > 0 ? r->output_tokens / span : NAN;
      o.begin_entry(p, p.rows_of("request_lifecycle"));
      o.ku("requests", r->requests);
      o.k("prompt_tokens", r->prompt_tokens);
      o.k("generated_tokens", r->output_tokens);
      o.k("span_s", span);
      o.k("generated_tokens_per_s", tps);
      o.k("e2e_p50_s", r->e2e.p_ms(0.5) / 1e3);
      o.k("e2e_p99_s", r->e2e.p_ms(0.99) / 1e3);
      o.k("ttft_p50_s", r->ttft.p_ms(0.5) / 1e3);
      o.k("ttft_p99_s", r->ttft.p_ms(0.99) / 1e3);
      o.end_entry();
      o.line(p.name + ": " + std::to_string(r->requests) + " requests finished, " +
             num(r->output_tokens, 0) + " tokens generated in " + num(span, 3) +
             " s (first arrival to last finish) = " + num(tps, 1) + " tokens/s; e2e p50 " +
             num(r->e2e.p_ms(0.5) / 1e3, 3) + " s, p99 " + num(r->e2e.p_ms(0.99) / 1e3, 3) +
             " s; TTFT p50 " + num(r->ttft.p_ms(0.5) / 1e3, 3) + " s, p99 " +
             num(r->ttft.p_ms(0.99) / 1e3, 3) + " s" + source(p, "request_lifecycle"));
    }
  });
}

void graphs_section(const Run& run, Out& o) {
  section(o, "cuda_graphs", "CUDA graphs", [&] {
    for (const Process& p : run.processes) {
      const auto* g = p.get<GraphTimelineAcc>("cuda_graph_timeline");
      if (!g || !g->forwards) continue;
      const double fpct = share_pct(double(g->graph_forwards), double(g->forwards));
      const double tpct = share_pct(g->graph_tokens, g->tokens);
      const double waste = share_pct(g->graph_padded - g->graph_tokens, g->graph_padded);
      o.begin_entry(p, p.rows_of("cuda_graph_timeline"));
      o.ku("forwards", g->forwards);
      o.ku("graph_forwards", g->graph_forwards);
      o.k("graph_forward_pct", fpct);
      o.k("tokens", g->tokens);
      o.k("graph_tokens", g->graph_tokens);
      o.k("graph_token_pct", tpct);
      o.k("graph_padded_tokens", g->graph_padded);
      o.k("padding_waste_pct", waste);
      o.counts("eager_reasons", g->eager_reasons);
      o.end_entry();
      o.line(p.name + ": " + std::to_string(g->forwards) + " serving forwards, " + pct(fpct) +
             " from graphs (" + pct(tpct) + " of tokens); padding waste " + pct(waste) +
             "; eager: " + top_counts(g->eager_reasons, 3) + source(p, "cuda_graph_timeline"));
    }
  });
  section(o, "graph_descriptors", "CUDA graph descriptors", [&] {
    for (const Process& p : run.processes) {
      const bool cap = p.get<GraphCapturesAcc>("cuda_graph_captures") != nullptr;
      if (!cap && !p.get<GraphUsageAcc>("cuda_graph_usage")) continue;
      const std::map<Descriptor, DescriptorStat> all = graph_descriptors(p);
      std::uint64_t captures = 0, replays = 0;
      for (const auto& [d, s] : all) {
        o.begin_entry(p, s.captures + s.replays);
        o.ks("runtime_mode", d.mode);
        o.k("num_tokens", d.tokens);
        o.k("num_reqs", d.reqs);
        o.w.key("uniform");
        o.w.value_bool(d.uniform);
        o.w.key("has_lora");
        o.w.value_bool(d.lora);
        o.ku("captures", s.captures);
        o.k("capture_ms", s.capture_ms);
        o.ku("replays", s.replays);
        o.end_entry();
        captures += s.captures;
        replays += s.replays;
      }
      o.line(p.name + ": " + std::to_string(all.size()) + " descriptors, " +
             std::to_string(captures) + " captures, " + std::to_string(replays) +
             " replays (the table is in report.html)" +
             source(p, cap ? "cuda_graph_captures" : "cuda_graph_usage"));
    }
  });
}

void kv_section(const Run& run, Out& o) {
  section(o, "kv_cache", "KV cache", [&] {
    for (const Process& p : run.processes) {
      const auto* k = p.get<KvAcc>("kv_cache_usage");
      if (!k || !k->mean_rows) continue;
      const double span = k->last_ts - k->first_ts;
      const double mean = k->mean_sum / double(k->mean_rows);
      o.begin_entry(p, p.rows_of("kv_cache_usage"));
      o.k("peak_usage_pct", k->peak);
      o.k("peak_step_id", k->peak_step >= 0 ? double(k->peak_step) : NAN);
      o.k("mean_usage_pct", mean);
      o.k("span_s", span);
      o.k("above_90_s", k->above90_s);
      o.k("above_90_pct", share_pct(k->above90_s, span));
      o.k("total_blocks", k->total_blocks);
      o.k("prefix_queries", k->prefix_queries);
      o.k("prefix_hits", k->prefix_hits);
      o.k("prefix_hit_pct", share_pct(k->prefix_hits, k->prefix_queries));
      o.k("evicted_blocks", k->evicted);
      o.end_entry();
      o.line(p.name + ": usage peak " + pct(k->peak) + " (step " + std::to_string(k->peak_step) +
             "), mean " + pct(mean) + " at schedule time, above 90% for " + num(k->above90_s, 3) +
             " s of " + num(span, 3) + " s (" + pct(share_pct(k->above90_s, span)) + "); " +
             num(k->total_blocks, 0) + " blocks; prefix cache hits " + num(k->prefix_hits, 0) +
             " of " + num(k->prefix_queries, 0) + " tokens looked up; " + num(k->evicted, 0) +
             " cached blocks evicted" + source(p, "kv_cache_usage"));
    }
  });
}

void preempt_section(const Run& run, Out& o) {
  section(o, "preemptions", "Preemptions", [&] {
    for (const Process& p : run.processes) {
      const auto* e = p.get<PreemptAcc>("preemption_events");
      const auto* ps = p.get<PreemptStepsAcc>("preemption_steps");
      if (!e && ps) {  // no preemption_events.csv: the per-step counts only
        o.begin_entry(p, p.rows_of("preemption_steps"));
        o.k("preempted", ps->preempted);
        o.k("resumed", ps->resumed);
        o.k("prefix_cache_resets", NAN);
        o.k("kv_tokens_dropped", NAN);
        o.k("recomputed_tokens", ps->recomputed);
        o.k("preempted_s", NAN);
        o.k("requests_hit", ps->preempted == 0 ? 0.0 : NAN);
        o.w.key("hardest_hit");
        o.w.begin_array(Layout::kInline);
        o.w.end_array();
        o.end_entry();
        o.line(p.name + ": " + num(ps->preempted, 0) + " preemptions, " + num(ps->resumed, 0) +
               " resumed, " + num(ps->recomputed, 0) + " tokens recomputed over " +
               std::to_string(ps->steps) + " steps" + source(p, "preemption_steps"));
        continue;
      }
      if (!e) continue;
      std::vector<std::pair<std::string, RequestPreemption>> hit(e->by_request.begin(),
                                                                 e->by_request.end());
      std::sort(hit.begin(), hit.end(), [](const auto& a, const auto& b) {
        if (a.second.preempted_s != b.second.preempted_s)
          return a.second.preempted_s > b.second.preempted_s;
        if (a.second.recomputed != b.second.recomputed)
          return a.second.recomputed > b.second.recomputed;
        return a.first < b.first;
      });
      if (hit.size() > 5) hit.resize(5);
      o.begin_entry(p, p.rows_of("preemption_events"));
      o.ku("preempted", e->preempted);
      o.ku("resumed", e->resumed);
      o.ku("prefix_cache_resets", e->resets);
      o.k("kv_tokens_dropped", e->dropped);
      o.k("recomputed_tokens", e->recomputed);
      o.k("preempted_s", e->preempted_s);
      o.ku("requests_hit", e->by_request.size());
      o.w.key("hardest_hit");
      o.w.begin_array(Layout::kInline);
      std::string names;
      for (const auto& [id, r] : hit) {
        o.w.begin_object(Layout::kInline);
        o.ks("request_id", id);
        o.ku("preemptions", r.preemptions);
        o.k("recomputed_tokens", r.recomputed);
        o.k("kv_tokens_dropped", r.dropped);
        o.k("preempted_s", r.preempted_s);
        o.w.end_object();
        names += (names.empty() ? "" : "; ") + id + " (" + std::to_string(r.preemptions) + "x, " +
                 num(r.recomputed, 0) + " tokens recomputed, " + num(r.preempted_s, 3) +
                 " s preempted)";
      }
      o.w.end_array();
      o.end_entry();
      o.line(p.name + ": " + std::to_string(e->preempted) + " preemptions of " +
             std::to_string(e->by_request.size()) + " requests, " + std::to_string(e->resumed) +
             " resumed; " + num(e->recomputed, 0) + " tokens recomputed (of " + num(e->dropped, 0) +
             " dropped); " + num(e->preempted_s, 3) + " s spent preempted in all; " +
             std::to_string(e->resets) + " prefix-cache resets" + source(p, "preemption_events"));
      if (!names.empty()) o.line("  hardest hit: " + names);
    }
  });
}

void batch_section(const Run& run, Out& o) {
  section(o, "batch", "Batch utilization (steps that scheduled work)", [&] {
    for (const Process& p : run.processes) {
      const auto* b = p.get<BatchAcc>("batch_utilization");
      if (!b || !b->steps) continue;
      const double w = double(b->working);
      const double run_mean = w > 0 ? b->running_sum / w : NAN;
      const double run_pct = w > 0 ? b->running_pct_sum / w : NAN;
      const double tok_mean = w > 0 ? b->tokens / w : NAN;
      const double tok_pct = w > 0 ? b->token_pct_sum / w : NAN;
      o.begin_entry(p, p.rows_of("batch_utilization"));
      o.ku("steps", b->steps);
      o.ku("working_steps", b->working);
      o.k("max_num_seqs", b->max_num_seqs);
      o.k("token_budget", b->token_budget);
      o.k("mean_running_reqs", run_mean);
      o.k("mean_running_pct", run_pct);
      o.k("mean_scheduled_reqs", w > 0 ? b->sched_reqs_sum / w : NAN);
      o.k("mean_scheduled_tokens", tok_mean);
      o.k("mean_token_budget_pct", tok_pct);
      o.k("preempted_reqs", b->preempted);
      o.counts("limits", b->limits);
      o.counts("batch_kinds", b->kinds);
      o.end_entry();
      o.line(p.name + ": " + num(run_mean, 1) + " of " + num(b->max_num_seqs, 0) +
             " requests running (" + pct(run_pct) + "), " + num(tok_mean, 1) + " of " +
             num(b->token_budget, 0) + " tokens (" + pct(tok_pct) + ") per step, over " +
             std::to_string(b->working) + " steps; limited by: " + top_counts(b->limits, 4) +
             "; kinds: " + top_counts(b->kinds, 4) + source(p, "batch_utilization"));
    }
  });
}

void forward_section(const Run& run, Out& o) {
  section(o, "forward_time", "Forward time by phase (serving forwards)", [&] {
    for (const Process& p : run.processes) {
      const auto* f = p.get<ForwardAcc>("forward_pass_timing");
      if (!f) continue;
      for (const auto& [phase, ph] : f->phases) {
        o.begin_entry(p, ph.host.n);
        o.ks("phase", phase);
        o.k("tokens", ph.tokens);
        o.k("host_p50_ms", ph.host.p_ms(0.5));
        o.k("host_p95_ms", ph.host.p_ms(0.95));
        o.k("host_p99_ms", ph.host.p_ms(0.99));
        o.k("host_max_ms", ph.host.max_ms());
        o.k("host_total_ms", ph.host.total_ms);
        o.ku("gpu_events", ph.gpu.n);
        o.k("gpu_p50_ms", ph.gpu.n ? ph.gpu.p_ms(0.5) : NAN);
        o.k("gpu_p95_ms", ph.gpu.n ? ph.gpu.p_ms(0.95) : NAN);
        o.k("gpu_p99_ms", ph.gpu.n ? ph.gpu.p_ms(0.99) : NAN);
        o.end_entry();
        std::string gpu = ph.gpu.n ? "GPU p50 " + num(ph.gpu.p_ms(0.5), 3) + " / p95 " +
                                         num(ph.gpu.p_ms(0.95), 3) + " / p99 " +
                                         num(ph.gpu.p_ms(0.99), 3) + " ms"
                                   : "no GPU time (no device)";
        o.line(p.name + ": " + phase + ": " + std::to_string(ph.host.n) + " forwards, " +
               num(ph.tokens, 0) + " tokens; host p50 " + num(ph.host.p_ms(0.5), 3) + " / p95 " +
               num(ph.host.p_ms(0.95), 3) + " / p99 " + num(ph.host.p_ms(0.99), 3) + " ms; " + gpu +
               source(p, "forward_pass_timing"));
      }
    }
  });
}

void cpu_section(const Run& run, Out& o) {
  section(o, "cpu_ops", "CPU operations (share of the process's stepping window)", [&] {
    for (const Process& p : run.processes) {
      const auto* c = p.get<CpuOpsAcc>("cpu_operations_timing");
      if (!c || c->ops.empty()) continue;
      const double window_ms = (c->window_end - c->window_start) * 1e3;
      std::vector<std::pair<std::string, const Dist*>> ops;
      for (const auto& [name, d] : c->ops) ops.emplace_back(name, &d);
      std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) {
        return a.second->total_ms != b.second->total_ms ? a.second->total_ms > b.second->total_ms
                                                        : a.first < b.first;
      });
      std::string parts;
      for (const auto& [name, d] : ops) {
        const double share = share_pct(d->total_ms, window_ms);
        o.begin_entry(p, d->n);
        o.ks("operation", name);
        o.k("total_ms", d->total_ms);
        o.k("p50_ms", d->p_ms(0.5));
        o.k("p95_ms", d->p_ms(0.95));
        o.k("p99_ms", d->p_ms(0.99));
        o.k("step_window_ms", window_ms > 0 ? window_ms : NAN);
        o.k("share_of_step_window_pct", share);
        o.end_entry();
        parts += (parts.empty() ? "" : "; ") + name + " " + std::to_string(d->n) + "x " +
                 num(d->total_ms, 1) + " ms (" + (window_ms > 0 ? pct(share) + ", " : "") + "p50 " +
                 num(d->p_ms(0.5), 3) + " ms)";
      }
      o.line(p.name +
             (window_ms > 0 ? ": stepping window " + num(window_ms, 1) + " ms: "
                            : ": (no per-step operations) ") +
             parts + source(p, "cpu_operations_timing"));
    }
  });
}

void encoder_section(const Run& run, Out& o) {
  section(o, "encoder", "Encoder", [&] {
    for (const Process& p : run.processes) {
      const auto* e = p.get<EncoderAcc>("encoder_decoder_timing");
      if (!e) continue;
      for (const auto& [name, c] : e->components) {
        o.begin_entry(p, c.host.n);
        o.ks("component", name);
        o.k("items", c.items);
        o.k("tokens", c.tokens);
        o.k("total_ms", c.host.total_ms);
        o.k("p50_ms", c.host.p_ms(0.5));
        o.k("p95_ms", c.host.p_ms(0.95));
        o.k("gpu_total_ms", c.gpu.n ? c.gpu.total_ms : NAN);
        o.end_entry();
        o.line(p.name + ": " + name + ": " + std::to_string(c.host.n) + " runs, " +
               num(c.items, 0) + " items, " + num(c.tokens, 0) + " tokens, " +
               num(c.host.total_ms, 1) + " ms in all (p50 " + num(c.host.p_ms(0.5), 3) +
               " ms, p95 " + num(c.host.p_ms(0.95), 3) + " ms)" +
               source(p, "encoder_decoder_timing"));
      }
    }
  });
}

void moe_section(const Run& run, Out& o) {
  section(o, "moe", "MoE expert load (per layer)", [&] {
    for (const Process& p : run.processes) {
      const auto* act = p.get<MoeActivationsAcc>("moe_expert_activations");
      const auto* imb = p.get<MoeImbalanceAcc>("moe_load_imbalance");
      if (!act && !imb) continue;
      std::vector<std::int64_t> layers;
      if (act)
        for (const auto& [l, _] : act->layers) layers.push_back(l);
      if (imb)
        for (const auto& [l, _] : imb->layers) layers.push_back(l);
      std::sort(layers.begin(), layers.end());
      layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
      for (const std::int64_t layer : layers) {
        const MoeActivationsAcc::Layer* a = nullptr;
        const MoeImbalanceAcc::Layer* m = nullptr;
        if (act)
          if (auto it = act->layers.find(layer); it != act->layers.end()) a = &it->second;
        if (imb)
          if (auto it = imb->layers.find(layer); it != imb->layers.end()) m = &it->second;
        const MoeCrunch c = moe_crunch(a, m);
        o.begin_entry(p, m ? m->intervals : a->rows);
        o.k("layer", double(layer));
        o.k("intervals", m ? double(m->intervals) : NAN);
        o.k("routed_tokens", c.routed);
        o.k("experts", c.experts);
        o.k("max_mean_ratio_worst", m ? m->worst_ratio : NAN);
        o.k("max_mean_ratio_mean", m && m->ratio_n ? m->ratio_sum / double(m->ratio_n) : NAN);
        o.k("run_max_mean_ratio", c.run_ratio);
        o.k("max_idle_experts", m ? m->max_idle : NAN);
        o.w.key("hottest");
        o.w.begin_array(Layout::kInline);
        std::string hot;
        for (const auto& [e, n] : c.hottest) {
          o.w.begin_object(Layout::kInline);
          o.k("expert_id", double(e));
          o.k("tokens", n);
          o.k("share_pct", share_pct(n, c.routed));
          o.w.end_object();
          hot += (hot.empty() ? "" : ", ") + std::to_string(e) + " " + num(n, 0) + " (" +
                 pct(share_pct(n, c.routed)) + ")";
        }
        o.w.end_array();
        o.end_entry();
        std::string line = p.name + ": layer " + std::to_string(layer) + ": " + num(c.routed, 0) +
                           " routed tokens over " + num(c.experts, 0) + " experts";
        if (m)
          line += ", max/mean per interval worst " + num(m->worst_ratio, 2) + ", mean " +
                  num(m->ratio_n ? m->ratio_sum / double(m->ratio_n) : NAN, 2) + " (" +
                  std::to_string(m->intervals) + " intervals)";
        if (a) line += ", over the run " + num(c.run_ratio, 2) + "; hottest " + hot;
        line += source(p, a ? "moe_expert_activations" : "moe_load_imbalance");
        o.line(line);
      }
    }
  });
}

void slow_list(Out& o, const char* key, const char* title, const Run& run,
               const std::vector<std::uint8_t>& flags, bool by_e2e) {
  o.w.key(key);
  o.w.begin_array(Layout::kBlock);
  // The engine's view when an EngineCore wrote the table (it knows when a request was first
  // scheduled), else the API's.
  int best = 9;
  for (const Process& p : run.processes)
    if (const auto* r = p.get<RequestAcc>("request_lifecycle"); r && r->requests)
      best = std::min(best, p.order == 1 ? 0 : 1);
  std::vector<SlowRequest> rows;
  for (const Process& p : run.processes) {
    const auto* r = p.get<RequestAcc>("request_lifecycle");
    if (!r || !r->requests || (p.order == 1 ? 0 : 1) != best) continue;
    for (const RequestRow& q : by_e2e ? r->slow_e2e : r->slow_ttft)
      rows.push_back(slow_request(p, q, flags));
  }
  auto key_of = [&](const SlowRequest& s) { return by_e2e ? s.row->e2e() : s.row->ttft(); };
  std::sort(rows.begin(), rows.end(), [&](const SlowRequest& a, const SlowRequest& b) {
    return key_of(a) != key_of(b) ? key_of(a) > key_of(b) : a.row->id < b.row->id;
  });
  if (rows.size() > RequestAcc::kTop) rows.resize(RequestAcc::kTop);
  if (!rows.empty()) {
    o.heading(title);
    o.line(pad("request", 28, false) + pad("process", 18, false) + pad("e2e s", 9, true) +
           pad("ttft s", 9, true) + pad("queued", 9, true) + pad("prefill", 9, true) +
           pad("decode", 9, true) + pad("preempt s", 10, true) + pad("n", 4, true) +
           pad("recomp", 8, true) + pad("eager", 8, true));
  }
  for (const SlowRequest& s : rows) {
    const RequestRow& q = *s.row;
    o.w.begin_object(Layout::kInline);
    o.ks("process", s.process);
    o.ks("request_id", q.id);
    o.ks("finish_reason", q.finish_reason);
    o.k("e2e_s", q.e2e());
    o.k("ttft_s", q.ttft());
    o.k("queued_s", s.queued());
    o.k("prefill_s", s.prefill());
    o.k("decode_s", s.decode());
    o.k("preempted_s", s.preempted_s);
    o.k("preemptions", s.preemptions);
    o.k("recomputed_tokens", s.recomputed);
    o.k("prompt_tokens", q.prompt_tokens);
    o.k("output_tokens", q.output_tokens);
    o.k("steps", s.steps);
    o.k("eager_steps", s.eager_steps);
    o.k("eager_step_pct", share_pct(s.eager_steps, s.steps));
    o.w.end_object();
    std::string id = q.id.size() > 27 ? q.id.substr(0, 24) + "..." : q.id;
    o.line(pad(id, 28, false) +
           pad(s.process.size() > 17 ? s.process.substr(0, 17) : s.process, 18, false) +
           pad(num(q.e2e(), 3), 9, true) + pad(num(q.ttft(), 3), 9, true) +
           pad(num(s.queued(), 3), 9, true) + pad(num(s.prefill(), 3), 9, true) +
           pad(num(s.decode(), 3), 9, true) + pad(num(s.preempted_s, 3), 10, true) +
           pad(num(s.preemptions, 0), 4, true) + pad(num(s.recomputed, 0), 8, true) +
           pad(pct(share_pct(s.eager_steps, s.steps)), 8, true));
  }
  o.w.end_array();
}

}  // namespace

Rendered render(const Run& run) {
  Out o;
  o.w.begin_object(Layout::kBlock);
  o.ku("report_format", 1);
  o.ks("profilemate_version", version());
  o.w.key("sessions");
  o.w.begin_array(Layout::kInline);
  for (const std::string& s : run.sessions) o.w.value_str(utf8_clean(s));
  o.w.end_array();
  o.ku("tables_read", run.tables_read);
  o.ku("rows_read", run.rows_read);
  o.w.key("trace");
  o.w.begin_object(Layout::kInline);
  o.ks("file", "trace.json");
  o.ku("events", run.trace_events);
  o.ku("processes", run.trace_files);
  o.w.end_object();
  o.text += "ProfileMate report: " + std::to_string(run.sessions.size()) + " session(s), " +
            std::to_string(run.processes.size()) + " process(es), " +
            std::to_string(run.tables_read) + " tables, " + std::to_string(run.rows_read) +
            " rows\n";
  for (const std::string& s : run.sessions) o.line("session " + s);
  o.line("timeline: trace.json, " + std::to_string(run.trace_events) + " events of " +
         std::to_string(run.trace_files) +
         " processes on one clock (open it in Perfetto UI or chrome://tracing)");
  o.w.key("processes");
  o.w.begin_array(Layout::kBlock);
  for (const Process& p : run.processes) {
    o.w.begin_object(Layout::kInline);
    o.ks("process", p.name);
    o.ks("label", p.label);
    o.ks("dir", p.dir);
    o.w.key("tables");
    o.w.begin_object(Layout::kInline);
    std::uint64_t rows = 0;
    for (const auto& [t, n] : p.rows) {
      o.w.key(utf8_clean(t));
      o.w.value_uint(n);
      rows += n;
    }
    o.w.end_object();
    o.w.key("final");
    if (p.has_summary)
      o.w.value_bool(p.final);
    else
      o.w.value_null();
    o.ku("dropped", p.dropped);
    o.ku("lost", p.lost);
    o.w.end_object();
    o.line("process " + p.name + ": " + std::to_string(p.rows.size()) + " tables, " +
           std::to_string(rows) + " rows" +
           (!p.has_summary ? "; no summary.json (killed before its first snapshot?)"
            : !p.final     ? "; summary.json not final (stopped by a signal, or still running)"
                           : "") +
           (p.dropped || p.lost ? "; " + std::to_string(p.dropped) + " events dropped, " +
                                      std::to_string(p.lost) + " lost"
                                : ""));
  }
  o.w.end_array();
  o.w.key("warnings");
  o.w.begin_array(Layout::kBlock);
  for (const std::string& w : run.warnings) o.w.value_str(utf8_clean(w));
  o.w.end_array();
  if (!run.warnings.empty())
    o.line(std::to_string(run.warnings.size()) +
           " file(s) or folder(s) not fully read: see the warnings at the end");

  steps_section(run, o);
  graphs_section(run, o);
  kv_section(run, o);
  preempt_section(run, o);
  batch_section(run, o);
  forward_section(run, o);
  cpu_section(run, o);
  encoder_section(run, o);
  moe_section(run, o);
  const std::vector<std::uint8_t> flags = merged_step_flags(run);
  o.w.key("slow_requests");
  o.w.begin_object(Layout::kBlock);
  slow_list(o, "by_e2e",
            "Slowest requests by end-to-end latency (seconds; preempt s is inside "
            "prefill/decode)",
            run, flags, true);
  slow_list(o, "by_ttft", "Slowest requests by time to first token", run, flags, false);
  o.w.end_object();
  o.w.end_object();
  if (!run.warnings.empty()) {
    o.heading("Warnings");
    for (const std::string& w : run.warnings) o.line(w);
  }
  Rendered r;
  r.text = std::move(o.text);
  r.json.assign(o.buf.data(), o.buf.size());
  r.json += '\n';
  r.html = render_html(run, r.text);
  return r;
}

}  // namespace profilemate::report
