// report.html: one self-contained page that opens offline. No script, no external stylesheet,
// font or image: every chart is inline SVG drawn here from the same accumulators as the summary
// (a vendored chart library would add a script to audit and ship for a handful of line and bar
// charts).
#include <algorithm>
#include <cmath>

#include "report/model.hpp"
#include "report/render_util.hpp"

namespace profilemate::report {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string esc(std::string_view raw) {
  const std::string s = utf8_clean(raw);
  std::string r;
  r.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        r += "&amp;";
        break;
      case '<':
        r += "&lt;";
        break;
      case '>':
        r += "&gt;";
        break;
      case '"':
        r += "&quot;";
        break;
      default:
        r += c;
    }
  }
  return r;
}

struct Line {
  std::string name;
  const std::vector<std::pair<double, double>>* pts;
};

constexpr double kW = 760, kH = 250, kL = 56, kR = 16, kT = 28, kB = 40;

std::string axis_label(double v) {
  const double a = std::fabs(v);
  return num(v, a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
}
// Enough decimals that ticks `step` apart print differently.
std::string tick_label(double v, double step) {
  if (!(step > 0)) return axis_label(v);
  const int decimals = static_cast<int>(std::ceil(-std::log10(step)));
  return num(v, std::clamp(decimals, 0, 6));
}

// Axes, ticks and labels of a plot area mapping [x0, x1] x [y0, y1].
void axes(std::string& h, double x0, double x1, double y0, double y1, const std::string& xl,
          const std::string& yl) {
  h += "<line x1=\"" + num(kL, 0) + "\" y1=\"" + num(kH - kB, 0) + "\" x2=\"" + num(kW - kR, 0) +
       "\" y2=\"" + num(kH - kB, 0) + "\" stroke=\"#333\"/>";
  h += "<line x1=\"" + num(kL, 0) + "\" y1=\"" + num(kT, 0) + "\" x2=\"" + num(kL, 0) + "\" y2=\"" +
       num(kH - kB, 0) + "\" stroke=\"#333\"/>";
  for (int i = 0; i <= 4; ++i) {
    const double fx = kL + (kW - kL - kR) * i / 4.0, fy = kH - kB - (kH - kT - kB) * i / 4.0;
    h += "<text x=\"" + num(fx, 1) + "\" y=\"" + num(kH - kB + 14, 0) +
         "\" font-size=\"10\" text-anchor=\"middle\">" +
         tick_label(x0 + (x1 - x0) * i / 4.0, (x1 - x0) / 4.0) + "</text>";
    h += "<text x=\"" + num(kL - 4, 0) + "\" y=\"" + num(fy + 3, 1) +
         "\" font-size=\"10\" text-anchor=\"end\">" +
         tick_label(y0 + (y1 - y0) * i / 4.0, (y1 - y0) / 4.0) + "</text>";
    h += "<line x1=\"" + num(kL, 0) + "\" y1=\"" + num(fy, 1) + "\" x2=\"" + num(kW - kR, 0) +
         "\" y2=\"" + num(fy, 1) + "\" stroke=\"#eee\"/>";
  }
  h += "<text x=\"" + num((kL + kW - kR) / 2, 0) + "\" y=\"" + num(kH - 6, 0) +
       "\" font-size=\"11\" text-anchor=\"middle\">" + esc(xl) + "</text>";
  h += "<text x=\"12\" y=\"" + num((kT + kH - kB) / 2, 0) +
       "\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 " +
       num((kT + kH - kB) / 2, 0) + ")\">" + esc(yl) + "</text>";
}

std::string line_chart(const std::string& id, const std::vector<Line>& lines, const std::string& xl,
                       const std::string& yl, double y_max) {
  double x0 = INFINITY, x1 = -INFINITY, y1 = y_max;
  for (const Line& l : lines)
    for (const auto& [x, y] : *l.pts) {
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y1 = std::max(y1, y);
    }
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > 0)) y1 = 1;
  std::string h = "<svg class=\"chart\" id=\"" + id + "\" width=\"" + num(kW, 0) + "\" height=\"" +
                  num(kH, 0) + "\" viewBox=\"0 0 " + num(kW, 0) + " " + num(kH, 0) +
                  "\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">";
  axes(h, x0, x1, 0, y1, xl, yl);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const char* color = kColors[i % std::size(kColors)];
    h += "<polyline class=\"series\" data-points=\"" + std::to_string(lines[i].pts->size()) +
         "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : *lines[i].pts) {
      h += num(kL + (kW - kL - kR) * (x - x0) / (x1 - x0), 1) + "," +
           num(kH - kB - (kH - kT - kB) * y / y1, 1) + " ";
    }
    h += "\"/>";
    h += "<text x=\"" + num(kL + 8 + 260.0 * static_cast<double>(i), 0) + "\" y=\"" +
         num(kT - 10, 0) + "\" font-size=\"11\" fill=\"" + color + "\">" + esc(lines[i].name) +
         "</text>";
  }
  h += "</svg>\n";
  return h;
}

