// releaseStartupPages() unmaps the binary's read-only segments; whatever
// runs afterwards must fault them back in unchanged: code, constants,
// unwind tables (an exception), virtual calls through relocated vtables.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "daemon/resident.h"

namespace hv::daemon {
namespace {

struct Shape {
  virtual ~Shape() = default;
  virtual std::string name() const = 0;
};
struct Square : Shape {
  std::string name() const override { return "square"; }
};

int thrower(int n) {
  if (n > 2) throw std::runtime_error("deep enough: " + std::to_string(n));
  return thrower(n + 1);
}

TEST(ResidentTest, CodeAndDataWorkAfterTheStartupPagesAreReleased) {
  static const char kConstant[] = "a read-only constant";
  const size_t released = releaseStartupPages();
  // This test binary has a text segment of some hundreds of KiB at least.
  EXPECT_GT(released, 64u * 1024);
  EXPECT_STREQ(kConstant, "a read-only constant");
  std::unique_ptr<Shape> shape = std::make_unique<Square>();
  EXPECT_EQ(shape->name(), "square");
  try {
    thrower(0);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "deep enough: 3");
  }
  // Twice is harmless.
  EXPECT_GT(releaseStartupPages(), 0u);
}

}  // namespace
}  // namespace hv::daemon
