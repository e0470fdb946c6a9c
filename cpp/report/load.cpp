// Finding the processes of session folders and reading their CSV files (model.hpp).
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "report/model.hpp"

namespace profilemate::report {
namespace fs = std::filesystem;

namespace {

constexpr const char* kKilled = "a process killed while writing it?";

std::string label_of(const std::string& folder) {
  const auto dash = folder.rfind('-');
  if (dash == std::string::npos || dash + 1 == folder.size()) return folder;
  for (std::size_t i = dash + 1; i < folder.size(); ++i)
    if (folder[i] < '0' || folder[i] > '9') return folder;
  return folder.substr(0, dash);
}

int order_of(const std::string& label) {
  if (label.rfind("api", 0) == 0) return 0;
  if (label.rfind("enginecore", 0) == 0) return 1;
  if (label.rfind("worker", 0) == 0) return 2;
  return 3;
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(fs::symlink_status(p, ec));
}

bool has_tables(const fs::path& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n == "summary.json" || n == "patch_status.json" || n == "trace.json" ||
        (n.size() > 4 && n.compare(n.size() - 4, 4, ".csv") == 0))
      return true;
  }
  return false;
}

// Reads one CSV file into acc (nullptr: rows are counted only). Returns false when nothing of it
// could be used.
bool read_table(Run& run, Process& p, const fs::path& path, const std::string& table,
                const TableSpec* spec) {
  const std::string ps = path.string();
  std::unique_ptr<TableAcc> acc = spec ? spec->make() : nullptr;
  std::vector<int> index(spec ? spec->columns.size() : 0, -1);
  std::string missing;
  std::uint64_t bad_values = 0;
  auto on_header = [&](Fields f) {
    if (!spec) return true;
    for (std::size_t c = 0; c < spec->columns.size(); ++c) {
      for (std::size_t i = 0; i < f.size(); ++i)
        if (f[i] == spec->columns[c].name) index[c] = static_cast<int>(i);
      if (index[c] < 0 && spec->columns[c].required && missing.empty())
        missing = spec->columns[c].name;
    }
    return missing.empty();
  };
  auto on_row = [&](Fields f) {
    if (acc) acc->row(Row(f, index.data(), &bad_values));
  };
  const CsvStats st = read_csv(ps, on_header, on_row);
  if (!st.opened) {
    run.warnings.push_back(ps + ": " + st.error + "; skipped");
    return false;
  }
  if (st.bytes == 0) {
    run.warnings.push_back(ps + ": empty (" + kKilled + "); skipped");
    return false;
  }
  if (!st.header) {
    run.warnings.push_back(ps + ": no complete line (" + kKilled + "); skipped");
    return false;
  }
  if (!missing.empty()) {
    run.warnings.push_back(ps + ": not a " + table + " table of this format (no column '" +
                           missing + "'; another version, or not ProfileMate's?); skipped");
    return false;
  }
  if (st.rows == 0 && !st.error.empty()) {
    run.warnings.push_back(ps + ": " + st.error + "; skipped");
    return false;
  }
  if (!st.error.empty()) run.warnings.push_back(ps + ": " + st.error);
  if (st.malformed)
    run.warnings.push_back(ps + ": " + std::to_string(st.malformed) +
                           " row(s) with the wrong number of fields skipped (corrupt?)");
  if (st.torn_bytes)
    run.warnings.push_back(ps + ": a torn last line (" + std::to_string(st.torn_bytes) +
                           " bytes) dropped (" + kKilled + ")");
  if (bad_values)
    run.warnings.push_back(ps + ": " + std::to_string(bad_values) +
                           " field(s) that are not numbers read as empty (corrupt?)");
  ++run.tables_read;
  run.rows_read += st.rows;
  p.rows[table] = st.rows;
  if (acc) p.tables[table] = std::move(acc);
  return true;
}

}  // namespace

