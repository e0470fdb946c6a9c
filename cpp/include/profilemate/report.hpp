// The report: one answer from every process folder of one or more sessions (docs/OUTPUTS.md,
// "Report"). Reads the CSV tables a run wrote, streaming (bounded memory), and writes
// <out_dir>/summary.txt, summary.json and report.html. Implemented in cpp/report/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace profilemate {

struct ReportResult {
  std::string out_dir;                // where the files were written
  std::string summary_text;           // the content of summary.txt
  std::vector<std::string> warnings;  // one line per unreadable, torn or foreign file or folder
  std::uint64_t tables_read = 0;      // CSV files with at least their header read
  std::uint64_t rows_read = 0;        // complete rows read, all files together
};

// Reports the given session folders (a process folder, <label>-<pid>/, is accepted too) as one.
// out_dir empty: <first folder>/report/. Bad files give warnings and are otherwise skipped; the
// files are written whenever out_dir can be created. Throws OsError when out_dir cannot be
// written.
ReportResult write_report(const std::vector<std::string>& folders, const std::string& out_dir);

}  // namespace profilemate
