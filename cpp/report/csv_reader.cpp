#include "report/csv_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/log.hpp"

namespace profilemate::report {
namespace {

constexpr std::size_t kInitialWindow = 256u * 1024;

// Splits the record at the start of [p, p + n). Returns the bytes it takes (newline included), or
// 0 when the record is not complete in the window. Fields point into the window (no quote in the
// record) or into scratch (quoted fields, unescaped). *nul is set when the record holds a NUL byte.
class Splitter {
 public:
  std::size_t split(const char* p, std::size_t n, std::vector<std::string_view>& fields,
                    bool* nul) {
    fields.clear();
    const auto* nl = static_cast<const char*>(std::memchr(p, '\n', n));
    if (nl == nullptr) return 0;
    const auto len = static_cast<std::size_t>(nl - p);
    *nul = std::memchr(p, '\0', len) != nullptr;
    if (std::memchr(p, '"', len) == nullptr) {
      const char* end = (len > 0 && nl[-1] == '\r') ? nl - 1 : nl;
      const char* s = p;
      for (;;) {
        const auto* c = static_cast<const char*>(std::memchr(s, ',', end - s));
        if (c == nullptr) {
          fields.emplace_back(s, end - s);
          break;
        }
        fields.emplace_back(s, c - s);
        s = c + 1;
      }
      return len + 1;
    }
    return split_quoted(p, n, fields, nul);
  }

 private:
  std::size_t split_quoted(const char* p, std::size_t n, std::vector<std::string_view>& fields,
                           bool* nul) {
    scratch_.clear();
    bounds_.clear();
    bool in_quotes = false;
    std::size_t i = 0;
    for (; i < n; ++i) {
      const char c = p[i];
      if (c == '\0') *nul = true;
      if (in_quotes) {
        if (c != '"') {
          scratch_.push_back(c);
        } else if (i + 1 >= n) {
          return 0;  // a doubled quote or the end of the field: the next byte decides
        } else if (p[i + 1] == '"') {
          scratch_.push_back('"');
          ++i;
        } else {
          in_quotes = false;
        }
      } else if (c == '"') {
        in_quotes = true;
      } else if (c == ',') {
        bounds_.push_back(scratch_.size());
      } else if (c == '\n') {
        break;
      } else if (!(c == '\r' && i + 1 < n && p[i + 1] == '\n')) {
        scratch_.push_back(c);
      }
    }
    if (i >= n) return 0;  // no newline outside quotes yet
    std::size_t start = 0;
    for (std::size_t b : bounds_) {
      fields.emplace_back(scratch_.data() + start, b - start);
      start = b;
    }
    fields.emplace_back(scratch_.data() + start, scratch_.size() - start);
    return i + 1;
  }

  std::string scratch_;
  std::vector<std::size_t> bounds_;
};

// The record loop over a window that `refill` appends to (returns bytes added, 0 at the end, -1
// on error with the reason in *error).
template <class Refill>
void parse(CsvStats& st, std::string& window, Refill&& refill,
           const std::function<bool(Fields)>& on_header,
           const std::function<void(Fields)>& on_row) {
  Splitter splitter;
  std::vector<std::string_view> fields;
  std::size_t begin = 0, end = 0, header_fields = 0;
  bool eof = false;
  for (;;) {
    while (begin < end) {
      bool nul = false;
      const std::size_t used = splitter.split(window.data() + begin, end - begin, fields, &nul);
      if (used == 0) break;
      begin += used;
      if (!st.header) {
        st.header = true;
        header_fields = fields.size();
        if (nul || !on_header(Fields(fields))) return;
        continue;
      }
      if (nul || fields.size() != header_fields) {
        ++st.malformed;
        continue;
      }
      ++st.rows;
      on_row(Fields(fields));
    }
    if (eof) break;
    if (begin > 0) {
      std::memmove(window.data(), window.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    if (end == window.size()) {
      if (window.size() > kMaxRecord) {
        st.error = "a record longer than " + std::to_string(kMaxRecord) +
                   " bytes (not a ProfileMate table?); the rest of the file is skipped";
        st.torn_bytes = 0;
        return;
      }
      window.resize(window.size() * 2);
    }
    const long got = refill(window.data() + end, window.size() - end);
    if (got < 0) {
      if (st.error.empty()) st.error = "read failed";
      return;
    }
    if (got == 0) eof = true;
    end += static_cast<std::size_t>(got);
    st.bytes += static_cast<std::uint64_t>(got);
  }
  st.torn_bytes = end - begin;
}

}  // namespace

CsvStats read_csv(const std::string& path, const std::function<bool(Fields)>& on_header,
                  const std::function<void(Fields)>& on_row) {
  CsvStats st;
  // O_NONBLOCK: a FIFO planted at the path must not hang the report (refused below).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    st.error = "cannot open it: " + errno_text(errno);
    return st;
  }
  struct stat sb {};
  if (::fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    ::close(fd);
    st.error = "not a regular file";
    return st;
  }
  st.opened = true;
  std::string window(kInitialWindow, '\0');
  auto refill = [&](char* dst, std::size_t room) -> long {
    for (;;) {
      const ssize_t n = ::read(fd, dst, room);
      if (n >= 0) return static_cast<long>(n);
      if (errno == EINTR) continue;
      st.error = "read failed: " + errno_text(errno);
      return -1;
    }
  };
  parse(st, window, refill, on_header, on_row);
  ::close(fd);
  return st;
}

CsvStats read_csv_bytes(std::string_view data, const std::function<bool(Fields)>& on_header,
                        const std::function<void(Fields)>& on_row) {
  CsvStats st;
  st.opened = true;
  std::string window(std::min<std::size_t>(kInitialWindow, std::max<std::size_t>(data.size(), 64)),
                     '\0');
  std::size_t pos = 0;
  auto refill = [&](char* dst, std::size_t room) -> long {
    const std::size_t n = std::min(room, data.size() - pos);
    std::memcpy(dst, data.data() + pos, n);
    pos += n;
    return static_cast<long>(n);
  };
  parse(st, window, refill, on_header, on_row);
  return st;
}

}  // namespace profilemate::report
