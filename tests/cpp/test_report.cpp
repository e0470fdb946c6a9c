// The report (cpp/report/): the CSV reader's torn/corrupt-input rules, the per-table crunching on
// fixture session folders, and write_report's files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "json_check.hpp"
#include "profilemate/engine.hpp"
#include "profilemate/report.hpp"
#include "report/csv_reader.hpp"
#include "report/model.hpp"
#include "report/render_util.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace profilemate::report;
using ReportRun = profilemate::report::Run;
using profilemate::ReportResult;

namespace {

struct Parsed {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  CsvStats st;
};

Parsed parse(std::string_view data) {
  Parsed p;
  p.st = read_csv_bytes(
      data,
      [&](Fields f) {
        for (auto s : f) p.header.emplace_back(s);
        return true;
      },
      [&](Fields f) {
        std::vector<std::string> r;
        for (auto s : f) r.emplace_back(s);
        p.rows.push_back(std::move(r));
      });
  return p;
}

void write(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

bool has_warning(const std::vector<std::string>& w, const std::string& part1,
                 const std::string& part2) {
  for (const auto& s : w)
    if (s.find(part1) != std::string::npos && s.find(part2) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(ReportCsv, QuotedFieldsCrLfAndExtraColumns) {
  const Parsed p = parse("a,b,c\r\n1,\"x,\"\"y\"\"\nz\",3\r\n4,,6\n");
  ASSERT_EQ(p.header, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[0], (std::vector<std::string>{"1", "x,\"y\"\nz", "3"}));
  EXPECT_EQ(p.rows[1], (std::vector<std::string>{"4", "", "6"}));
  EXPECT_EQ(p.st.torn_bytes, 0u);
  EXPECT_EQ(p.st.malformed, 0u);
}

TEST(ReportCsv, TornLastRecordIsDroppedAndCounted) {
  // A killed process: the last record has no newline, or ends inside quotes.
  const Parsed a = parse("a,b\n1,2\n3,");
  EXPECT_EQ(a.rows.size(), 1u);
  EXPECT_EQ(a.st.torn_bytes, 2u);
  const Parsed b = parse("a,b\n1,2\n3,\"x\ny");
  EXPECT_EQ(b.rows.size(), 1u);
  EXPECT_EQ(b.st.torn_bytes, 6u);
  const Parsed c = parse("a,b");  // not even a header
  EXPECT_FALSE(c.st.header);
  EXPECT_EQ(c.st.torn_bytes, 3u);
}

TEST(ReportCsv, MalformedRowsAreSkippedNotFatal) {
  const Parsed p =
      parse(std::string("a,b\n1,2\n1,2,3\n5\n", 16) + std::string("x\0y,1\n", 6) + "7,8\n");
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[1], (std::vector<std::string>{"7", "8"}));
  EXPECT_EQ(p.st.malformed, 3u);  // too many, too few, a NUL byte
}

TEST(ReportCsv, ARecordLongerThanTheLimitStopsTheFileKeepingWhatCameBefore) {
  std::string data = "a,b\n1,2\n\"";
  data.append(3 * kMaxRecord, 'x');
  data += "\",3\n4,5\n";
  const Parsed p = parse(data);
  EXPECT_EQ(p.rows.size(), 1u);
  EXPECT_FALSE(p.st.error.empty());
}

TEST(ReportCsv, ReadsFilesLargerThanTheWindow) {
  pmtest::TempDir tmp;
  std::string data = "n,s\n";
  for (int i = 0; i < 200000; ++i)
    data += std::to_string(i) + ",\"q,\"\"" + std::to_string(i) + "\"\n";
  write(fs::path(tmp.path()) / "t.csv", data);
  std::uint64_t sum = 0, rows = 0;
  bool quotes_ok = true;
  const CsvStats st = read_csv(
      tmp.path() + "/t.csv", [](Fields) { return true; },
      [&](Fields f) {
        sum += std::stoull(std::string(f[0]));
        quotes_ok &= f[1] == "q,\"" + std::string(f[0]);
        ++rows;
      });
  EXPECT_EQ(rows, 200000u);
  EXPECT_EQ(sum, 200000ull * 199999 / 2);
  EXPECT_TRUE(quotes_ok);
  EXPECT_TRUE(st.error.empty());
}

TEST(ReportCsv, MissingFileAndFifoAreErrorsNotHangs) {
  pmtest::TempDir tmp;
  auto none = [](Fields) { return true; };
  auto skip = [](Fields) {};
  EXPECT_FALSE(read_csv(tmp.path() + "/absent.csv", none, skip).opened);
  const std::string fifo = tmp.path() + "/fifo.csv";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const CsvStats st = read_csv(fifo, none, skip);
  EXPECT_FALSE(st.opened);
  EXPECT_EQ(st.error, "not a regular file");
}

namespace {

// A small two-process session: an EngineCore with 4 steps, 3 requests (one preempted twice) and
// a worker with forwards in two phases, graph replays and eager forwards.
void write_fixture(const fs::path& session) {
  const fs::path ec = session / "enginecore-100";
  const fs::path wk = session / "worker-0-101";
  write(session / "metadata.json", "{}\n");
  write(ec / "batch_utilization.csv",
        "timestamp_sec,step_id,running_reqs,max_num_seqs,scheduled_reqs,scheduled_tokens,"
        "token_budget,prefill_reqs,prefill_tokens,decode_reqs,decode_tokens,batch_kind,"
        "waiting_reqs,waiting_deferred,preempted_reqs,limit,admitted_reqs\n"
        "1.0,1,2,4,2,20,100,2,20,0,0,prefill,1,0,0,kv_cache,2\n"
        "1.5,2,2,4,2,2,100,0,0,2,2,decode,0,0,1,kv_cache,0\n"
        "2.0,3,3,4,3,13,100,1,10,2,3,mixed,0,0,0,nothing_waiting,1\n"
        "3.0,4,0,4,0,0,100,0,0,0,0,empty,0,0,0,nothing_waiting,0\n");
  write(ec / "kv_cache_usage.csv",
        "timestamp_sec,step_id,point,scheduled_tokens,usage_pct,total_blocks,prefix_queries,"
        "prefix_hits,evicted_blocks\n"
        "1.0,1,schedule,20,50,11,20,0,0\n"
        "1.2,1,update,20,40,11,0,0,0\n"
        "1.5,2,schedule,2,95,11,0,0,0\n"
        "1.7,2,update,2,92,11,0,0,1\n"
        "2.0,3,schedule,13,100,11,10,5,0\n"
        "2.5,3,update,13,0,11,0,0,0\n");
  write(ec / "preemption_events.csv",
        "timestamp_sec,step_id,event,request_id,reason,kv_tokens_dropped,num_tokens,"
        "output_tokens,num_preemptions,prefix_hit_tokens,recomputed_tokens,preempted_sec,"
        "preempted_step,duration_ms\n"
        "1.5,2,preempted,req-b,kv_cache_exhausted,11,11,1,1,,,,,0.1\n"
        "2.0,3,resumed,req-b,kv_cache_exhausted,11,11,1,1,0,11,0.5,2,0\n"
        "2.1,3,preempted,req-b,kv_cache_exhausted,12,12,2,2,,,,,0.1\n"
        "2.4,3,resumed,req-b,kv_cache_exhausted,12,12,2,2,2,10,0.25,3,0\n");
  write(ec / "request_lifecycle.csv",
        "timestamp_sec,step_id,request_id,finish_reason,arrival_s,queued_s,first_scheduled_s,"
        "first_token_s,finish_s,prompt_tokens,output_tokens,num_preemptions,"
        "first_scheduled_step,first_token_step,first_token_engine_timestamp,"
        "finish_engine_timestamp\n"
        "2.0,3,req-a,length,100.0,100.0,100.5,101.0,102.0,10,5,0,1,1,,\n"
        "3.0,4,req-b,length,100.0,100.1,100.2,100.4,104.0,10,7,2,1,1,,\n"
        "3.0,4,\"req,c\",stop,101.0,101.0,103.0,103.5,103.6,10,3,0,3,3,,\n");
  write(ec / "cpu_operations_timing.csv",
        "timestamp_sec,step_id,operation,duration_ms,context,num_tokens,engine_timestamp,"
        "num_requests\n"
        "1.0,1,schedule,1,Scheduler.schedule,20,0,0\n"
        "1.5,2,schedule,3,Scheduler.schedule,2,0,0\n"
        "2.0,3,schedule,2,Scheduler.schedule,13,0,0\n"
        "3.0,4,schedule,4,Scheduler.schedule,0,0,0\n");
  write(wk / "forward_pass_timing.csv",
        "timestamp_sec,step_id,run,phase,num_reqs,num_tokens,forward_time_ms,gpu_time_ms,"
        "throughput_tokens_per_sec\n"
        "0.5,,profile,,1,8,50,,160\n"
        "1.0,1,serve,prefill,2,20,10,,2000\n"
        "1.5,2,serve,decode,2,2,2,,1000\n"
        "2.0,3,serve,mixed,3,13,6,,2166\n");
  write(wk / "cuda_graph_timeline.csv",
        "timestamp_sec,step_id,runtime_mode,eager_reason,graph_action,num_tokens,"
        "num_padded_tokens,num_reqs,uniform,has_lora,duration_ms,descriptor_num_reqs\n"
        "0.6,,FULL,,capture,4,4,4,1,0,30,4\n"
        "1.0,1,NONE,too_many_tokens,eager,20,20,2,0,0,10,\n"
        "1.5,2,FULL,,replay,2,4,2,1,0,2,4\n"
        "2.0,3,NONE,mixed_batch,eager,13,13,3,0,0,6,\n");
  write(wk / "cuda_graph_captures.csv",
        "timestamp_sec,runtime_mode,num_tokens,num_reqs,uniform,has_lora,capture_time_ms,source\n"
        "0.6,FULL,4,4,1,0,30,CUDAGraphWrapper\n");
  write(wk / "cuda_graph_usage.csv",
        "timestamp_sec,step_id,runtime_mode,num_tokens,num_reqs,uniform,has_lora,replay_count\n"
        "1.5,2,FULL,4,4,1,0,1\n");
}

}  // namespace

TEST(Report, CrunchesEveryTableOfAFixtureSession) {
  pmtest::TempDir tmp;
  const fs::path session = fs::path(tmp.path()) / "20260101-000000-host-100";
  write_fixture(session);
  const ReportRun run = load_run({session.string()});
  EXPECT_TRUE(run.warnings.empty()) << run.warnings.front();
  ASSERT_EQ(run.processes.size(), 2u);
  const Process& ec = run.processes[0];
  const Process& wk = run.processes[1];
  EXPECT_EQ(ec.label, "enginecore");
  EXPECT_EQ(wk.label, "worker-0");
  EXPECT_EQ(run.tables_read, 9u);

  const auto* b = ec.get<BatchAcc>("batch_utilization");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->steps, 4u);
  EXPECT_EQ(b->working, 3u);
  EXPECT_EQ(b->tokens, 35);
  EXPECT_DOUBLE_EQ(b->running_sum / double(b->working), 7.0 / 3);
  EXPECT_EQ(b->limits.at("kv_cache"), 2u);
  EXPECT_EQ(b->limits.at("nothing_waiting"), 1u);  // the empty step is not a working step

  const auto* k = ec.get<KvAcc>("kv_cache_usage");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->peak, 100);
  EXPECT_EQ(k->peak_step, 3);
  EXPECT_DOUBLE_EQ(k->mean_sum / double(k->mean_rows), (50.0 + 95 + 100) / 3);
  // >= 90% from 1.5 (95) through 1.7 (92) and 2.0 (100) until 2.5: 1.0 s
  EXPECT_NEAR(k->above90_s, 1.0, 1e-9);
  EXPECT_EQ(k->prefix_hits, 5);
  EXPECT_EQ(k->evicted, 1);

  const auto* e = ec.get<PreemptAcc>("preemption_events");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->preempted, 2u);
  EXPECT_EQ(e->resumed, 2u);
  EXPECT_EQ(e->recomputed, 21);
  EXPECT_DOUBLE_EQ(e->preempted_s, 0.75);
  ASSERT_EQ(e->by_request.size(), 1u);
  EXPECT_EQ(e->by_request.at("req-b").preemptions, 2u);

