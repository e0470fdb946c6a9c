// <out>/trace.json: every process's trace.json in one strict JSON array, streamed (bounded memory).
//
// Processes of one machine share CLOCK_MONOTONIC, the clock of every trace timestamp, so their
// events are copied as they are. Sessions from other machines (another host in the session folder
// name, <date>-<time>-<host>-<pid>) are shifted onto the first session's monotonic axis through
// their wall-clock pair (metadata.json's clock: realtime_ns and monotonic_ns read together), and
// their pids moved by 10,000,000 x the session's index so two machines' equal pids stay apart.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "core/file_writer.hpp"
#include "core/log.hpp"
#include "report/model.hpp"

namespace profilemate::report {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxLine = 4u << 20;

// Calls fn(line) for every complete line (without its newline); returns the bytes of the torn
// last piece, or -1 (with *error) when the file cannot be read.
template <class Fn>
long for_each_line(const std::string& path, std::string* error, Fn&& fn) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *error = "cannot open it: " + errno_text(errno);
    return -1;
  }
  std::string buf(1u << 20, '\0');
  std::size_t begin = 0, end = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data() + end, buf.size() - end);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "read failed: " + errno_text(errno);
      ::close(fd);
      return -1;
    }
    if (n == 0) break;
    end += static_cast<std::size_t>(n);
    for (;;) {
      const auto* nl = static_cast<const char*>(std::memchr(buf.data() + begin, '\n', end - begin));
      if (nl == nullptr) break;
      fn(std::string_view(buf.data() + begin, static_cast<std::size_t>(nl - buf.data()) - begin));
      begin = static_cast<std::size_t>(nl - buf.data()) + 1;
    }
    std::memmove(buf.data(), buf.data() + begin, end - begin);
    end -= begin;
    begin = 0;
    if (end == buf.size()) {
      if (buf.size() >= kMaxLine) {
        *error = "a line longer than " + std::to_string(kMaxLine) + " bytes (not a trace?)";
        ::close(fd);
        return -1;
      }
      buf.resize(buf.size() * 2);
    }
  }
  ::close(fd);
  return static_cast<long>(end);
}

// The number after `"key":` in the clock object of metadata.json (0 if absent).
std::int64_t json_int(std::string_view text, std::string_view key) {
  const std::string pat = "\"" + std::string(key) + "\":";
  const auto at = text.find(pat);
  if (at == std::string_view::npos) return 0;
  std::size_t p = at + pat.size();
  while (p < text.size() && text[p] == ' ') ++p;
  std::int64_t v = 0;
  std::from_chars(text.data() + p, text.data() + text.size(), v);
  return v;
}

std::string host_of(const std::string& session) {
  // <YYYYmmdd>-<HHMMSS>-<host>-<pid>: the host may itself contain dashes.
  const std::string name = fs::path(session).filename().string();
  const auto first = name.find('-'), last = name.rfind('-');
  if (first == std::string::npos || last == first) return name;
  const auto second = name.find('-', first + 1);
  return second < last ? name.substr(second + 1, last - second - 1) : name;
}

// Rewrites the top-level "pid" and "ts" of one event line (before "args").
void shift(std::string_view line, std::int64_t pid_add, double ts_add_us, fmt::OutBuf& out) {
  const std::size_t args = std::min(line.find("\"args\":"), line.size());
  std::size_t pos = 0;
  auto copy_number = [&](std::string_view key, bool is_ts) {
    const auto at = line.substr(0, args).find(key, pos);
    if (at == std::string_view::npos) return;
    const std::size_t start = at + key.size();
    double v = 0;
    const auto [ptr, ec] = std::from_chars(line.data() + start, line.data() + line.size(), v);
    if (ec != std::errc()) return;
    out.append(line.substr(pos, start - pos));
    char* p = out.ensure(fmt::kMaxNumberChars);
    if (is_ts) {
      const auto r =
          std::to_chars(p, p + fmt::kMaxNumberChars, v + ts_add_us, std::chars_format::fixed, 3);
      out.advance_to(r.ptr);
    } else {
      out.advance_to(fmt::write_int(p, static_cast<std::int64_t>(v) + pid_add));
    }
    pos = static_cast<std::size_t>(ptr - line.data());
  };
  copy_number("\"pid\":", false);
  copy_number("\"ts\":", true);
  out.append(line.substr(pos));
}

}  // namespace

void merge_traces(Run& run, const std::string& out_path) {
  FileWriter out;
  if (const int err = out.open(out_path); err != 0) {
    run.warnings.push_back(out_path + ": cannot write it: " + errno_text(err) +
                           "; no merged trace");
    return;
  }
  // Per session: clock offset to the first session's monotonic axis (us) and pid shift.
  std::map<std::string, std::pair<double, std::int64_t>> shifts;
  std::int64_t wall0 = 0;
  std::string host0;
  for (std::size_t i = 0; i < run.sessions.size(); ++i) {
    const std::string& s = run.sessions[i];
    std::string meta, err;
    for_each_line(s + "/metadata.json", &err, [&](std::string_view l) {
      meta.append(l);
      meta.push_back('\n');
    });
    const std::int64_t wall_minus_mono =
        json_int(meta, "realtime_ns") - json_int(meta, "monotonic_ns");
    if (i == 0) {
      wall0 = wall_minus_mono;
      host0 = host_of(s);
    }
    const bool other_machine = i > 0 && host_of(s) != host0;
    if (other_machine && meta.empty())
      run.warnings.push_back(s + "/metadata.json: unreadable; its trace events are not aligned");
    shifts[s] = other_machine && !meta.empty()
                    ? std::make_pair(double(wall_minus_mono - wall0) / 1e3,
                                     static_cast<std::int64_t>(i) * 10000000)
                    : std::make_pair(0.0, std::int64_t{0});
  }
  fmt::OutBuf& buf = out.buf();
  buf.append("[\n");
  bool first = true;
  for (const Process& p : run.processes) {
    const std::string path = p.dir + "/trace.json";
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(path, ec))) continue;  // tracing was off there
    const auto& [ts_add, pid_add] = shifts[p.session];
    std::uint64_t events = 0, bad = 0;
    std::string error;
    const long torn = for_each_line(path, &error, [&](std::string_view line) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      if (!line.empty() && line.back() == ',') line.remove_suffix(1);
      if (line.empty() || line == "[" || line == "]") return;
      if (line.front() != '{' || line.back() != '}' || line.find('\0') != std::string_view::npos) {
        ++bad;
        return;
      }
      if (!first) buf.append(",\n");
      first = false;
      if (ts_add != 0 || pid_add != 0)
        shift(line, pid_add, ts_add, buf);
      else
        buf.append(line);
      ++events;
      (void)out.maybe_write_early();
    });
    if (torn < 0) {
      run.warnings.push_back(path + ": " + error + (events ? "" : "; skipped"));
    } else if (torn > 0) {
      run.warnings.push_back(path + ": a torn last line (" + std::to_string(torn) +
                             " bytes) dropped (a process killed while writing it?)");
    }
    if (bad)
      run.warnings.push_back(path + ": " + std::to_string(bad) +
                             " line(s) that are not trace events skipped (corrupt?)");
    if (events) ++run.trace_files;
    run.trace_events += events;
  }
  buf.append("\n]\n");
  if (const int err = out.write_pending(); err != 0)
    run.warnings.push_back(out_path + ": cannot write it: " + errno_text(err));
  out.close_fd();
}

}  // namespace profilemate::report
