// write_report (profilemate/report.hpp): load the run, render the three files, write them.
#include "profilemate/report.hpp"

#include <cerrno>

#include "core/file_writer.hpp"
#include "core/log.hpp"
#include "profilemate/engine.hpp"
#include "report/model.hpp"

namespace profilemate {

ReportResult write_report(const std::vector<std::string>& folders, const std::string& out_dir) {
  report::Run run = report::load_run(folders);
  ReportResult result;
  result.out_dir = out_dir;
  if (result.out_dir.empty()) {
    const std::string base = !run.sessions.empty() ? run.sessions.front()
                             : !folders.empty()    ? folders.front()
                                                   : std::string(".");
    result.out_dir = base + "/report";
  }
  if (const int err = make_dirs(result.out_dir); err != 0)
    throw OsError(err, result.out_dir,
                  "profilemate report: cannot create " + result.out_dir + ": " + errno_text(err));
  report::merge_traces(run, result.out_dir + "/trace.json");
  const report::Rendered r = report::render(run);
  for (const auto& [name, content] :
       {std::pair<const char*, const std::string*>{"summary.txt", &r.text},
        {"summary.json", &r.json},
        {"report.html", &r.html}}) {
    const std::string path = result.out_dir + "/" + name;
    if (const int err = write_file_atomic(path, *content); err != 0)
      throw OsError(err, path, "profilemate report: cannot write " + path + ": " + errno_text(err));
  }
  result.summary_text = r.text;
  result.warnings = std::move(run.warnings);
  result.tables_read = run.tables_read;
  result.rows_read = run.rows_read;
  return result;
}

}  // namespace profilemate
