// A small streaming JSON writer over fmt::OutBuf: the one way the sinks build JSON text (trace.json
// lines, summary.json). Separators, quoting and indentation live here; strings are escaped with
// fmt::json_escape_into and numbers printed with the formatters of format.hpp, so every file agrees
// on how a value looks. No allocation, no DOM: each call appends to the buffer at once.
//
//   json::Writer w(buf);
//   w.begin_object(json::Layout::kBlock);
//   w.key("pid");  w.value_int(42);
//   w.key("clock"); w.begin_object(json::Layout::kInline); ... w.end_object();
//   w.end_object();
//
// Layouts (per container):
//   kCompact  {"a":1,"b":[1,2]}            trace.json lines
//   kInline   {"a": 1, "b": [1, 2]}
//   kBlock    members on lines of their own, indented two spaces per level, e.g.
//             {\n  "a": 1,\n  "b": 2\n}   (an empty container is {} or [])
// raw_key()/value_raw_str() take text that is already escaped (a literal, or an escaped string the
// caller cached): the trace's per-event path uses them so it never scans a string twice.
#pragma once

#include <cassert>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/format.hpp"

namespace profilemate::json {

enum class Layout : std::uint8_t { kCompact, kInline, kBlock };

// Small members are forced inline: trace.json writes ~20 tokens per event, and an out-of-line call
// (or a memcpy of unknown size) per token would cost more than the token itself.
#define PM_JSON_INLINE [[gnu::always_inline]] inline

class Writer {
 public:
  static constexpr int kMaxDepth = 8;

  explicit Writer(fmt::OutBuf& out) noexcept : out_(out) {}

  PM_JSON_INLINE void begin_object(Layout layout = Layout::kCompact) { open('{', layout); }
  PM_JSON_INLINE void end_object() { close('}'); }
  PM_JSON_INLINE void begin_array(Layout layout = Layout::kCompact) { open('[', layout); }
  PM_JSON_INLINE void end_array() { close(']'); }

  // The name of the next object member, escaped here.
  void key(std::string_view name) {
    out_.advance_to(separator(out_.ensure(kMaxSeparator)));
    out_.put('"');
    fmt::json_escape_into(out_, name);
    char* p = out_.ensure(3);
    out_.advance_to(end_key(p));
  }
  // A member name that needs no escaping: a literal (its length is known at compile time) or
  // text the caller escaped and cached.
  template <std::size_t N>
  PM_JSON_INLINE void raw_key(const char (&literal)[N]) {
    raw_key_n(literal, N - 1);
  }
  PM_JSON_INLINE void raw_key(std::string_view escaped) {
    raw_key_n(escaped.data(), escaped.size());
  }

  void value_str(std::string_view s) {
    out_.advance_to(separator(out_.ensure(kMaxSeparator + 1)));
    out_.put('"');
    fmt::json_escape_into(out_, s);
    out_.put('"');
  }
  // A string value whose body needs no escaping (a literal, or text escaped and cached).
  template <std::size_t N>
  PM_JSON_INLINE void value_raw_str(const char (&literal)[N]) {
    raw_str_n(literal, N - 1);
  }
  PM_JSON_INLINE void value_raw_str(std::string_view escaped) {
    raw_str_n(escaped.data(), escaped.size());
  }
  PM_JSON_INLINE void value_int(std::int64_t v) {
    out_.advance_to(fmt::write_int(number_slot(), v));
  }
  PM_JSON_INLINE void value_uint(std::uint64_t v) {
    out_.advance_to(fmt::write_uint(number_slot(), v));
  }
  // Integers without a fraction, others shortest round-trip; NaN and infinities as null.
  PM_JSON_INLINE void value_double(double v) {
    out_.advance_to(fmt::write_double(number_slot(), v, true));
  }
  void value_bool(bool v) { value_literal(v ? "true" : "false"); }
  void value_null() { value_literal("null"); }
  // Nanoseconds as a decimal number of 10^kUnitPow10 ns with kDecimals digits (format.hpp).
  template <int kUnitPow10, int kDecimals>
  PM_JSON_INLINE void value_ns_fixed(std::int64_t ns) {
    out_.advance_to(fmt::write_ns_fixed<kUnitPow10, kDecimals>(number_slot(), ns));
  }
  void value_ns_as(std::int64_t ns, int unit_pow10, int decimals) {
    out_.advance_to(fmt::write_ns_as(number_slot(), ns, unit_pow10, decimals));
  }

