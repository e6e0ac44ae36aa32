// tetherctl's byte counts: suffixes scale, and anything beyond 64 bits is refused, never wrapped.
#include <gtest/gtest.h>

#include "byte_count.hpp"

namespace tp {
namespace {

std::optional<ByteCount> parse(const std::string& s) {
  std::string error;
  auto c = parse_byte_count(s, error);
  EXPECT_EQ(c.has_value(), error.empty()) << s;
  return c;
}

uint64_t value(const std::string& s) {
  const auto c = parse(s);
  EXPECT_TRUE(c && !c->negative) << s;
  return c ? c->magnitude : 0;
}

TEST(ByteCount, SuffixesArePowersOfOneThousand) {
  EXPECT_EQ(value("0"), 0u);
  EXPECT_EQ(value("123"), 123u);
  EXPECT_EQ(value("10k"), 10'000u);
  EXPECT_EQ(value("10K"), 10'000u);
  EXPECT_EQ(value("200M"), 200'000'000u);
  EXPECT_EQ(value("9G"), 9'000'000'000u);
  EXPECT_EQ(value("3T"), 3'000'000'000'000u);
  EXPECT_EQ(value("18E"), 18'000'000'000'000'000'000u);
  EXPECT_EQ(value("18446744073709551615"), UINT64_MAX);
}

TEST(ByteCount, NegativeCountsAreLeftToTheDaemon) {
  const auto c = parse("-1G");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->negative);
  EXPECT_EQ(c->magnitude, 1'000'000'000u);
  EXPECT_TRUE(parse("-9223372036854775808"));
}

TEST(ByteCount, OverflowIsRefusedNotWrapped) {
  for (const char* s : {"20E", "99999999999G", "18446744073709551616", "99999999999999999999",
                        "18446744073709552k", "-9223372036854775809", "-99999999999G"}) {
    std::string error;
    EXPECT_FALSE(parse_byte_count(s, error)) << s;
    EXPECT_NE(error.find("too large"), std::string::npos) << s << ": " << error;
  }
}

TEST(ByteCount, AnythingElseIsNotANumber) {
  for (const char* s : {"", "G", "-", "1.5G", "10MB", "10 M", "0x10", "1e9", "k10"}) {
    std::string error;
    EXPECT_FALSE(parse_byte_count(s, error)) << s;
    EXPECT_NE(error.find("expected a number of bytes"), std::string::npos) << s << ": " << error;
  }
}

}  // namespace
}  // namespace tp
