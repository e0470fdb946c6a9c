// Text formatting for the collector thread: an append buffer and the few number and string
// formats the sinks need. Everything here is allocation-free once the buffer has grown, and
// locale-independent (std::to_chars), so a German-locale host still writes "1.5", not "1,5".
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace profilemate::fmt {

class OutBuf {
 public:
  OutBuf() { data_.resize(64 * 1024); }
  // Room for at least n more bytes; returns the write position. Commit with advance_to().
  char* ensure(std::size_t n) {
    if (size_ + n > data_.size()) [[unlikely]]
      grow(n);
    return data_.data() + size_;
  }
  void advance_to(const char* end) noexcept {
    size_ = static_cast<std::size_t>(end - data_.data());
  }
  void put(char c) {
    *ensure(1) = c;
    ++size_;
  }
  void push_back(char c) { put(c); }  // std::string's name, for code written against either
  void append(std::string_view s) {
    std::memcpy(ensure(s.size()), s.data(), s.size());
    size_ += s.size();
  }
  const char* data() const noexcept { return data_.data(); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  void clear() noexcept { size_ = 0; }
  // Drop the first n bytes (after a partial write).
  void consume(std::size_t n) {
    std::memmove(data_.data(), data_.data() + n, size_ - n);
    size_ -= n;
  }
  // Give memory back after a burst, so a spike does not pin a large buffer forever.
  void shrink_if_idle() {
    if (size_ == 0 && data_.size() > 4u * 1024 * 1024) {
      std::string().swap(data_);
      data_.resize(64 * 1024);
    }
  }

 private:
  void grow(std::size_t n) { data_.resize(std::max(data_.size() * 2, size_ + n)); }
  std::string data_;
  std::size_t size_ = 0;
};

// Raw writers: the caller guarantees room (kMaxNumberChars per number). They return the new end.
inline constexpr std::size_t kMaxNumberChars = 32;

inline char* write_int(char* p, std::int64_t v) noexcept { return std::to_chars(p, p + 24, v).ptr; }
inline char* write_uint(char* p, std::uint64_t v) noexcept {
  return std::to_chars(p, p + 24, v).ptr;
}

// value / 10^decimals printed exactly with `decimals` digits after the point (integer math, so
// nanosecond inputs print without floating-point noise). decimals in 1..9.
inline char* write_fixed(char* p, std::int64_t value, int decimals) noexcept {
  static constexpr std::uint64_t kPow10[] = {1,      10,      100,      1000,      10000,
                                             100000, 1000000, 10000000, 100000000, 1000000000};
  std::uint64_t mag;
  if (value < 0) {
    *p++ = '-';
    mag = static_cast<std::uint64_t>(-(value + 1)) + 1;  // safe for INT64_MIN
  } else {
    mag = static_cast<std::uint64_t>(value);
  }
  const std::uint64_t div = kPow10[decimals];
  std::uint64_t fp = mag % div;
  p = std::to_chars(p, p + 21, mag / div).ptr;
  *p = '.';  // digits go to p[1..decimals], least significant last
  for (int i = decimals; i > 0; --i) {
    p[i] = static_cast<char>('0' + fp % 10);
    fp /= 10;
  }
  return p + decimals + 1;
}

// Nanoseconds -> a unit of 10^unit_pow10 ns with `decimals` digits, rounding half away from zero
// when fewer digits than nanoseconds are printed (seconds with 6 decimals round to the us).
inline char* write_ns_as(char* p, std::int64_t ns, int unit_pow10, int decimals) noexcept {
  static constexpr std::int64_t kPow10[] = {1,      10,      100,      1000,      10000,
                                            100000, 1000000, 10000000, 100000000, 1000000000};
  const int drop = unit_pow10 - decimals;  // digits of ns precision not printed
  if (drop > 0) {
    const std::int64_t q = kPow10[drop];
    ns = ns >= 0 ? (ns + q / 2) / q : -((-ns + q / 2) / q);
  }
  return write_fixed(p, ns, decimals);
}

namespace detail {
inline constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";
constexpr std::uint64_t pow10(int n) { return n == 0 ? 1 : 10 * pow10(n - 1); }
}  // namespace detail

// The same as write_ns_as with the units fixed at compile time: every division is by a constant
// (a multiply) and fraction digits are written in pairs. This is the collector's hot formatting.
template <int kUnitPow10, int kDecimals>
inline char* write_ns_fixed(char* p, std::int64_t ns) noexcept {
  static_assert(kDecimals >= 1 && kDecimals <= 9 && kUnitPow10 >= kDecimals);
  constexpr auto kDrop = static_cast<std::int64_t>(detail::pow10(kUnitPow10 - kDecimals));
  if constexpr (kDrop > 1) ns = ns >= 0 ? (ns + kDrop / 2) / kDrop : -((-ns + kDrop / 2) / kDrop);
  std::uint64_t mag;
  if (ns < 0) {
    *p++ = '-';
    mag = static_cast<std::uint64_t>(-(ns + 1)) + 1;
  } else {
    mag = static_cast<std::uint64_t>(ns);
  }
  constexpr std::uint64_t kDiv = detail::pow10(kDecimals);
  std::uint64_t fp = mag % kDiv;
  p = std::to_chars(p, p + 21, mag / kDiv).ptr;
  *p = '.';
  char* d = p + kDecimals;  // last fraction digit
  int left = kDecimals;
  for (; left >= 2; left -= 2, d -= 2) {
    const auto pair = static_cast<std::size_t>(fp % 100) * 2;
    d[-1] = detail::kDigitPairs[pair];
    d[0] = detail::kDigitPairs[pair + 1];
    fp /= 100;
  }
  if (left == 1) *d = static_cast<char>('0' + fp);
  return p + kDecimals + 1;
}

// A double: integers (|v| < 2^53) without a fraction, otherwise the shortest representation that
// round-trips. Non-finite values print as nan/inf/-inf in CSV and null in JSON.
inline char* write_double(char* p, double v, bool json) noexcept {
  if (std::fabs(v) < 9007199254740992.0) {  // false for NaN and inf
    const auto i = static_cast<std::int64_t>(v);
    if (static_cast<double>(i) == v) return write_int(p, i);
    return std::to_chars(p, p + kMaxNumberChars, v).ptr;
  }
  if (std::isfinite(v)) return std::to_chars(p, p + kMaxNumberChars, v).ptr;
  // NaN means "no value" (a hook's None, a GPU time on a machine without one): JSON null, an
  // empty CSV field (what CSV readers take as missing).
  const std::string_view t =
      json ? std::string_view("null")
           : (std::isnan(v) ? std::string_view()
                            : (v > 0 ? std::string_view("inf") : std::string_view("-inf")));
  std::memcpy(p, t.data(), t.size());
  return p + t.size();
}

inline char* write_str(char* p, std::string_view s) noexcept {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Buffer-level conveniences (one ensure per value) for code that is not per-event hot.
inline void put_int(OutBuf& out, std::int64_t v) {
  char* p = out.ensure(kMaxNumberChars);
  out.advance_to(write_int(p, v));
}
inline void put_uint(OutBuf& out, std::uint64_t v) {
  char* p = out.ensure(kMaxNumberChars);
  out.advance_to(write_uint(p, v));
}
inline void put_fixed(OutBuf& out, std::int64_t value, int decimals) {
  char* p = out.ensure(kMaxNumberChars);
  out.advance_to(write_fixed(p, value, decimals));
}
inline void put_ns_as(OutBuf& out, std::int64_t ns, int unit_pow10, int decimals) {
  char* p = out.ensure(kMaxNumberChars);
  out.advance_to(write_ns_as(p, ns, unit_pow10, decimals));
}
inline void put_double(OutBuf& out, double v, bool json) {
  char* p = out.ensure(kMaxNumberChars);
  out.advance_to(write_double(p, v, json));
}

// RFC 4180: a field containing a comma, quote, CR or LF is quoted and its quotes doubled.
inline void csv_escape_into(std::string& out, std::string_view s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos;
  if (!quote) {
    out.append(s);
    return;
  }
  out.push_back('"');
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

// A JSON string body (without the surrounding quotes): quote, backslash and control characters
// escaped; other bytes (UTF-8) pass through. Out is std::string or OutBuf.
template <class Out>
inline void json_escape_into(Out& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
}

inline std::string csv_escape(std::string_view s) {
  std::string r;
  csv_escape_into(r, s);
  return r;
}
inline std::string json_escape(std::string_view s) {
  std::string r;
  json_escape_into(r, s);
  return r;
}

}  // namespace profilemate::fmt