// One bar chart of a log-binned histogram per phase, bars side by side.
std::string histogram_chart(const std::string& id,
                            const std::vector<std::pair<std::string, const LogBins*>>& hs) {
  int lo = LogBins::kBins, hi = -1;
  std::uint64_t top = 1;
  for (const auto& [name, b] : hs)
    for (int i = 0; i < LogBins::kBins; ++i)
      if (b->count[i]) {
        lo = std::min(lo, i);
        hi = std::max(hi, i);
        top = std::max(top, b->count[i]);
      }
  if (hi < 0) return "";
  lo = std::max(0, lo - 1);
  hi = std::min(LogBins::kBins - 1, hi + 1);
  const int bins = hi - lo + 1;
  std::string h = "<svg class=\"chart\" id=\"" + id + "\" width=\"" + num(kW, 0) + "\" height=\"" +
                  num(kH, 0) + "\" viewBox=\"0 0 " + num(kW, 0) + " " + num(kH, 0) +
                  "\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">";
  const double pw = kW - kL - kR, ph = kH - kT - kB;
  h += "<line x1=\"" + num(kL, 0) + "\" y1=\"" + num(kH - kB, 0) + "\" x2=\"" + num(kW - kR, 0) +
       "\" y2=\"" + num(kH - kB, 0) + "\" stroke=\"#333\"/>";
  for (int i = 0; i <= 4; ++i) {
    const double fy = kH - kB - ph * i / 4.0;
    h += "<text x=\"" + num(kL - 4, 0) + "\" y=\"" + num(fy + 3, 1) +
         "\" font-size=\"10\" text-anchor=\"end\">" + num(double(top) * i / 4.0, 0) + "</text>";
  }
  for (int b = 0; b <= bins; b += std::max(1, bins / 8)) {
    const double x = kL + pw * b / bins;
    h += "<text x=\"" + num(x, 1) + "\" y=\"" + num(kH - kB + 14, 0) +
         "\" font-size=\"10\" text-anchor=\"middle\">" + axis_label(LogBins::edge_ms(lo + b)) +
         "</text>";
  }
  h += "<text x=\"" + num((kL + kW - kR) / 2, 0) + "\" y=\"" + num(kH - 6, 0) +
       "\" font-size=\"11\" text-anchor=\"middle\">forward time, ms (log scale, 8 bins a "
       "decade)</text>";
  const double slot = pw / bins, bw = slot / double(std::max<std::size_t>(hs.size(), 1));
  for (std::size_t s = 0; s < hs.size(); ++s) {
    const char* color = kColors[s % std::size(kColors)];
    for (int b = 0; b < bins; ++b) {
      const std::uint64_t c = hs[s].second->count[lo + b];
      if (!c) continue;
      const double bh = ph * double(c) / double(top);
      h += "<rect class=\"bar\" x=\"" + num(kL + slot * b + bw * double(s), 1) + "\" y=\"" +
           num(kH - kB - bh, 1) + "\" width=\"" + num(std::max(bw - 1, 1.0), 1) + "\" height=\"" +
           num(bh, 1) + "\" fill=\"" + color + "\"><title>" + esc(hs[s].first) + ": " +
           std::to_string(c) + " forwards, " + num(LogBins::edge_ms(lo + b), 3) + "-" +
           num(LogBins::edge_ms(lo + b + 1), 3) + " ms</title></rect>";
    }
    h += "<text x=\"" + num(kL + 8 + 120.0 * double(s), 0) + "\" y=\"" + num(kT - 10, 0) +
         "\" font-size=\"11\" fill=\"" + color + "\">" + esc(hs[s].first) + "</text>";
  }
  h += "</svg>\n";
  return h;
}

