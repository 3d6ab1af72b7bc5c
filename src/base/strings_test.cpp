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
TEST(Strings, ToValidUtf8ReplacesEveryIllFormedByte) {
  struct Row { std::string in, out; } rows[] = {
      {"plain", "plain"},
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
      {"a\xFF" "b", "a\xEF\xBF\xBD" "b"},
      {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                    // overlong '/'
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},    // a surrogate
      {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // past U+10FFFF
      {"end\xE2\x82", "end\xEF\xBF\xBD\xEF\xBF\xBD"},              // cut short
  };
  for (const auto& r : rows) EXPECT_EQ(toValidUtf8(r.in), r.out) << r.in;
}

TEST(Strings, PrintableShowsControlsInsteadOfObeyingThem) {
  EXPECT_EQ(printable("\x1b[2J\x1b[Hstate: running\r\n", true), "\\x1b[2J\\x1b[Hstate: running\\x0d\n");
  EXPECT_EQ(printable("a\nb\tc", false), "a\\x0ab\tc");
  EXPECT_EQ(printable("\xC2\x9B" "31m \xC2\xA0 \x7F", true), "\\x9b31m \xC2\xA0 \\x7f");  // C1 CSI, NBSP kept
  EXPECT_EQ(printable("caf\xC3\xA9\xFF", true), "caf\xC3\xA9\xEF\xBF\xBD");
}

}  // namespace hv
