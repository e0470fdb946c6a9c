#include "profilemate/table.hpp"

#include <array>
#include <stdexcept>

namespace profilemate {
namespace {

constexpr std::array<std::string_view, 42> kSourceNames = {
    "ts_sec", "end_sec", "dur_ms", "dur_us", "step", "name", "ctx", "a0",  "a1",  "a2",  "a3",
    "a4",     "a5",      "a6",     "a7",     "a8",   "a9",   "a10", "a11", "a12", "a13", "a14",
    "a15",    "s0",      "s1",     "s2",     "s3",   "s4",   "s5",  "s6",  "s7",  "s8",  "s9",
    "s10",    "s11",     "s12",    "s13",    "s14",  "s15",  "pid", "tid", "text"};
static_assert(kSourceNames.size() == static_cast<std::size_t>(ColumnSource::kText) + 1);

bool valid_table_name(std::string_view n) {
  if (n.empty() || n.size() > 200 || n == "." || n == ".." || n == "summary" || n == "trace") {
    return false;
  }
  for (char c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string allowed_column_sources() {
  std::string out;
  for (auto n : kSourceNames) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

ColumnSource parse_column_source(std::string_view s) {
  for (std::size_t i = 0; i < kSourceNames.size(); ++i) {
    if (kSourceNames[i] == s) return static_cast<ColumnSource>(i);
  }
  throw std::invalid_argument("profilemate: unknown column source '" + std::string(s) +
                              "' (allowed: " + allowed_column_sources() + ")");
}

TableRegistry::TableRegistry() {
  for (auto& d : defs_) d.store(nullptr, std::memory_order_relaxed);
}

TableRegistry::~TableRegistry() {
  for (auto& d : defs_) delete d.load(std::memory_order_relaxed);
}

std::uint32_t TableRegistry::define(
    std::string_view name, const std::vector<std::pair<std::string, std::string>>& columns) {
  if (!valid_table_name(name)) {
    throw std::invalid_argument(
        "profilemate: invalid table name '" + std::string(name) +
        "' (allowed: 1-200 characters from [A-Za-z0-9_.-], not 'summary' or 'trace')");
  }
  if (columns.empty()) {
    throw std::invalid_argument("profilemate: table '" + std::string(name) +
                                "' needs at least one column");
  }
  std::vector<Column> cols;
  cols.reserve(columns.size());
  for (const auto& [header, source] : columns) {
    cols.push_back(Column{header, parse_column_source(source)});
  }

  std::lock_guard<std::mutex> lock(mu_);
  const std::uint32_t n = count_.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < n; ++i) {
    const TableDef* d = defs_[i].load(std::memory_order_relaxed);
    if (d->name != name) continue;
    bool same = d->columns.size() == cols.size();
    for (std::size_t c = 0; same && c < cols.size(); ++c) {
      same = d->columns[c].header == cols[c].header && d->columns[c].source == cols[c].source;
    }
    if (!same) {
      throw std::invalid_argument("profilemate: table '" + std::string(name) +
                                  "' is already defined with different columns");
    }
    return i;
  }
  if (n >= kMaxTables) {
    throw std::invalid_argument("profilemate: too many tables (at most " +
                                std::to_string(kMaxTables) + ")");
  }
  defs_[n].store(new TableDef{n, std::string(name), std::move(cols)}, std::memory_order_release);
  count_.store(n + 1, std::memory_order_release);
  return n;
}

TableRegistry& TableRegistry::global() {
  static TableRegistry* instance = new TableRegistry();  // leaked: see Interner::global()
  return *instance;
}

}  // namespace profilemate