std::string td(const std::string& s, bool right = true) {
  return std::string(right ? "<td class=\"n\">" : "<td>") + esc(s) + "</td>";
}

// A request's time as a stacked bar: queued, prefill, decode (preempted time is inside them).
std::string split_bar(const SlowRequest& s, double scale_s) {
  const double parts[] = {s.queued(), s.prefill(), s.decode()};
  const char* colors[] = {"#bbb", "#ff7f0e", "#1f77b4"};
  std::string h = "<svg width=\"220\" height=\"14\" xmlns=\"http://www.w3.org/2000/svg\">";
  double x = 0;
  for (int i = 0; i < 3; ++i) {
    if (!std::isfinite(parts[i]) || parts[i] <= 0 || scale_s <= 0) continue;
    const double w = 220 * parts[i] / scale_s;
    h += "<rect x=\"" + num(x, 1) + "\" y=\"2\" width=\"" + num(w, 1) + "\" height=\"10\" fill=\"" +
         colors[i] + "\"/>";
    x += w;
  }
  return h + "</svg>";
}

// Expert x layer heat map of the tokens routed over the run (moe_expert_activations.csv): one
// cell per (layer, expert), darker = more tokens (linear, the busiest cell darkest).
// Ids from kMaxExperts on (no real model has that many; a corrupt file might) are not drawn.
constexpr std::int64_t kMaxExperts = 4096;
std::string moe_heat_map(const std::string& id, const MoeActivationsAcc& a) {
  std::int64_t experts = 0;
  double top = 0;
  for (const auto& [layer, l] : a.layers)
    for (const auto& [e, n] : l.experts)
      if (e >= 0 && e < kMaxExperts) {
        experts = std::max(experts, e + 1);
        top = std::max(top, n);
      }
  if (experts == 0 || top <= 0) return "";
  const double cw = std::clamp((kW - kL - kR) / double(experts), 4.0, 28.0), ch = 16;
  const double w = kL + cw * double(experts) + kR;
  const double hgt = kT + ch * double(a.layers.size()) + kB;
  std::string h = "<svg class=\"chart\" id=\"" + id + "\" width=\"" + num(w, 0) + "\" height=\"" +
                  num(hgt, 0) + "\" viewBox=\"0 0 " + num(w, 0) + " " + num(hgt, 0) +
                  "\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">";
  const std::int64_t label_every = std::max<std::int64_t>(1, (experts + 15) / 16);
  double y = kT;
  for (const auto& [layer, l] : a.layers) {
    h += "<text x=\"" + num(kL - 4, 0) + "\" y=\"" + num(y + ch - 4, 1) +
         "\" font-size=\"10\" text-anchor=\"end\">" + std::to_string(layer) + "</text>";
    for (const auto& [e, n] : l.experts) {
      if (e < 0 || e >= kMaxExperts) continue;
      const int shade = static_cast<int>(std::lround(255 * (1 - n / top)));
      h += "<rect class=\"cell\" data-layer=\"" + std::to_string(layer) + "\" data-expert=\"" +
           std::to_string(e) + "\" data-tokens=\"" + num(n, 0) + "\" x=\"" +
           num(kL + cw * double(e), 1) + "\" y=\"" + num(y, 1) + "\" width=\"" + num(cw, 1) +
           "\" height=\"" + num(ch, 1) + "\" fill=\"rgb(255," + std::to_string(shade) + "," +
           std::to_string(shade) + ")\" stroke=\"#eee\"><title>layer " + std::to_string(layer) +
           ", expert " + std::to_string(e) + ": " + num(n, 0) + " tokens (" +
           pct(share_pct(n, l.routed)) + ")</title></rect>";
    }
    y += ch;
  }
  for (std::int64_t e = 0; e < experts; e += label_every)
    h += "<text x=\"" + num(kL + cw * (double(e) + 0.5), 1) + "\" y=\"" + num(y + 12, 1) +
         "\" font-size=\"10\" text-anchor=\"middle\">" + std::to_string(e) + "</text>";
  const std::string mid = num(kT + (y - kT) / 2, 1);
  h += "<text x=\"" + num(kL + cw * double(experts) / 2, 1) + "\" y=\"" + num(y + 30, 1) +
       "\" font-size=\"11\" text-anchor=\"middle\">expert</text><text x=\"12\" y=\"" + mid +
       "\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 " + mid +
       ")\">layer</text><text x=\"" + num(kL, 0) +
       "\" y=\"18\" font-size=\"11\">tokens routed over the run (darkest: " + num(top, 0) +
       ")</text></svg>\n";
  return h;
}

