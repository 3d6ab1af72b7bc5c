// The log keeper as the daemon uses it: a real `hostvisor log-keeper`
// process (the built binary), real pipes, real files.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "logkeeper/client.h"

namespace hv::logkeeper {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

// Runs the io_context until `done` or the deadline.
template <class F>
bool runUntil(boost::asio::io_context& io, F done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.restart();
    io.run_for(5ms);
  }
  return true;
}

void writeAll(int fd, const std::string& data) {
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
}

class LogKeeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hv-logkeeper-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    logs_ = dir_ + "/logs";
    fs::create_directories(logs_);
  }
  void TearDown() override {
    clients_.clear();
    for (pid_t pid : keepers_) {
      if (alive(pid)) ::kill(pid, SIGKILL);
    }
    if (mounted_) ::umount2(logs_.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }

  Client& newClient(int64_t maxBytes = 1 << 20, int keep = 2) {
    ClientOptions o{dir_ + "/log-keeper.sock", dir_, dir_ + "/log-keeper.log", maxBytes, keep, HV_BINARY};
    clients_.push_back(std::make_unique<Client>(io_, o));
    Client& c = *clients_.back();
    auto s = c.start();
    EXPECT_TRUE(s) << s.error().message;
    keepers_.push_back(c.keeperPid());
    return c;
  }

  std::string logOf(const std::string& name) { return logs_ + "/" + name + ".log"; }

  boost::asio::io_context io_;
  std::string dir_, logs_;
  bool mounted_ = false;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<pid_t> keepers_;
};

TEST_F(LogKeeperTest, OutputReachesTheFileAndRotatesByRename) {
  Client& c = newClient(/*maxBytes=*/4096, /*keep=*/2);
  auto out = c.outputFor("a", logOf("a"));
  ASSERT_TRUE(out) << out.error().message;
  writeAll(*out, "hello\n");
  c.flush("a");
  EXPECT_EQ(readFile(logOf("a")), "hello\n");

  const std::string line(99, 'x');
  for (int i = 0; i < 200; ++i) writeAll(*out, line + "\n");  // 20 KB: several rotations
  c.flush("a");
  EXPECT_TRUE(fs::exists(logOf("a") + ".1"));
  EXPECT_TRUE(fs::exists(logOf("a") + ".2"));
  EXPECT_FALSE(fs::exists(logOf("a") + ".3"));  // keep = 2
  EXPECT_LE(fs::file_size(logOf("a") + ".1"), 4096u + 100u);
  const auto& stats = c.stats();
  ASSERT_TRUE(stats.contains("a"));
  EXPECT_EQ(stats.at("a").writtenBytes, 6u + 200u * 100u);
  EXPECT_EQ(stats.at("a").droppedLines, 0u);
}

// The daemon dies; the program keeps its write end; the next daemon takes
// the pipe back and the output still lands in the file.
TEST_F(LogKeeperTest, ANewDaemonTakesThePipesBack) {
  int programEnd = -1;
  {
    Client& first = newClient();
    auto out = first.outputFor("a", logOf("a"));
    ASSERT_TRUE(out);
    programEnd = ::dup(*out);  // what the program holds
  }
  const pid_t keeper = keepers_.back();
  clients_.clear();  // the daemon is gone
  writeAll(programEnd, "while the daemon was away\n");

  Client& second = newClient();
  EXPECT_EQ(second.keeperPid(), keeper);  // the same keeper, not a new one
  ASSERT_EQ(second.names(), std::vector<std::string>{"a"});
  auto out = second.outputFor("a", logOf("a"));
  ASSERT_TRUE(out);
  writeAll(*out, "after\n");
  second.flush("a");
  EXPECT_EQ(readFile(logOf("a")), "while the daemon was away\nafter\n");
  ::close(programEnd);
}

