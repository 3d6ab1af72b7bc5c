#include "supervisor/log_rotator.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace hv::supervisor {
namespace {

class LogRotatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hv-rotate-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  bool exists(const std::string& name) { return ::access((dir_ + "/" + name).c_str(), F_OK) == 0; }
  std::string dir_;
};

TEST_F(LogRotatorTest, RotatesOnlyPastTheSizeAndKeepsNFiles) {
  LogFiles logs(dir_);
  boost::asio::io_context io;
  LogRotator rotator(io, logs, RotationPolicy{10, 2});
  auto fd = logs.openForAppend("web").value();
  auto put = [&](const std::string& s) { ASSERT_EQ(::write(fd.get(), s.data(), s.size()), (ssize_t)s.size()); };

  put("short\n");
  ASSERT_TRUE(rotator.rotateIfNeeded("web"));
  EXPECT_FALSE(exists("web.log.1"));

  put("first batch\n");
  ASSERT_TRUE(rotator.rotateIfNeeded("web"));
  EXPECT_EQ(read("web.log.1"), "short\nfirst batch\n");
  EXPECT_EQ(read("web.log"), "");

  // The program's O_APPEND descriptor keeps writing, now at the start.
  put("second batch\n");
  EXPECT_EQ(read("web.log"), "second batch\n");
  ASSERT_TRUE(rotator.rotateIfNeeded("web"));
  put("third batch\n");
  ASSERT_TRUE(rotator.rotateIfNeeded("web"));
  EXPECT_EQ(read("web.log.1"), "third batch\n");
  EXPECT_EQ(read("web.log.2"), "second batch\n");
  EXPECT_FALSE(exists("web.log.3"));  // the oldest was dropped
  EXPECT_EQ(rotator.rotations(), 3u);
}

TEST_F(LogRotatorTest, MissingLogIsNotAnError) {
  LogFiles logs(dir_);
  boost::asio::io_context io;
  LogRotator rotator(io, logs, RotationPolicy{});
  EXPECT_TRUE(rotator.rotateIfNeeded("nope", true));
}

TEST_F(LogRotatorTest, WritesPastTheSizeWakeItThroughInotify) {
  LogFiles logs(dir_);
  boost::asio::io_context io;
  LogRotator rotator(io, logs, RotationPolicy{1024, 1});
  ASSERT_TRUE(rotator.start());
  auto fd = logs.openForAppend("web").value();
  const std::string line(100, 'x');
  for (int i = 0; i < 20; ++i) ASSERT_EQ(::write(fd.get(), (line + "\n").data(), 101), 101);
  // Run the loop until the rotation event has been handled (bounded).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (rotator.rotations() == 0 && std::chrono::steady_clock::now() < deadline)
    io.run_one_for(std::chrono::milliseconds(100));
  EXPECT_GE(rotator.rotations(), 1u);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/web.log.1").c_str(), &st), 0);
  EXPECT_GT(st.st_size, 1024);
}

}  // namespace
}  // namespace hv::supervisor