void slow_table(std::string& h, const Run& run, const std::vector<std::uint8_t>& flags,
                bool by_e2e) {
  std::vector<SlowRequest> rows;
  for (const Process& p : run.processes)
    if (const auto* r = p.get<RequestAcc>("request_lifecycle"); r && p.order == 1)
      for (const RequestRow& q : by_e2e ? r->slow_e2e : r->slow_ttft)
        rows.push_back(slow_request(p, q, flags));
  if (rows.empty())
    for (const Process& p : run.processes)
      if (const auto* r = p.get<RequestAcc>("request_lifecycle"))
        for (const RequestRow& q : by_e2e ? r->slow_e2e : r->slow_ttft)
          rows.push_back(slow_request(p, q, flags));
  auto key = [&](const SlowRequest& s) { return by_e2e ? s.row->e2e() : s.row->ttft(); };
  std::sort(rows.begin(), rows.end(), [&](const SlowRequest& a, const SlowRequest& b) {
    return key(a) != key(b) ? key(a) > key(b) : a.row->id < b.row->id;
  });
  if (rows.size() > RequestAcc::kTop) rows.resize(RequestAcc::kTop);
  if (rows.empty()) return;
  double scale = 0;
  for (const SlowRequest& s : rows) scale = std::max(scale, s.row->e2e());
  h += std::string("<h3>Slowest by ") + (by_e2e ? "end-to-end latency" : "time to first token") +
       "</h3>\n<table class=\"slow\" id=\"slow-" + (by_e2e ? "e2e" : "ttft") +
       "\"><tr><th>request</th><th>process</th><th>e2e s</th><th>TTFT s</th><th>queued s</th>"
       "<th>prefill s</th><th>decode s</th><th>preempted s</th><th>preemptions</th>"
       "<th>recomputed tokens</th><th>eager steps</th><th>queued / prefill / decode</th></tr>\n";
  for (const SlowRequest& s : rows) {
    const RequestRow& q = *s.row;
    h += "<tr>" + td(q.id, false) + td(s.process, false) + td(num(q.e2e(), 3)) +
         td(num(q.ttft(), 3)) + td(num(s.queued(), 3)) + td(num(s.prefill(), 3)) +
         td(num(s.decode(), 3)) + td(num(s.preempted_s, 3)) + td(num(s.preemptions, 0)) +
         td(num(s.recomputed, 0)) + td(pct(share_pct(s.eager_steps, s.steps))) + "<td>" +
         split_bar(s, scale) + "</td></tr>\n";
  }
  h += "</table>\n";
}

}  // namespace

