#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "core/format.hpp"

namespace fmt = profilemate::fmt;

namespace {
template <class F>
std::string out(F f) {
  fmt::OutBuf b;
  f(b);
  return std::string(b.data(), b.size());
}
}  // namespace

TEST(Format, CsvQuotingFollowsRfc4180) {
  EXPECT_EQ(fmt::csv_escape("plain"), "plain");
  EXPECT_EQ(fmt::csv_escape(""), "");
  EXPECT_EQ(fmt::csv_escape("a,b"), "\"a,b\"");
  EXPECT_EQ(fmt::csv_escape("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(fmt::csv_escape("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(fmt::csv_escape("cr\rhere"), "\"cr\rhere\"");
  EXPECT_EQ(fmt::csv_escape("\""), "\"\"\"\"");
  EXPECT_EQ(fmt::csv_escape("spaces stay "), "spaces stay ");
  EXPECT_EQ(fmt::csv_escape("ünïcode"), "ünïcode");
}

TEST(Format, JsonEscaping) {
  EXPECT_EQ(fmt::json_escape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(fmt::json_escape("\n\t\r"), "\\n\\t\\r");
  EXPECT_EQ(fmt::json_escape(std::string("\x01\x1f", 2)), "\\u0001\\u001f");
  EXPECT_EQ(fmt::json_escape("ünïcode"), "ünïcode");
}

TEST(Format, FixedPointIsExact) {
  EXPECT_EQ(out([](auto& b) { fmt::put_fixed(b, 1234567, 6); }), "1.234567");
  EXPECT_EQ(out([](auto& b) { fmt::put_fixed(b, 7, 3); }), "0.007");
  EXPECT_EQ(out([](auto& b) { fmt::put_fixed(b, -1500, 3); }), "-1.500");
  EXPECT_EQ(out([](auto& b) { fmt::put_fixed(b, 0, 6); }), "0.000000");
  EXPECT_EQ(out([](auto& b) { fmt::put_fixed(b, std::numeric_limits<std::int64_t>::min(), 9); }),
            "-9223372036.854775808");
}

TEST(Format, NanosecondUnits) {
  // seconds, 6 decimals, rounded to the microsecond
  EXPECT_EQ(out([](auto& b) { fmt::put_ns_as(b, 1'234'567'499, 9, 6); }), "1.234567");
  EXPECT_EQ(out([](auto& b) { fmt::put_ns_as(b, 1'234'567'500, 9, 6); }), "1.234568");
  EXPECT_EQ(out([](auto& b) { fmt::put_ns_as(b, -1'500, 9, 6); }), "-0.000002");
  // milliseconds, 6 decimals: exact nanoseconds
  EXPECT_EQ(out([](auto& b) { fmt::put_ns_as(b, 12'345'678, 6, 6); }), "12.345678");
  // microseconds, 3 decimals
  EXPECT_EQ(out([](auto& b) { fmt::put_ns_as(b, 1'001, 3, 3); }), "1.001");
}

TEST(Format, Doubles) {
  EXPECT_EQ(out([](auto& b) { fmt::put_double(b, 42.0, false); }), "42");
  EXPECT_EQ(out([](auto& b) { fmt::put_double(b, -3.0, false); }), "-3");
  EXPECT_EQ(out([](auto& b) { fmt::put_double(b, 0.1, false); }), "0.1");
  EXPECT_EQ(out([](auto& b) { fmt::put_double(b, 1e300, false); }), "1e+300");
  EXPECT_EQ(out([](auto& b) { fmt::put_double(b, std::nan(""), false); }), "");  // missing
  EXPECT_EQ(out([](auto& b) { fmt::put_double(b, std::nan(""), true); }), "null");
  EXPECT_EQ(
      out([](auto& b) { fmt::put_double(b, -std::numeric_limits<double>::infinity(), false); }),
      "-inf");
}

TEST(Format, BufferGrowsPastInitialSize) {
  fmt::OutBuf b;
  std::string big(200000, 'x');
  b.append(big);
  b.put('y');
  EXPECT_EQ(b.size(), 200001u);
  b.consume(199999);
  EXPECT_EQ(std::string(b.data(), b.size()), "xy");
}

// The compile-time variant the CSV writer uses must agree with the general one everywhere.
TEST(Format, FixedUnitsMatchGeneral) {
  const std::int64_t samples[] = {0,
                                  1,
                                  9,
                                  10,
                                  499,
                                  500,
                                  501,
                                  999,
                                  1000,
                                  123456789,
                                  -1,
                                  -500,
                                  -501,
                                  -987654321,
                                  1'234'567'890'123,
                                  -1'234'567'890'123,
                                  std::numeric_limits<std::int64_t>::max() / 2};
  for (std::int64_t v : samples) {
    const auto general = [&](int unit, int dec) {
      return out([&](auto& b) { fmt::put_ns_as(b, v, unit, dec); });
    };
    const auto fixed = [&](auto f) {
      char buf[64];
      return std::string(buf, f(buf));
    };
    EXPECT_EQ(fixed([&](char* p) { return fmt::write_ns_fixed<9, 6>(p, v); }), general(9, 6)) << v;
    EXPECT_EQ(fixed([&](char* p) { return fmt::write_ns_fixed<6, 6>(p, v); }), general(6, 6)) << v;
    EXPECT_EQ(fixed([&](char* p) { return fmt::write_ns_fixed<3, 3>(p, v); }), general(3, 3)) << v;
  }
}