  int depth() const noexcept { return depth_; }

 private:
  // ",\n" plus indentation at the deepest level.
  static constexpr std::size_t kMaxSeparator = 2 + 2 * kMaxDepth;

  // Writes what goes before a value or key at the current position into room the caller ensured.
  // The current container's state is kept in members (layout_, first_), the outer ones on stack_.
  PM_JSON_INLINE char* separator(char* p) noexcept {
    if (after_key_) {  // a member's value follows its key directly
      after_key_ = false;
      return p;
    }
    const bool first = first_;
    first_ = false;
    if (layout_ == Layout::kCompact) [[likely]] {
      if (!first) *p++ = ',';
      return p;
    }
    if (layout_ == Layout::kInline) {
      if (!first) {
        *p++ = ',';
        *p++ = ' ';
      }
      return p;
    }
    if (!first) *p++ = ',';
    return indent(p, depth_);
  }
  static char* indent(char* p, int level) noexcept {
    *p++ = '\n';
    std::memset(p, ' ', static_cast<std::size_t>(2 * level));
    return p + 2 * level;
  }
  PM_JSON_INLINE char* end_key(char* p) noexcept {
    *p++ = '"';
    *p++ = ':';
    if (layout_ != Layout::kCompact) *p++ = ' ';
    after_key_ = true;
    return p;
  }
  PM_JSON_INLINE void raw_key_n(const char* k, std::size_t n) {
    char* p = separator(out_.ensure(kMaxSeparator + n + 4));
    *p++ = '"';
    std::memcpy(p, k, n);
    out_.advance_to(end_key(p + n));
  }
  PM_JSON_INLINE void raw_str_n(const char* s, std::size_t n) {
    char* p = separator(out_.ensure(kMaxSeparator + n + 2));
    *p++ = '"';
    std::memcpy(p, s, n);
    p += n;
    *p++ = '"';
    out_.advance_to(p);
  }
  PM_JSON_INLINE char* number_slot() {
    return separator(out_.ensure(kMaxSeparator + fmt::kMaxNumberChars));
  }
  void value_literal(std::string_view text) {
    out_.advance_to(fmt::write_str(separator(out_.ensure(kMaxSeparator + text.size())), text));
  }
  PM_JSON_INLINE void open(char bracket, Layout layout) {
    char* p = separator(out_.ensure(kMaxSeparator + 1));
    *p++ = bracket;
    out_.advance_to(p);
    assert(depth_ < kMaxDepth && "json::Writer: nesting deeper than kMaxDepth");
    stack_[depth_] = Level{layout_, first_};
    ++depth_;
    layout_ = layout;
    first_ = true;
  }
  PM_JSON_INLINE void close(char bracket) {
    char* p = out_.ensure(kMaxSeparator + 1);
    --depth_;
    if (layout_ == Layout::kBlock && !first_) p = indent(p, depth_);
    *p++ = bracket;
    out_.advance_to(p);
    layout_ = stack_[depth_].layout;
    first_ = stack_[depth_].first;
  }

  struct Level {
    Layout layout;
    bool first;
  };
  fmt::OutBuf& out_;
  Layout layout_ = Layout::kCompact;  // of the innermost open container (compact at top level)
  bool first_ = true;                 // nothing written in it yet
  bool after_key_ = false;
  int depth_ = 0;
  Level stack_[kMaxDepth];  // the enclosing containers; only [0, depth_) is meaningful
};

#undef PM_JSON_INLINE

}  // namespace profilemate::json
