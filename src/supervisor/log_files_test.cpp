#include "supervisor/log_files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

namespace hv::supervisor {
namespace {

class LogFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hv-logs-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  void write(const std::string& text) {
    auto fd = LogFiles(dir_).openForAppend("web");
    ASSERT_TRUE(fd);
    ASSERT_EQ(::write(fd->get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  std::string dir_;
};

TEST_F(LogFilesTest, TailReturnsTheLastLines) {
  write("one\ntwo\nthree\n");
  LogFiles logs(dir_);
  EXPECT_EQ(logs.tail("web", 2).value(), "two\nthree\n");
  EXPECT_EQ(logs.tail("web", 10).value(), "one\ntwo\nthree\n");
  EXPECT_EQ(logs.tail("web", 0).value(), "");
}

TEST_F(LogFilesTest, TailCanStopAtAnOffset) {
  write("one\ntwo\nthree\n");
  EXPECT_EQ(LogFiles(dir_).tail("web", 1, 8).value(), "two\n");
  EXPECT_EQ(LogFiles(dir_).tail("web", 5, 0).value(), "");
}

TEST_F(LogFilesTest, TailKeepsAPartialLastLine) {
  write("one\ntwo\nthr");
  EXPECT_EQ(LogFiles(dir_).tail("web", 2).value(), "two\nthr");
}

TEST_F(LogFilesTest, TailAcrossChunkBoundaries) {
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\n";
  write(big);
  EXPECT_EQ(LogFiles(dir_).tail("web", 2).value(), "line 19998\nline 19999\n");
  auto many = LogFiles(dir_).tail("web", 15000).value();
  EXPECT_EQ(many.substr(0, 10), "line 5000\n");
}

TEST_F(LogFilesTest, MissingLogIsEmptyAndEventsAreAppended) {
  LogFiles logs(dir_);
  EXPECT_EQ(logs.tail("nope", 5).value(), "");
  logs.appendEvent("web", "started pid 7");
  auto text = logs.tail("web", 1).value();
  EXPECT_NE(text.find("] started pid 7\n"), std::string::npos);
  EXPECT_EQ(text.rfind("[hostvisor ", 0), 0u);
}

}  // namespace
}  // namespace hv::supervisor

namespace hv::supervisor {
namespace {

TEST_F(LogFilesTest, TailReachesIntoTheRotatedFile) {
  write("old1\nold2\n");
  ASSERT_EQ(::rename((dir_ + "/web.log").c_str(), (dir_ + "/web.log.1").c_str()), 0);
  write("new1\n");
  EXPECT_EQ(LogFiles(dir_).tail("web", 2).value(), "old2\nnew1\n");
  EXPECT_EQ(LogFiles(dir_).tail("web", 1).value(), "new1\n");
}

}  // namespace
}  // namespace hv::supervisor