  const auto* r = ec.get<RequestAcc>("request_lifecycle");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->requests, 3u);
  EXPECT_EQ(r->output_tokens, 15);
  ASSERT_EQ(r->slow_e2e.size(), 3u);
  EXPECT_EQ(r->slow_e2e[0].id, "req-b");   // 4.0 s
  EXPECT_EQ(r->slow_ttft[0].id, "req,c");  // 2.5 s, an id with a comma (quoted)

  const auto flags = merged_step_flags(run);
  const SlowRequest s = slow_request(ec, r->slow_e2e[0], flags);
  EXPECT_NEAR(s.queued(), 0.2, 1e-9);
  EXPECT_NEAR(s.prefill(), 0.2, 1e-9);
  EXPECT_NEAR(s.decode(), 3.6, 1e-9);
  EXPECT_DOUBLE_EQ(s.preempted_s, 0.75);
  EXPECT_EQ(s.recomputed, 21);
  EXPECT_EQ(s.preemptions, 2);
  EXPECT_EQ(s.steps, 3);        // steps 1..4; step 4 ran no forward
  EXPECT_EQ(s.eager_steps, 2);  // steps 1 and 3

  const auto* f = wk.get<ForwardAcc>("forward_pass_timing");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->phases.size(), 3u);
  EXPECT_EQ(f->other_runs.at("profile"), 1u);
  EXPECT_EQ(f->phases.at("prefill").host.n, 1u);
  EXPECT_NEAR(f->phases.at("prefill").host.p_ms(0.5), 10, 0.05);
  EXPECT_EQ(f->phases.at("prefill").gpu.n, 0u);  // empty gpu_time_ms: no value, not 0

  const auto* g = wk.get<GraphTimelineAcc>("cuda_graph_timeline");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->forwards, 3u);
  EXPECT_EQ(g->graph_forwards, 1u);
  EXPECT_EQ(g->graph_tokens, 2);
  EXPECT_EQ(g->graph_padded, 4);
  EXPECT_EQ(g->eager_reasons.at("too_many_tokens"), 1u);

  const auto* c = ec.get<CpuOpsAcc>("cpu_operations_timing");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->ops.at("schedule").n, 4u);
  EXPECT_NEAR(c->ops.at("schedule").total_ms, 10, 1e-9);
  EXPECT_NEAR(c->window_end - c->window_start, 2.004, 1e-9);
}