std::string render_html(const Run& run, const std::string& summary_text) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>ProfileMate report</title>\n<style>"
      "body{font-family:sans-serif;margin:1.5em;color:#222}"
      "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
      "padding:2px 6px;font-size:12px}td.n{text-align:right;font-variant-numeric:tabular-nums}"
      "th{background:#f4f4f4}pre{background:#f8f8f8;padding:1em;font-size:12px;overflow-x:auto}"
      "svg.chart{display:block;margin:.3em 0 1.2em;border:1px solid #eee}"
      "</style></head><body>\n<h1>ProfileMate report</h1>\n";
  h += "<p>";
  for (const std::string& s : run.sessions) h += "session <code>" + esc(s) + "</code><br>";
  h += std::to_string(run.processes.size()) + " processes, " + std::to_string(run.tables_read) +
       " tables, " + std::to_string(run.rows_read) + " rows</p>\n";

  bool any = false;
  for (const Process& p : run.processes)
    if (const auto* k = p.get<KvAcc>("kv_cache_usage"); k && !k->usage.points().empty()) {
      if (!any) h += "<h2>KV cache usage over time</h2>\n";
      any = true;
      h += "<h3>" + esc(p.name) + "</h3>\n" +
           line_chart("kv-" + std::to_string(&p - run.processes.data()),
                      {{"usage % (at schedule)", &k->usage.points()}},
                      "seconds since the session start", "KV cache usage %", 100);
    }
  any = false;
  for (const Process& p : run.processes)
    if (const auto* b = p.get<BatchAcc>("batch_utilization"); b && b->steps) {
      if (!any) h += "<h2>Batch utilization over time</h2>\n";
      any = true;
      h += "<h3>" + esc(p.name) + "</h3>\n" +
           line_chart("batch-" + std::to_string(&p - run.processes.data()),
                      {{"running requests % of max_num_seqs", &b->running_pct.points()},
                       {"scheduled tokens % of budget", &b->token_pct.points()}},
                      "seconds since the session start", "% of the cap", 100);
    }
  any = false;
  for (const Process& p : run.processes)
    if (const auto* f = p.get<ForwardAcc>("forward_pass_timing"); f && !f->phases.empty()) {
      std::vector<std::pair<std::string, const LogBins*>> hs;
      for (const auto& [phase, ph] : f->phases) hs.emplace_back(phase, &ph.bins);
      const std::string chart =
          histogram_chart("fwd-" + std::to_string(&p - run.processes.data()), hs);
      if (chart.empty()) continue;
      if (!any) h += "<h2>Forward time (serving forwards, host)</h2>\n";
      any = true;
      h += "<h3>" + esc(p.name) + "</h3>\n" + chart;
    }
  any = false;
  for (const Process& p : run.processes)
    if (const auto* a = p.get<MoeActivationsAcc>("moe_expert_activations")) {
      const std::string chart =
          moe_heat_map("moe-" + std::to_string(&p - run.processes.data()), *a);
      if (chart.empty()) continue;
      if (!any) h += "<h2>MoE expert load (expert &times; layer)</h2>\n";
      any = true;
      h += "<h3>" + esc(p.name) + "</h3>\n" + chart;
    }
  any = false;
  for (const Process& p : run.processes) {
    if (!p.get<GraphCapturesAcc>("cuda_graph_captures") &&
        !p.get<GraphUsageAcc>("cuda_graph_usage"))
      continue;
    const std::map<Descriptor, DescriptorStat> all = graph_descriptors(p);
    if (!any) h += "<h2>CUDA graph descriptors</h2>\n";
    any = true;
    h += "<h3>" + esc(p.name) +
         "</h3>\n<table class=\"graphs\"><tr><th>mode</th><th>tokens</th><th>requests</th>"
         "<th>uniform</th><th>LoRA</th><th>captures</th><th>capture ms</th><th>replays</th></tr>\n";
    for (const auto& [d, s] : all)
      h += "<tr>" + td(d.mode, false) + td(num(d.tokens, 0)) + td(num(d.reqs, 0)) +
           td(d.uniform ? "yes" : "no", false) + td(d.lora ? "yes" : "no", false) +
           td(std::to_string(s.captures)) + td(num(s.capture_ms, 3)) +
           td(std::to_string(s.replays)) + "</tr>\n";
    h += "</table>\n";
  }
  const std::vector<std::uint8_t> flags = merged_step_flags(run);
  std::string slow;
  slow_table(slow, run, flags, true);
  slow_table(slow, run, flags, false);
  if (!slow.empty())
    h += "<h2>Why was this slow</h2>\n<p>Bars: queued (grey), prefill (orange), decode (blue); "
         "time spent preempted is inside prefill or decode.</p>\n" +
         slow;
  h += "<h2>Summary</h2>\n<pre>" + esc(summary_text) + "</pre>\n</body></html>\n";
  return h;
}

}  // namespace profilemate::report