// kill -9 the keeper: the daemon notices (pidfd), starts another and hands
// it the pipe; the program's next writes still reach the file.
TEST_F(LogKeeperTest, AKilledKeeperIsReplacedAndThePipeKeepsFlowing) {
  Client& c = newClient();
  auto out = c.outputFor("a", logOf("a"));
  ASSERT_TRUE(out);
  writeAll(*out, "before\n");
  c.flush("a");
  const pid_t old = c.keeperPid();
  ASSERT_EQ(::kill(old, SIGKILL), 0);
  ASSERT_TRUE(runUntil(io_, [&] { return c.keeperPid() != old && c.keeperPid() > 0; }))
      << "no new keeper after kill -9";
  keepers_.push_back(c.keeperPid());
  EXPECT_FALSE(alive(old));
  writeAll(*out, "after\n");
  c.flush("a");
  EXPECT_EQ(readFile(logOf("a")), "before\nafter\n");
}

TEST_F(LogKeeperTest, ReleaseClosesTheFileAndNothingRecreatesIt) {
  Client& c = newClient();
  auto out = c.outputFor("a", logOf("a"));
  ASSERT_TRUE(out);
  writeAll(*out, "x\n");
  c.flush("a");
  c.release("a");
  fs::remove(logOf("a"));
  EXPECT_TRUE(c.names().empty());
  c.stats();
  EXPECT_FALSE(fs::exists(logOf("a")));
}

TEST_F(LogKeeperTest, QuitWritesEverythingOutAndExits) {
  Client& c = newClient();
  auto out = c.outputFor("a", logOf("a"));
  ASSERT_TRUE(out);
  writeAll(*out, "last words\n");
  const pid_t pid = c.keeperPid();
  c.quit();
  EXPECT_FALSE(alive(pid));
  EXPECT_EQ(readFile(logOf("a")), "last words\n");
  EXPECT_FALSE(fs::exists(dir_ + "/log-keeper.sock"));
}

// A full disk: the program is never blocked; lines are dropped and counted,
// and once space is back the log says how many were lost.
TEST_F(LogKeeperTest, ADiskFullDropsAndCountsWithoutBlockingTheProgram) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  ASSERT_EQ(::mount("tmpfs", logs_.c_str(), "tmpfs", 0, "size=64k"), 0) << std::strerror(errno);
  mounted_ = true;
  Client& c = newClient(/*maxBytes=*/1 << 20, /*keep=*/1);
  auto out = c.outputFor("a", logOf("a"));
  ASSERT_TRUE(out);
  // 1 MiB through a 64 KiB pipe into a 64 KiB disk: a blocked program would
  // hang here (the test's own timeout), a dropping keeper lets it through.
  ::fcntl(*out, F_SETFL, ::fcntl(*out, F_GETFL) | O_NONBLOCK);
  const std::string line(1023, 'y');
  int written = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (written < 1024 && std::chrono::steady_clock::now() < deadline) {
    if (::write(*out, (line + "\n").data(), 1024) == 1024) ++written;
    else ASSERT_EQ(errno, EAGAIN);  // the keeper is reading: try again
  }
  ::fcntl(*out, F_SETFL, ::fcntl(*out, F_GETFL) & ~O_NONBLOCK);
  EXPECT_EQ(written, 1024) << "the program was held back";
  c.flush("a");
  const auto& stats = c.stats();
  ASSERT_TRUE(stats.contains("a"));
  EXPECT_GT(stats.at("a").droppedLines, 0u);
  EXPECT_LE(stats.at("a").writtenBytes, 64u * 1024u);  // what fits

  fs::resize_file(logOf("a"), 0);  // space again
  writeAll(*out, "back\n");
  c.flush("a");
  const std::string log = readFile(logOf("a"));
  EXPECT_NE(log.find("of output dropped: disk full"), std::string::npos) << log;
  EXPECT_NE(log.find("back\n"), std::string::npos) << log;
}

}  // namespace
}  // namespace hv::logkeeper