// The process's own digest (summary.json, written by the core): whether it is final, and the
// events it dropped or lost. Its first lines hold these top-level scalars (sinks/summary.cpp);
// only the first 64 KiB are read.
void read_process_summary(Run& run, Process& p) {
  const std::string path = p.dir + "/summary.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return;  // none: a process killed before its first snapshot
  std::string text(64 * 1024, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  auto scalar = [&](std::string_view key) -> std::string_view {
    const std::string pat = "\n  \"" + std::string(key) + "\": ";
    const auto at = text.find(pat);
    if (at == std::string::npos) return {};
    const auto b = at + pat.size();
    const auto e = text.find_first_of(",\n}", b);
    return std::string_view(text).substr(b, e == std::string::npos ? std::string::npos : e - b);
  };
  const std::string_view fin = scalar("final");
  if (fin != "true" && fin != "false") {
    run.warnings.push_back(path + ": not a summary.json this report can read; skipped");
    return;
  }
  p.has_summary = true;
  p.final = fin == "true";
  auto count = [&](std::string_view key) {
    std::uint64_t v = 0;
    const std::string_view t = scalar(key);
    std::from_chars(t.data(), t.data() + t.size(), v);
    return v;
  };
  p.dropped = count("dropped");
  p.lost = count("lost");
  if (p.dropped || p.lost)
    run.warnings.push_back(p.name + ": " + std::to_string(p.dropped) +
                           " events dropped (full rings) and " + std::to_string(p.lost) +
                           " lost: its counts below are lower bounds (summary.json)");
}

void load_process(Run& run, Process& p) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(p.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".csv") == 0) files.push_back(it->path());
  }
  if (ec) run.warnings.push_back(p.dir + ": cannot list it: " + ec.message() + "; skipped");
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    const std::string stem = f.stem().string();
    const TableSpec* spec = nullptr;
    for (const TableSpec& s : table_specs())
      if (stem == s.name) spec = &s;
    read_table(run, p, f, stem, spec);
  }
  for (auto& [name, acc] : p.tables)
    if (auto* r = dynamic_cast<RequestAcc*>(acc.get())) r->finish();
  read_process_summary(run, p);
}

Run load_run(const std::vector<std::string>& folders) {
  Run run;
  struct Found {
    std::string session, dir;
  };
  std::vector<Found> found;
  for (const std::string& arg : folders) {
    const fs::path path = fs::path(arg).lexically_normal();
    if (!is_dir(path)) {
      run.warnings.push_back(arg + ": not a folder; skipped");
      continue;
    }
    std::vector<fs::path> procs;
    std::error_code ec;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string n = it->path().filename().string();
      if (n == "report" || n.empty() || n[0] == '.') continue;
      if (is_dir(it->path()) && has_tables(it->path())) procs.push_back(it->path());
    }
    std::string session = path.string();
    if (procs.empty() && has_tables(path)) {  // a process folder given on its own
      procs.push_back(path);
      session = path.parent_path().string();
    }
    if (procs.empty()) {
      // The output folder itself (PROFILEMATE_DIR)? Name its newest session.
      std::string newest;
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        if (!is_dir(it->path()) || !fs::exists(it->path() / "metadata.json")) continue;
        const std::string n = it->path().filename().string();
        if (n > newest) newest = n;
      }
      run.warnings.push_back(
          arg + ": not a session folder (no <label>-<pid>/ process folder with tables in it)" +
          (newest.empty() ? std::string()
                          : "; it holds sessions, the newest is " + (path / newest).string()) +
          "; skipped");
      continue;
    }
    if (std::find(run.sessions.begin(), run.sessions.end(), session) == run.sessions.end())
      run.sessions.push_back(session);
    std::sort(procs.begin(), procs.end());
    for (const fs::path& d : procs) found.push_back({session, d.string()});
  }
  for (const Found& f : found) {
    if (std::any_of(run.processes.begin(), run.processes.end(),
                    [&](const Process& p) { return p.dir == f.dir; }))
      continue;  // the same folder given twice
    Process p;
    p.dir = f.dir;
    p.session = f.session;
    const std::string folder = fs::path(f.dir).filename().string();
    p.label = label_of(folder);
    p.order = order_of(p.label);
    p.name =
        run.sessions.size() > 1 ? fs::path(f.session).filename().string() + "/" + folder : folder;
    load_process(run, p);
    run.processes.push_back(std::move(p));
  }
  std::stable_sort(run.processes.begin(), run.processes.end(),
                   [](const Process& a, const Process& b) {
                     return a.order != b.order ? a.order < b.order : a.name < b.name;
                   });
  return run;
}

}  // namespace profilemate::report
