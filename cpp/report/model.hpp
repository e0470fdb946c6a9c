// The report's view of a run: the processes found in the session folders, each with the
// accumulators of the tables it wrote (tables.hpp), and the warnings about files that could not
// be read (whole or in part).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "report/tables.hpp"

namespace profilemate::report {

struct Process {
  std::string name;   // the folder name (<label>-<pid>), "<session>/<folder>" with several sessions
  std::string label;  // the role: api, enginecore, worker-0, ...
  std::string dir;
  std::string session;  // the session folder it belongs to
  // From its summary.json (absent: has_summary false): a "final": false one was written at a
  // signal, not at the end; dropped (full rings) and lost events make every count a lower bound.
  bool has_summary = false, final = false;
  std::uint64_t dropped = 0, lost = 0;
  int order = 3;  // api 0, enginecore 1, worker 2, others 3
  std::map<std::string, std::unique_ptr<TableAcc>> tables;  // crunched tables, by name
  std::map<std::string, std::uint64_t> rows;                // rows read, every CSV file

  template <class T>
  const T* get(const std::string& table) const {
    const auto it = tables.find(table);
    return it == tables.end() ? nullptr : dynamic_cast<const T*>(it->second.get());
  }
  std::uint64_t rows_of(const std::string& table) const {
    const auto it = rows.find(table);
    return it == rows.end() ? 0 : it->second;
  }
};

struct Run {
  std::vector<std::string> sessions;
  std::vector<Process> processes;  // sorted: api, enginecore, workers, others; then by name
  std::vector<std::string> warnings;
  std::uint64_t tables_read = 0, rows_read = 0;
  std::uint64_t trace_events = 0, trace_files = 0;  // merged into trace.json (merge_traces)
};

// Finds the processes of the folders and reads every CSV file of each (report.cpp).
Run load_run(const std::vector<std::string>& folders);
// Reads one process folder's CSV files into p (warnings appended to run).
void load_process(Run& run, Process& p);

// Writes every process's trace.json events into one strict JSON array at out_path, clocks aligned
// (trace_merge.cpp); counts in run.trace_*, problems in run.warnings.
void merge_traces(Run& run, const std::string& out_path);

// The report's three files, rendered from a loaded run (pure functions of it).
struct Rendered {
  std::string text, json, html;
};
Rendered render(const Run& run);
std::string render_html(const Run& run, const std::string& summary_text);

}  // namespace profilemate::report
