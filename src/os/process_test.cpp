#include "os/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <string>

#include "base/strings.h"
#include "os/spawn.h"
#include "os/test_helpers.h"

namespace hv::os {
namespace {

using testing::ChildReaper;
using testing::makePipe;
using testing::Pipe;
using testing::readLine;
using testing::waitExit;
using testing::waitReadable;

Result<Child> spawnSleep() {
  SpawnRequest req;
  req.path = "/bin/sleep";
  req.argv = {"sleep", "30"};
  return spawn(req);
}

// Spawns /bin/true and reaps it: its pid is then (almost surely) unused.
pid_t deadPid() {
  SpawnRequest req;
  req.path = "/bin/true";
  req.argv = {"true"};
  Result<Child> child = spawn(req);
  if (!child || !waitExit(child->pidfd.get())) return -1;
  return child->pid;
}

TEST(Process, SigtermKillsSleepingChildAndReapReportsSignal15) {
  Result<Child> child = spawnSleep();
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  ASSERT_TRUE(sendSignal(child->pidfd.get(), SIGTERM));
  auto status = waitExit(child->pidfd.get());
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->code, SIGTERM);
}

TEST(Process, ReapReturnsNulloptWhileRunning) {
  Result<Child> child = spawnSleep();
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  auto status = reap(child->pidfd.get());
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_FALSE(status->has_value());
}

// The supervisor kills what a program left in its process group while the
// exited leader is still a zombie: until reap() its pid (the group id) cannot
// be handed to another process, so kill(-pid) never reaches a stranger.
TEST(Process, ExitedUnreapedHoldsThePidUntilReap) {
  Result<Child> child = spawnSleep();
  ASSERT_TRUE(child) << child.error().message;
  EXPECT_FALSE(exitedUnreaped(child->pidfd.get()));  // running
  ASSERT_TRUE(sendSignal(child->pidfd.get(), SIGKILL));
  ASSERT_TRUE(waitReadable(child->pidfd.get()));
  EXPECT_TRUE(exitedUnreaped(child->pidfd.get()));
  EXPECT_TRUE(exitedUnreaped(child->pidfd.get()));  // WNOWAIT: still a zombie
  EXPECT_EQ(::kill(child->pid, 0), 0) << "the zombie's pid must still be taken";
  auto status = reap(child->pidfd.get());
  ASSERT_TRUE(status && status->has_value());
  EXPECT_FALSE(exitedUnreaped(child->pidfd.get()));  // reaped
}

TEST(Process, SendSignalAfterReapReportsNotFound) {
  Result<Child> child = spawnSleep();
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  ASSERT_TRUE(sendSignal(child->pidfd.get(), SIGKILL));
  ASSERT_TRUE(waitExit(child->pidfd.get()));
  Status again = sendSignal(child->pidfd.get(), SIGTERM);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kNotFound);
}

TEST(Process, OpenPidfdSignalsAnExistingProcess) {
  Result<Child> child = spawnSleep();
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  Result<UniqueFd> other = openPidfd(child->pid);
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_TRUE(::fcntl(other->get(), F_GETFD) & FD_CLOEXEC);
  ASSERT_TRUE(sendSignal(other->get(), SIGKILL));
  auto status = waitExit(child->pidfd.get());
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, SIGKILL);
}

TEST(Process, OpenPidfdOfDeadPidIsNotFound) {
  pid_t pid = deadPid();
  ASSERT_GT(pid, 0);
  Result<UniqueFd> fd = openPidfd(pid);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error().code, Errc::kNotFound);
}

TEST(Process, StartTimeOfSelfIsStableEvenWithParenthesesInComm) {
  auto first = processStartTime(::getpid());
  ASSERT_TRUE(first);
  EXPECT_GT(*first, 0u);
  char oldName[17] = {};
  ASSERT_EQ(::prctl(PR_GET_NAME, oldName), 0);
  ASSERT_EQ(::prctl(PR_SET_NAME, "a) b ) c"), 0);  // comm may hold ") "
  auto renamed = processStartTime(::getpid());
  ::prctl(PR_SET_NAME, oldName);
  EXPECT_EQ(renamed, first);
  EXPECT_EQ(processStartTime(::getpid()), first);
}

TEST(Process, StartTimeOfDeadPidIsNullopt) {
  pid_t pid = deadPid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(processStartTime(pid), std::nullopt);
}

TEST(Process, KillProcessGroupKillsGrandchildAndReapReportsUnknownStatusForNonChild) {
  Pipe out = makePipe();
  SpawnRequest req;
  req.path = "/bin/sh";
  req.argv = {"sh", "-c", "sleep 30 & echo $!; wait"};
  req.stdoutFd = out.write.get();
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  long long grandchildPid = 0;
  ASSERT_TRUE(parseInt(readLine(out.read.get()), 2, 1 << 30, &grandchildPid));
  Result<UniqueFd> grandchild = openPidfd(static_cast<pid_t>(grandchildPid));
  ASSERT_TRUE(grandchild) << grandchild.error().message;

  ASSERT_TRUE(killProcessGroup(child->pid));
  auto status = waitExit(child->pidfd.get());
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, SIGKILL);
  ASSERT_TRUE(waitReadable(grandchild->get()));
  auto unknown = reap(grandchild->get());  // not our child: waitid says ECHILD
  ASSERT_TRUE(unknown) << unknown.error().message;
  ASSERT_TRUE(unknown->has_value());
  EXPECT_FALSE((*unknown)->signaled);
  EXPECT_EQ((*unknown)->code, -1);
}

TEST(Process, KillProcessGroupOfVanishedGroupSucceeds) {
  pid_t pid = deadPid();
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(killProcessGroup(pid));
}

TEST(Process, KillProcessGroupRefusesGroupsZeroAndOne) {
  EXPECT_EQ(killProcessGroup(0).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(killProcessGroup(1).error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace hv::os
