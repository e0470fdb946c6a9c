#include <gtest/gtest.h>

#include <string>

#include "profilemate/clock.hpp"
#include "profilemate/version.hpp"

TEST(Clock, IsMonotonic) {
  auto a = profilemate::now_ns();
  auto b = profilemate::now_ns();
  EXPECT_GT(a, 0);
  EXPECT_GE(b, a);
}

TEST(Version, MatchesPattern) {
  std::string v = profilemate::version();
  EXPECT_FALSE(v.empty());
  EXPECT_NE(v.find('.'), std::string::npos);
}