TEST(Report, WritesTextJsonAndHtml) {
  pmtest::TempDir tmp;
  const fs::path session = fs::path(tmp.path()) / "s";
  write_fixture(session);
  const profilemate::ReportResult res = profilemate::write_report({session.string()}, "");
  EXPECT_EQ(res.out_dir, session.string() + "/report");
  EXPECT_EQ(res.tables_read, 9u);
  const std::string text = pmtest::read_file(res.out_dir + "/summary.txt");
  EXPECT_EQ(text, res.summary_text);
  for (const char* part :
       {"enginecore-100: 4 steps (3 scheduled work)", "2 preemptions of 1 requests",
        "worker-0-101: 3 serving forwards, 33.3% from graphs", "too_many_tokens 1",
        "Slowest requests by end-to-end latency", "req-b",
        "[enginecore-100: batch_utilization.csv, 4 rows]"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
  const std::string json = pmtest::read_file(res.out_dir + "/summary.json");
  EXPECT_TRUE(pmtest::JsonChecker(json).valid()) << json;
  for (const char* part :
       {"\"steps_per_s\": ", "\"generated_tokens\": 15", "\"recomputed_tokens\": 21",
        "\"request_id\": \"req,c\"", "\"eager_reasons\": {\"mixed_batch\": 1, "})
    EXPECT_NE(json.find(part), std::string::npos) << part << "\n" << json;
  const std::string html = pmtest::read_file(res.out_dir + "/report.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  for (const char* part :
       {// KV usage (3 schedule rows) and batch utilization (2 lines of 4 steps) over time
        "class=\"series\" data-points=\"3\"", "class=\"series\" data-points=\"4\"",
        // the forward-time histogram (3 phases, one forward each), the descriptor table
        "<rect class=\"bar\"",
        "<tr><td>FULL</td><td class=\"n\">4</td><td class=\"n\">4</td><td>yes</td><td>no</td>"
        "<td class=\"n\">1</td><td class=\"n\">30.000</td><td class=\"n\">1</td></tr>",
        // the slow-request tables, ids escaped
        "<table class=\"slow\" id=\"slow-e2e\">", "<td>req-b</td>", "<td>req,c</td>"})
    EXPECT_NE(html.find(part), std::string::npos) << part;
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  // The report folder is not read back as a process on the next run.
  const profilemate::ReportResult again = profilemate::write_report({session.string()}, "");
  EXPECT_EQ(again.summary_text, res.summary_text);
}

TEST(Report, BadFilesAreWarnedAboutAndTheRestIsReported) {
  pmtest::TempDir tmp;
  const fs::path session = fs::path(tmp.path()) / "s";
  write_fixture(session);
  const fs::path ec = session / "enginecore-100";
  write(ec / "kv_cache_usage.csv", "");                                  // empty
  write(ec / "preemption_events.csv", "\x01\x02garbage,x\n\x7f,1\n");    // foreign / corrupt
  write(ec / "lifecycle.csv", "a,\"b\n\x7f");                            // no complete line
  write(ec / "request_flow.csv", "timestamp_sec,step_id\n1.0,1\n2.0,");  // an unknown table, torn
  write(ec / "cpu_operations_timing.csv",                                // an old format
        "timestamp_sec,step,operation,duration_ms\n1.0,1,schedule,1\n");
  // a torn last line and a corrupt number in the batch table
  std::string batch = pmtest::read_file((ec / "batch_utilization.csv").string());
  batch += "4.0,5,x,4,0,0,100,0,0,0,0,empty,0,0,0,nothing_waiting,0\n5.0,6,1,4";
  write(ec / "batch_utilization.csv", batch);
  fs::create_directories(session / "not-a-process");  // no tables: not listed
  const ReportRun run = load_run({session.string(), (fs::path(tmp.path()) / "absent").string()});
  const auto& w = run.warnings;
  EXPECT_TRUE(has_warning(w, "kv_cache_usage.csv", "empty")) << w.size();
  EXPECT_TRUE(has_warning(w, "preemption_events.csv", "not a preemption_events table"));
  EXPECT_TRUE(has_warning(w, "request_flow.csv", "torn last line"));
  EXPECT_TRUE(has_warning(w, "cpu_operations_timing.csv", "no column 'step_id'"));
  EXPECT_TRUE(has_warning(w, "batch_utilization.csv", "torn last line"));
  EXPECT_TRUE(has_warning(w, "batch_utilization.csv", "1 field(s) that are not numbers"));
  EXPECT_TRUE(has_warning(w, "lifecycle.csv", "no complete line"));
  EXPECT_TRUE(has_warning(w, "absent", "not a folder"));
  EXPECT_EQ(w.size(), 8u);
  ASSERT_EQ(run.processes.size(), 2u);
  const Process& p = run.processes[0];
  EXPECT_EQ(p.get<KvAcc>("kv_cache_usage"), nullptr);
  EXPECT_EQ(p.get<PreemptAcc>("preemption_events"), nullptr);
  EXPECT_EQ(p.rows_of("request_flow"), 1u);
  ASSERT_NE(p.get<BatchAcc>("batch_utilization"), nullptr);
  EXPECT_EQ(p.get<BatchAcc>("batch_utilization")->steps, 5u);  // the torn line only is dropped
  ASSERT_NE(p.get<RequestAcc>("request_lifecycle"), nullptr);
  // Without preemption_events, the slow-request split still has the request's own count.
  const auto* r = p.get<RequestAcc>("request_lifecycle");
  const SlowRequest s = slow_request(p, r->slow_e2e[0], merged_step_flags(run));
  EXPECT_EQ(s.preemptions, 2);
  EXPECT_TRUE(std::isnan(s.preempted_s));
}

TEST(Report, WithoutPreemptionEventsPreemptionStepsSayThereWereNone) {
  pmtest::TempDir tmp;
  const fs::path session = fs::path(tmp.path()) / "s";
  write_fixture(session);
  const fs::path ec = session / "enginecore-100";
  fs::remove(ec / "preemption_events.csv");  // a run without preemptions never creates it
  write(ec / "preemption_steps.csv",
        "timestamp_sec,step_id,preempted_reqs,resumed_reqs,prefix_hit_tokens,recomputed_tokens,"
        "preempted_waiting\n1.0,1,0,0,0,0,0\n1.5,2,0,0,0,0,0\n");
  const ReportResult res = profilemate::write_report({session.string()}, "");
  EXPECT_NE(res.summary_text.find("enginecore-100: 0 preemptions, 0 resumed"), std::string::npos)
      << res.summary_text;
  const ReportRun run = load_run({session.string()});
  const Process& p = run.processes[0];
  const auto* r = p.get<RequestAcc>("request_lifecycle");
  const SlowRequest s = slow_request(p, r->slow_e2e[1], merged_step_flags(run));
  EXPECT_EQ(s.preempted_s, 0);
  EXPECT_EQ(s.recomputed, 0);
}

TEST(Report, Utf8CleanKeepsValidTextAndReplacesBadBytes) {
  EXPECT_EQ(utf8_clean("plain \xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "plain \xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(utf8_clean("a\xFF"
                       "b\xC3"),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_EQ(utf8_clean("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  EXPECT_EQ(utf8_clean("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8_clean(std::string("x\0y\x01", 4)), "x?y?");
}

TEST(Report, EachProcessSummarySaysWhetherItIsFinalAndWhatWasDropped) {
  pmtest::TempDir tmp;
  const fs::path session = fs::path(tmp.path()) / "s";
  write_fixture(session);
  write(session / "enginecore-100" / "summary.json",
        "{\n  \"profilemate_version\": \"0.1.0\",\n  \"final\": false,\n  \"recorded\": 9,\n"
        "  \"dropped\": 3,\n  \"lost\": 1,\n  \"dropped_by_table\": {\"x\": 3}\n}\n");
  write(session / "worker-0-101" / "summary.json", "{\"final\"");  // torn
  const ReportResult res = profilemate::write_report({session.string()}, "");
  EXPECT_TRUE(has_warning(res.warnings, "enginecore-100: 3 events dropped", "1 lost"));
  EXPECT_TRUE(has_warning(res.warnings, "worker-0-101/summary.json", "not a summary.json"));
  EXPECT_EQ(res.warnings.size(), 2u);
  EXPECT_NE(res.summary_text.find("process enginecore-100: 5 tables, 21 rows; summary.json not "
                                  "final (stopped by a signal, or still running); 3 events "
                                  "dropped, 1 lost"),
            std::string::npos)
      << res.summary_text;
  const std::string json = pmtest::read_file(res.out_dir + "/summary.json");
  EXPECT_NE(json.find("\"final\": false, \"dropped\": 3, \"lost\": 1}"), std::string::npos) << json;
  EXPECT_NE(json.find("\"final\": null, \"dropped\": 0, \"lost\": 0}"), std::string::npos);
}

TEST(Report, NotASessionReadsNothingAndSaysSo) {
  pmtest::TempDir tmp;
  write(fs::path(tmp.path()) / "x" / "notes.txt", "hello\n");
  const ReportRun run = load_run({tmp.path()});
  EXPECT_EQ(run.tables_read, 0u);
  EXPECT_TRUE(run.processes.empty());
  ASSERT_EQ(run.warnings.size(), 1u);
  EXPECT_NE(run.warnings[0].find("not a session folder"), std::string::npos);
}

TEST(Report, TheOutputFolderItselfNamesItsNewestSession) {
  pmtest::TempDir tmp;
  write_fixture(fs::path(tmp.path()) / "20260101-000000-h-1");
  write_fixture(fs::path(tmp.path()) / "20260102-000000-h-2");
  const ReportRun run = load_run({tmp.path()});
  ASSERT_EQ(run.warnings.size(), 1u);
  EXPECT_NE(run.warnings[0].find("the newest is " + tmp.path() + "/20260102-000000-h-2"),
            std::string::npos)
      << run.warnings[0];
}

TEST(Report, SeveralSessionsAreOneReportWithPrefixedProcessNames) {
  pmtest::TempDir tmp;
  write_fixture(fs::path(tmp.path()) / "a");
  write_fixture(fs::path(tmp.path()) / "b");
  const ReportRun run = load_run({tmp.path() + "/a", tmp.path() + "/b", tmp.path() + "/a"});
  EXPECT_EQ(run.sessions.size(), 2u);
  ASSERT_EQ(run.processes.size(), 4u);
  EXPECT_EQ(run.processes[0].name, "a/enginecore-100");
  EXPECT_EQ(run.processes[1].name, "b/enginecore-100");
  // A process folder given on its own is its session's only process.
  const ReportRun one = load_run({tmp.path() + "/b/worker-0-101"});
  ASSERT_EQ(one.processes.size(), 1u);
  EXPECT_EQ(one.processes[0].name, "worker-0-101");
}

TEST(Report, AnOutputFolderThatCannotBeCreatedIsAnOsError) {
  pmtest::TempDir tmp;
  write_fixture(fs::path(tmp.path()) / "s");
  write(fs::path(tmp.path()) / "file", "x");
  EXPECT_THROW(profilemate::write_report({tmp.path() + "/s"}, tmp.path() + "/file/report"),
               profilemate::OsError);
}

TEST(Report, MergedTraceIsOneStrictJsonArrayOnOneClock) {
  pmtest::TempDir tmp;
  const fs::path a = fs::path(tmp.path()) / "20260101-000000-host-a-100";
  const fs::path b = fs::path(tmp.path()) / "20260101-000000-hostb-200";
  write_fixture(a);
  write_fixture(b);
  // Session b's machine: wall - monotonic is 2 ms more than a's.
  write(a / "metadata.json",
        "{\"clock\": {\"monotonic_ns\": 1000000, \"realtime_ns\": 5000000}}\n");
  write(b / "metadata.json",
        "{\"clock\": {\"monotonic_ns\": 1000000, \"realtime_ns\": 7000000}}\n");
  const std::string ev =
      "[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":100,\"tid\":0,\"args\":{\"name\":\"e\"}},"
      "\n"
      "{\"ph\":\"X\",\"cat\":\"t\",\"name\":\"n\",\"pid\":100,\"tid\":100,\"ts\":1000.500,"
      "\"dur\":5.000,\"args\":{\"step\":1,\"ts\":7}},\n";
  write(a / "enginecore-100" / "trace.json", ev + "{\"ph\":\"X\",\"pi");  // torn: killed
  write(b / "enginecore-100" / "trace.json", ev + "not an event,\n]\n");
  write(b / "worker-0-101" / "trace.json", "[\n]\n");
  const ReportResult res = profilemate::write_report({a.string(), b.string()}, tmp.path() + "/out");
  const std::string trace = pmtest::read_file(tmp.path() + "/out/trace.json");
  EXPECT_TRUE(pmtest::JsonChecker(trace).valid()) << trace;
  // a's events as they were; b's shifted by 2000 us and its pids moved apart
  EXPECT_NE(trace.find("\"pid\":100,\"tid\":100,\"ts\":1000.500,"), std::string::npos) << trace;
  EXPECT_NE(trace.find("\"pid\":10000100,\"tid\":100,\"ts\":3000.500,\"dur\":5.000,"
                       "\"args\":{\"step\":1,\"ts\":7}}"),
            std::string::npos)
      << trace;
  EXPECT_NE(res.summary_text.find("trace.json, 4 events of 2 processes"), std::string::npos)
      << res.summary_text;
  EXPECT_TRUE(has_warning(res.warnings, "host-a-100/enginecore-100/trace.json", "torn last line"));
  EXPECT_TRUE(has_warning(res.warnings, "hostb-200/enginecore-100/trace.json",
                          "1 line(s) that are not trace events"));
  const std::string json = pmtest::read_file(tmp.path() + "/out/summary.json");
  EXPECT_NE(json.find("\"trace\": {\"file\": \"trace.json\", \"events\": 4, \"processes\": 2}"),
            std::string::npos)
      << json;
}

// A deterministic mutation fuzz of the readers (no libFuzzer on this machine): every table of the
// fixture session is corrupted at random (bytes flipped, quotes, commas, newlines and NULs
// inserted, cut short, lines duplicated) and the whole report is run on it. It must never crash
// (the sanitizer builds run it too) and summary.json must always be valid JSON.
namespace {
void write_moe(const fs::path& worker);
}  // namespace

TEST(ReportFuzz, RandomlyCorruptedTablesNeverCrashAndTheJsonStaysValid) {
  pmtest::TempDir tmp;
  const fs::path session = fs::path(tmp.path()) / "s";
  write_fixture(session);
  write_moe(session / "worker-0-101");
  std::vector<std::pair<fs::path, std::string>> originals;
  for (const auto& d : fs::recursive_directory_iterator(session))
    if (d.path().extension() == ".csv")
      originals.emplace_back(d.path(), pmtest::read_file(d.path().string()));
  std::mt19937 rng(12345);
  const char specials[] = {'"', ',', '\n', '\r', '\0', '-', 'e', '9', '.', ' '};
  for (int iter = 0; iter < 1000; ++iter) {
    for (const auto& [path, text] : originals) {
      std::string m = text;
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits && !m.empty(); ++e) {
        const std::size_t at = rng() % m.size();
        switch (rng() % 5) {
          case 0:
            m[at] = static_cast<char>(rng() & 0xff);
            break;
          case 1:
            m.insert(at, 1, specials[rng() % sizeof specials]);
            break;
          case 2:
            m.resize(at);  // cut short
            break;
          case 3:
            m.erase(at, rng() % 16);
            break;
          default: {  // duplicate a piece
            const std::size_t n = std::min<std::size_t>(rng() % 64, m.size() - at);
            m.insert(at, m.substr(at, n));
          }
        }
      }
      write(path, m);
    }
    const ReportResult res = profilemate::write_report({session.string()}, tmp.path() + "/out");
    const std::string json = pmtest::read_file(tmp.path() + "/out/summary.json");
    ASSERT_TRUE(pmtest::JsonChecker(json).valid()) << "iteration " << iter << "\n" << json;
    // valid UTF-8 whatever bytes the tables held
    ASSERT_EQ(utf8_clean(json), json) << "iteration " << iter;
    ASSERT_EQ(utf8_clean(res.summary_text), res.summary_text) << "iteration " << iter;
  }
}

namespace {
// A MoE worker's two tables: 2 intervals, layers 1 and 3 of 4 experts; in the second interval
// layer 3 routed 2 assignments to ids out of range (-1).
void write_moe(const fs::path& worker) {
  write(worker / "moe_expert_activations.csv",
        "timestamp_sec,step_id,step_first,layer_idx,expert_id,activation_count,percentage\n"
        "1.0,16,1,1,0,6,75\n1.0,16,1,1,2,2,25\n"
        "1.0,16,1,3,1,4,50\n1.0,16,1,3,3,4,50\n"
        "2.0,20,17,1,0,2,25\n2.0,20,17,1,1,2,25\n2.0,20,17,1,2,2,25\n2.0,20,17,1,3,2,25\n"
        "2.0,20,17,3,1,6,75\n2.0,20,17,3,-1,2,25\n");
  write(worker / "moe_load_imbalance.csv",
        "timestamp_sec,step_id,step_first,layer_idx,routed_tokens,max_count,mean_count,"
        "max_mean_ratio,std_dev,max_min_ratio,hottest_expert,idle_experts\n"
        "1.0,16,1,1,8,6,2,3,2.4,,0,2\n"
        "1.0,16,1,3,8,4,2,2,2,,1,2\n"
        "2.0,20,17,1,8,2,2,1,0,1,0,0\n"
        "2.0,20,17,3,8,6,1.5,4,2.6,,1,3\n");
}
}  // namespace

TEST(Report, MoeLoadPerLayerHottestExpertsAndHeatMap) {
  pmtest::TempDir tmp;
  const fs::path session = fs::path(tmp.path()) / "s";
  write_fixture(session);
  write_moe(session / "worker-0-101");
  const ReportRun run = load_run({session.string()});
  EXPECT_TRUE(run.warnings.empty()) << run.warnings.front();
  const Process& wk = run.processes[1];
  const auto* a = wk.get<MoeActivationsAcc>("moe_expert_activations");
  const auto* m = wk.get<MoeImbalanceAcc>("moe_load_imbalance");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(a->layers.size(), 2u);
  EXPECT_EQ(a->layers.at(1).experts.at(0), 8);
  EXPECT_EQ(a->layers.at(3).experts.at(-1), 2);
  EXPECT_EQ(m->layers.at(1).intervals, 2u);
  EXPECT_EQ(m->layers.at(1).worst_ratio, 3);
  EXPECT_EQ(m->layers.at(3).worst_ratio, 4);
  EXPECT_EQ(m->layers.at(3).experts, 4);  // not 8 / 1.5: the -1 assignments are not in the mean
  // layer 1: experts 0..3 got 8, 2, 4, 2 of 16: max/mean 8 / 4
  const MoeCrunch c1 = moe_crunch(&a->layers.at(1), &m->layers.at(1));
  EXPECT_EQ(c1.routed, 16);
  EXPECT_EQ(c1.experts, 4);
  EXPECT_DOUBLE_EQ(c1.run_ratio, 2.0);
  ASSERT_EQ(c1.hottest.size(), 3u);
  EXPECT_EQ(c1.hottest[0], (std::pair<std::int64_t, double>{0, 8}));
  EXPECT_EQ(c1.hottest[1], (std::pair<std::int64_t, double>{2, 4}));
  EXPECT_EQ(c1.hottest[2], (std::pair<std::int64_t, double>{1, 2}));  // tie with 3: lower id
  // layer 3: experts 1 and 3 got 10 and 4 of the 14 in range: max/mean 10 / 3.5
  const MoeCrunch c3 = moe_crunch(&a->layers.at(3), &m->layers.at(3));
  EXPECT_DOUBLE_EQ(c3.run_ratio, 10 / 3.5);
  // without moe_load_imbalance.csv the experts are the ids seen (layer 3: up to id 3)
  EXPECT_EQ(moe_crunch(&a->layers.at(3), nullptr).experts, 4);

  const profilemate::ReportResult res = profilemate::write_report({session.string()}, "");
  const std::string text = res.summary_text;
  for (const char* part :
       {"MoE expert load (per layer)",
        "worker-0-101: layer 1: 16 routed tokens over 4 experts, max/mean per interval worst "
        "3.00, mean 2.00 (2 intervals), over the run 2.00; hottest 0 8 (50.0%), 2 4 (25.0%), "
        "1 2 (12.5%)   [worker-0-101: moe_expert_activations.csv, 10 rows]",
        "worker-0-101: layer 3: 16 routed tokens over 4 experts, max/mean per interval worst "
        "4.00, mean 3.00 (2 intervals), over the run 2.86; hottest 1 10 (62.5%), 3 4 (25.0%)"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
  const std::string json = pmtest::read_file(res.out_dir + "/summary.json");
  EXPECT_TRUE(pmtest::JsonChecker(json).valid()) << json;
  for (const char* part :
       {"\"process\": \"worker-0-101\", \"events\": 2, \"layer\": 1, \"intervals\": 2, "
        "\"routed_tokens\": 16, \"experts\": 4, \"max_mean_ratio_worst\": 3, "
        "\"max_mean_ratio_mean\": 2, \"run_max_mean_ratio\": 2, \"max_idle_experts\": 2, "
        "\"hottest\": [{\"expert_id\": 0, \"tokens\": 8, \"share_pct\": 50}, "})
    EXPECT_NE(json.find(part), std::string::npos) << part << "\n" << json;
  const std::string html = pmtest::read_file(res.out_dir + "/report.html");
  EXPECT_NE(html.find("<svg class=\"chart\" id=\"moe-1\""), std::string::npos);
  // one cell per (layer, expert) that got tokens: 4 in layer 1, 2 in layer 3 (-1 is not a column)
  std::size_t cells = 0;
  for (std::size_t at = html.find("<rect class=\"cell\""); at != std::string::npos;
       at = html.find("<rect class=\"cell\"", at + 1))
    ++cells;
  EXPECT_EQ(cells, 6u);
  EXPECT_NE(html.find("<rect class=\"cell\" data-layer=\"3\" data-expert=\"1\" data-tokens=\"10\""),
            std::string::npos);
  // the busiest cell is the darkest
  EXPECT_NE(html.find("data-expert=\"1\" data-tokens=\"10\" x=\"84.0\" y=\"44.0\" width=\"28.0\" "
                      "height=\"16.0\" fill=\"rgb(255,0,0)\""),
            std::string::npos)
      << html;
}
