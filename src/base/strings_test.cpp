#include "base/strings.h"

#include <gtest/gtest.h>

namespace hv {
namespace {

TEST(Strings, SplitKeepsEmptyFields) {
  EXPECT_EQ(split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(split("", ','), (std::vector<std::string>{""}));
}

TEST(Strings, ReplaceAllHandlesRepeatsAndGrowth) {
  EXPECT_EQ(replaceAll("--port={port} {port}", "{port}", "20001"), "--port=20001 20001");
  EXPECT_EQ(replaceAll("aa", "a", "aa"), "aaaa");
}

TEST(Strings, ParseIntRejectsJunkAndRange) {
  long long v = 0;
  EXPECT_TRUE(parseInt("8080", 1, 65535, &v));
  EXPECT_EQ(v, 8080);
  EXPECT_FALSE(parseInt("80a", 1, 65535, &v));
  EXPECT_FALSE(parseInt("", 1, 65535, &v));
  EXPECT_FALSE(parseInt("70000", 1, 65535, &v));
  EXPECT_FALSE(parseInt("-1", 0, 10, &v));
}

}  // namespace
}  // namespace hv
