#include "api/wire/wire.h"

#include <gtest/gtest.h>

namespace hv::api::wire {
namespace {

TEST(Wire, ErrorBodyRoundTrips) {
  auto body = errorBody("not_found", "no instance named 'x'");
  EXPECT_EQ(body, R"({"error":{"code":"not_found","message":"no instance named 'x'"}})");
  EXPECT_EQ(errorMessage(body).value(), "no instance named 'x'");
  EXPECT_FALSE(errorMessage("not json").has_value());
  EXPECT_FALSE(errorMessage(R"({"name":"x"})").has_value());
}

TEST(Wire, ParseSize) {
  EXPECT_EQ(parseSize("1048576").value(), 1048576);
  EXPECT_EQ(parseSize("512K").value(), 512 * 1024);
  EXPECT_EQ(parseSize("256M").value(), 256LL << 20);
  EXPECT_EQ(parseSize("2GiB").value(), 2LL << 30);
  EXPECT_EQ(parseSize("64mb").value(), 64LL << 20);
  for (const char* bad : {"", "M", "12Q", "-5", "1.5G", "99999999999T"})
    EXPECT_FALSE(parseSize(bad)) << bad;
}

TEST(Wire, FormatSize) {
  EXPECT_EQ(formatSize(256LL << 20), "256M");
  EXPECT_EQ(formatSize(1000), "1000");
  EXPECT_EQ(formatSize(0), "0");
}

TEST(Wire, StatusOfEachCode) {
  EXPECT_EQ(httpStatusOf(Errc::kInvalidArgument), 400);
  EXPECT_EQ(httpStatusOf(Errc::kNotFound), 404);
  EXPECT_EQ(httpStatusOf(Errc::kExhausted), 409);
}

}  // namespace
}  // namespace hv::api::wire
