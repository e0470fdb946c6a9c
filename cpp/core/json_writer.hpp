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

class Writer {
 public:
  static constexpr int kMaxDepth = 8;

  explicit Writer(fmt::OutBuf& out) noexcept : out_(out) {}

  void begin_object(Layout layout = Layout::kCompact) { open('{', layout); }
  void end_object() { close('}'); }
  void begin_array(Layout layout = Layout::kCompact) { open('[', layout); }
  void end_array() { close(']'); }

  // The name of the next object member.
  void key(std::string_view name) {
    out_.advance_to(separator(out_.ensure(kMaxSeparator)));
    out_.put('"');
    fmt::json_escape_into(out_, name);
    end_key();
  }
  void raw_key(std::string_view escaped) {
    char* p = separator(out_.ensure(kMaxSeparator + escaped.size() + 4));
    *p++ = '"';
    p = fmt::write_str(p, escaped);
    *p++ = '"';
    *p++ = ':';
    if (top().layout != Layout::kCompact) *p++ = ' ';
    out_.advance_to(p);
    after_key_ = true;
  }

  void value_str(std::string_view s) {
    out_.advance_to(separator(out_.ensure(kMaxSeparator + 1)));
    out_.put('"');
    fmt::json_escape_into(out_, s);
    out_.put('"');
  }
  void value_raw_str(std::string_view escaped) {
    char* p = separator(out_.ensure(kMaxSeparator + escaped.size() + 2));
    *p++ = '"';
    p = fmt::write_str(p, escaped);
    *p++ = '"';
    out_.advance_to(p);
  }
  void value_int(std::int64_t v) { out_.advance_to(fmt::write_int(number_slot(), v)); }
  void value_uint(std::uint64_t v) { out_.advance_to(fmt::write_uint(number_slot(), v)); }
  // Integers without a fraction, others shortest round-trip; NaN and infinities as null.
  void value_double(double v) { out_.advance_to(fmt::write_double(number_slot(), v, true)); }
  void value_bool(bool v) { value_literal(v ? "true" : "false"); }
  void value_null() { value_literal("null"); }
  // Nanoseconds as a decimal number of 10^kUnitPow10 ns with kDecimals digits (format.hpp).
  template <int kUnitPow10, int kDecimals>
  void value_ns_fixed(std::int64_t ns) {
    out_.advance_to(fmt::write_ns_fixed<kUnitPow10, kDecimals>(number_slot(), ns));
  }
  void value_ns_as(std::int64_t ns, int unit_pow10, int decimals) {
    out_.advance_to(fmt::write_ns_as(number_slot(), ns, unit_pow10, decimals));
  }

  int depth() const noexcept { return depth_; }

 private:
  struct Level {
    Layout layout = Layout::kCompact;
    bool first = true;
  };
  // ",\n" plus indentation at the deepest level.
  static constexpr std::size_t kMaxSeparator = 2 + 2 * kMaxDepth;

  Level& top() noexcept { return stack_[depth_]; }

  // Writes what goes before a value or key at the current position into room the caller ensured.
  char* separator(char* p) noexcept {
    if (after_key_) {  // a member's value follows its key directly
      after_key_ = false;
      return p;
    }
    if (depth_ == 0) return p;
    Level& l = top();
    const bool first = l.first;
    l.first = false;
    switch (l.layout) {
      case Layout::kCompact:
        if (!first) *p++ = ',';
        return p;
      case Layout::kInline:
        if (!first) {
          *p++ = ',';
          *p++ = ' ';
        }
        return p;
      case Layout::kBlock:
        if (!first) *p++ = ',';
        return indent(p, depth_);
    }
    return p;
  }
  static char* indent(char* p, int level) noexcept {
    *p++ = '\n';
    std::memset(p, ' ', static_cast<std::size_t>(2 * level));
    return p + 2 * level;
  }
  void end_key() {
    char* p = out_.ensure(3);
    *p++ = '"';
    *p++ = ':';
    if (top().layout != Layout::kCompact) *p++ = ' ';
    out_.advance_to(p);
    after_key_ = true;
  }
  char* number_slot() {
    char* p = out_.ensure(kMaxSeparator + fmt::kMaxNumberChars);
    return separator(p);
  }
  void value_literal(std::string_view text) {
    out_.advance_to(fmt::write_str(separator(out_.ensure(kMaxSeparator + text.size())), text));
  }
  void open(char bracket, Layout layout) {
    char* p = separator(out_.ensure(kMaxSeparator + 1));
    *p++ = bracket;
    out_.advance_to(p);
    assert(depth_ < kMaxDepth && "json::Writer: nesting deeper than kMaxDepth");
    ++depth_;
    stack_[depth_] = Level{layout, true};
  }
  void close(char bracket) {
    const Level l = top();
    --depth_;
    char* p = out_.ensure(kMaxSeparator + 1);
    if (l.layout == Layout::kBlock && !l.first) p = indent(p, depth_);
    *p++ = bracket;
    out_.advance_to(p);
  }

  fmt::OutBuf& out_;
  Level stack_[kMaxDepth + 1];
  int depth_ = 0;
  bool after_key_ = false;
};

}  // namespace profilemate::json
