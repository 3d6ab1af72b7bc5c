#include "os/mount_ns.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "os/seccomp.h"
#include "os/spawn.h"
#include "os/test_helpers.h"

namespace hv::os {
namespace {

namespace fs = std::filesystem;
using testing::ChildReaper;
using testing::makePipe;
using testing::Pipe;
using testing::readAll;
using testing::waitExit;

constexpr uid_t kNobody = 65534;

// A unique directory (mode 0755) under /var/lib — not /tmp, /var/tmp or
// /dev/shm, which the plan replaces, and not the build tree, which may itself
// live under /tmp (a CI clone) — removed with its contents at scope exit.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = "/var/lib/hv_mountns_test.XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr && ::chmod(tmpl.c_str(), 0755) == 0) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Outcome {
  bool spawned = false;
  std::string out;  // stdout and stderr
  int code = -1;
};

// Runs `sh -c script` with `req`'s mount setup (as nobody if asked) and waits for it.
Outcome runShellWith(SpawnRequest req, const std::string& script, bool asNobody) {
  req.path = "/bin/sh";
  req.argv = {"sh", "-c", script};
  req.envp = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
  if (asNobody) req.uid = req.gid = kNobody;
  Pipe out = makePipe();
  req.stdoutFd = req.stderrFd = out.write.get();
  Result<Child> child = spawn(req);
  if (!child) return Outcome{false, child.error().message, -1};
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  Outcome outcome{true, readAll(out.read.get()), -1};
  auto status = waitExit(child->pidfd.get());
  if (status && !status->signaled) outcome.code = status->code;
  return outcome;
}

// Under `plan` (and `filter`), a fresh namespace for this one run.
Outcome runShell(const MountPlan& plan, const std::string& script, bool asNobody,
                 const SeccompProgram* filter = nullptr) {
  SpawnRequest req;
  req.mounts = &plan;
  req.seccomp = filter;
  return runShellWith(std::move(req), script, asNobody);
}

// Joining the namespace `ns` instead of applying a plan.
Outcome runShellIn(const MountNamespace& ns, const std::string& script, bool asNobody) {
  SpawnRequest req;
  req.mountNs = ns.fd();
  return runShellWith(std::move(req), script, asNobody);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

#define REQUIRE_ROOT() \
  if (::geteuid() != 0) GTEST_SKIP() << "mount namespaces need root"

TEST(MountNs, PrivateTmpIsEmptyAndUnseenByTheHost) {
  REQUIRE_ROOT();
  std::string marker = "/tmp/hv_mountns_marker." + std::to_string(::getpid());
  std::ofstream(marker + ".host") << "host";
  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan) << plan.error().message;
  auto outcome = runShell(*plan,
                          "for d in /tmp /var/tmp /dev/shm; do [ -z \"$(ls -A $d)\" ] && echo empty; done;"
                          "echo child > " + marker + " && cat " + marker + "; stat -c %a /tmp",
                          true);
  fs::remove(marker + ".host");
  std::error_code ignored;
  EXPECT_FALSE(fs::remove(marker, ignored)) << "the child's /tmp leaked to the host";
  ASSERT_TRUE(outcome.spawned) << outcome.out;
  EXPECT_EQ(outcome.out, "empty\nempty\nempty\nchild\n1777\n");
}

TEST(MountNs, SystemDirectoriesAreReadOnlyEvenForRoot) {
  REQUIRE_ROOT();
  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan) << plan.error().message;
  std::string probe = "/usr/hv_mountns_probe." + std::to_string(::getpid());
  auto outcome = runShell(
      *plan, "touch " + probe + " 2>&1; touch /etc/hostname 2>&1; cat /etc/hostname >/dev/null && echo readable",
      false);
  std::error_code ignored;
  bool leaked = fs::remove(probe, ignored);
  ASSERT_TRUE(outcome.spawned) << outcome.out;
  EXPECT_FALSE(leaked);
  EXPECT_EQ(outcome.out, "touch: cannot touch '" + probe + "': Read-only file system\n"
                         "touch: cannot touch '/etc/hostname': Read-only file system\nreadable\n");
}

TEST(MountNs, OtherHomesAreHiddenAndTheOwnHomeStaysWritable) {
  REQUIRE_ROOT();
  ScratchDir homes;
  ASSERT_FALSE(homes.path().empty());
  const std::string alice = homes.path() + "/staff/alice", bob = homes.path() + "/bob";
  fs::create_directories(alice);
  fs::create_directories(bob);
  std::ofstream(bob + "/secret") << "bob's";
  ASSERT_EQ(::chown(alice.c_str(), kNobody, kNobody), 0);
  MountOptions options;
  options.hideOtherHomes = true;
  options.homesRoot = homes.path();
  options.home = alice;
  auto plan = buildMountPlan(options);
  ASSERT_TRUE(plan) << plan.error().message;
  mode_t savedUmask = ::umask(077);  // a daemon's usual umask must not lock the account out
  auto outcome = runShell(*plan,
                          "ls -A " + homes.path() + " " + homes.path() + "/staff; echo hi > " + alice +
                              "/note && cat " + alice + "/note; cat " + bob + "/secret 2>/dev/null || echo hidden",
                          true);
  ::umask(savedUmask);
  ASSERT_TRUE(outcome.spawned) << outcome.out;
  EXPECT_EQ(outcome.out, homes.path() + ":\nstaff\n\n" + homes.path() + "/staff:\nalice\nhi\nhidden\n");
  EXPECT_EQ(readFile(alice + "/note"), "hi\n") << "writes reach the real home";
  EXPECT_EQ(readFile(bob + "/secret"), "bob's");
}

TEST(MountNs, HiddenPathLooksEmptyAndReadOnly) {
  REQUIRE_ROOT();
  ScratchDir dataDir;
  ASSERT_FALSE(dataDir.path().empty());
  std::ofstream(dataDir.path() + "/hostvisor.db") << "secret";
  MountOptions options;
  options.hidePaths = {dataDir.path()};
  auto plan = buildMountPlan(options);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_NE(plan->summary().find("hidden " + dataDir.path()), std::string::npos) << plan->summary();
  auto outcome = runShell(*plan, "ls -A " + dataDir.path() + "; touch " + dataDir.path() + "/x 2>&1", false);
  ASSERT_TRUE(outcome.spawned) << outcome.out;
  EXPECT_EQ(outcome.out, "touch: cannot touch '" + dataDir.path() + "/x': Read-only file system\n");
  EXPECT_EQ(readFile(dataDir.path() + "/hostvisor.db"), "secret");
}

TEST(MountNs, WorkingDirectoryInsideAHiddenPathIsNotKept) {
  REQUIRE_ROOT();
  ScratchDir dataDir;
  ASSERT_FALSE(dataDir.path().empty());
  std::ofstream(dataDir.path() + "/hostvisor.db") << "secret";
  MountOptions options;
  options.hidePaths = {dataDir.path()};
  auto plan = buildMountPlan(options);
  ASSERT_TRUE(plan) << plan.error().message;
  fs::path saved = fs::current_path();
  fs::current_path(dataDir.path());  // like a daemon whose cwd is its data dir
  auto outcome = runShell(*plan, "pwd; cat hostvisor.db 2>/dev/null || echo unreadable", false);
  fs::current_path(saved);
  ASSERT_TRUE(outcome.spawned) << outcome.out;
  EXPECT_EQ(outcome.out, "/\nunreadable\n");
}

TEST(MountNs, FailingStepIsReportedAsMountNamingThePath) {
  REQUIRE_ROOT();
  std::string gone;
  Result<MountPlan> plan = fail(Errc::kInternal, "unset");
  {
    ScratchDir dataDir;
    gone = dataDir.path();
    MountOptions options;
    options.hidePaths = {gone};
    plan = buildMountPlan(options);
  }  // removed between planning and spawning
  ASSERT_TRUE(plan) << plan.error().message;
  SpawnRequest req;
  req.path = "/bin/true";
  req.argv = {"true"};
  req.mounts = &*plan;
  Result<Child> child = spawn(req);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().step, "mount");
  EXPECT_EQ(child.error().sysErrno, ENOENT);
  EXPECT_EQ(child.error().message, "mount hiding tmpfs on " + gone + " failed: No such file or directory");
}

TEST(MountNs, NothingPropagatesToTheHost) {
  REQUIRE_ROOT();
  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan) << plan.error().message;
  std::string before = readFile("/proc/self/mountinfo");
  Pipe in = makePipe();
  SpawnRequest req;
  req.path = "/bin/cat";
  req.argv = {"cat"};
  req.mounts = &*plan;
  req.stdinFd = in.read.get();
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  std::string childView = readFile("/proc/" + std::to_string(child->pid) + "/mountinfo");
  EXPECT_EQ(readFile("/proc/self/mountinfo"), before);  // while the child lives
  EXPECT_NE(childView, before);
  in.write.reset();
  EXPECT_TRUE(waitExit(child->pidfd.get()));
}

TEST(MountNs, WorksWithTheSyscallFilterAndACredentialDrop) {
  REQUIRE_ROOT();
  auto filter = buildDenyListFilter();
  ASSERT_TRUE(filter) << filter.error().message;
  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan) << plan.error().message;
  // The mounts happen as root before the drop, the filter after both: a
  // filter that came first would refuse the mounts.
  auto outcome = runShell(*plan, "id -u; [ -z \"$(ls -A /tmp)\" ] && echo private", true, &*filter);
  ASSERT_TRUE(outcome.spawned) << outcome.out;
  EXPECT_EQ(outcome.out, "65534\nprivate\n");
}

TEST(MountNs, ProbeReportsEnforcedForRoot) {
  REQUIRE_ROOT();
  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan) << plan.error().message;
  MechanismReport report = probePrivateMounts(*plan);
  EXPECT_TRUE(report.enforced) << report.detail;
  EXPECT_NE(report.detail.find("private /tmp"), std::string::npos) << report.detail;
}

// What a daemon that is not root gets: a clear refusal, and a degraded probe.
TEST(MountNs, WithoutRootPrivateMountsAreUnavailable) {
  REQUIRE_ROOT();
  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan) << plan.error().message;
  pid_t pid = ::fork();  // this test process is single-threaded here
  if (pid == 0) {
    if (::setresgid(kNobody, kNobody, kNobody) != 0 || ::setresuid(kNobody, kNobody, kNobody) != 0) ::_exit(10);
    SpawnRequest req;
    req.path = "/bin/true";
    req.argv = {"true"};
    req.mounts = &*plan;
    Result<Child> child = spawn(req);
    if (child || child.error().step != "clone3" || child.error().sysErrno != EPERM) ::_exit(11);
    if (child.error().code != Errc::kUnavailable) ::_exit(12);
    MechanismReport report = probePrivateMounts(*plan);
    if (report.enforced || report.detail.find("CAP_SYS_ADMIN") == std::string::npos) ::_exit(13);
    ::_exit(0);
  }
  ASSERT_GT(pid, 0);
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  ASSERT_TRUE(pidfd);
  auto status = waitExit(pidfd.get());
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0) << "10: drop, 11: spawn error, 12: code, 13: probe";
}

TEST(MountNs, PlanSkipsMissingAndSymlinkedDirectoriesAndRejectsRelativePaths) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  fs::create_directory(dir.path() + "/real");
  fs::create_directory_symlink(dir.path() + "/real", dir.path() + "/link");
  MountOptions options;
  options.privateTmp = false;
  options.readOnly = {dir.path() + "/missing", dir.path() + "/link", dir.path() + "/real"};
  options.hidePaths = {dir.path() + "/missing"};
  auto plan = buildMountPlan(options);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->summary(), "own mount namespace per account; read-only " + dir.path() + "/real");

  options.readOnly = {"usr"};
  auto relative = buildMountPlan(options);
  ASSERT_FALSE(relative);
  EXPECT_EQ(relative.error().code, Errc::kInvalidArgument);
}

TEST(MountNs, HiddenPathUnderAPrivateTmpNeedsNoMountOfItsOwn) {
  MountOptions options;
  options.readOnly = {};
  options.hidePaths = {"/tmp"};
  auto plan = buildMountPlan(options);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->summary().find("hidden"), std::string::npos) << plan->summary();
}

TEST(MountNamespace, RunsJoiningItShareItsTmpAndItsReadOnlyView) {
  REQUIRE_ROOT();
  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan) << plan.error().message;
  auto ns = MountNamespace::make(std::move(*plan));
  ASSERT_TRUE(ns) << ns.error().message;
  const std::string marker = "/tmp/hv_mountns_shared." + std::to_string(::getpid());
  auto first = runShellIn(*ns, "pwd; echo one > " + marker + "; touch /usr/hv_probe 2>&1", true);
  ASSERT_TRUE(first.spawned) << first.out;
  EXPECT_EQ(first.out, "/\ntouch: cannot touch '/usr/hv_probe': Read-only file system\n");
  // A later run finds what the first left in the namespace's /tmp; the host does not.
  auto second = runShellIn(*ns, "cat " + marker, true);
  ASSERT_TRUE(second.spawned) << second.out;
  EXPECT_EQ(second.out, "one\n");
  std::error_code ignored;
  EXPECT_FALSE(fs::remove(marker, ignored)) << "the namespace's /tmp leaked to the host";
  // Another namespace made from the same plan has a /tmp of its own.
  auto other = MountNamespace::make(ns->plan());
  ASSERT_TRUE(other) << other.error().message;
  auto third = runShellIn(*other, "ls -A /tmp | wc -l", true);
  EXPECT_EQ(third.out, "0\n");
}

// An account's tmpfs outlive its runs, so their cap is what bounds them: what
// one run left counts against the next, and files alone cannot get around it.
TEST(MountNamespace, ItsTmpfsAreCappedAcrossRuns) {
  REQUIRE_ROOT();
  MountOptions options;
  options.tmpSizeBytes = 1 << 20;
  auto plan = buildMountPlan(options);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_NE(plan->summary().find("/dev/shm /run/lock (1 MiB each)"), std::string::npos) << plan->summary();
  auto ns = MountNamespace::make(std::move(*plan));
  ASSERT_TRUE(ns) << ns.error().message;
  auto fill = runShellIn(*ns, "head -c 2097152 /dev/zero > /dev/shm/fill; echo rc=$?; wc -c < /dev/shm/fill", true);
  ASSERT_TRUE(fill.spawned) << fill.out;
  EXPECT_NE(fill.out.find("No space left on device"), std::string::npos) << fill.out;
  EXPECT_NE(fill.out.find("rc=1\n1048576\n"), std::string::npos) << fill.out;
  // The next run finds /dev/shm still full; /tmp is a cap of its own.
  auto next = runShellIn(*ns, "echo x > /dev/shm/more 2>/dev/null; echo shm=$?; head -c 4096 /dev/zero > /tmp/t; echo tmp=$?", true);
  EXPECT_EQ(next.out, "shm=1\ntmp=0\n");
  // Inodes are capped too (1,024 for 1 MiB): empty files run out.
  auto files = runShellIn(*ns, "i=0; while [ $i -lt 1100 ] && { true > /var/tmp/f$i; } 2>/dev/null; do i=$((i+1)); done; echo $i", true);
  ASSERT_TRUE(files.spawned) << files.out;
  ASSERT_FALSE(files.out.empty() || !std::isdigit(static_cast<unsigned char>(files.out[0]))) << files.out;
  EXPECT_LT(std::stoi(files.out), 1100) << files.out;
  EXPECT_GT(std::stoi(files.out), 1000) << files.out;
}

TEST(MountNamespace, AStepThatFailsIsNamed) {
  REQUIRE_ROOT();
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  fs::create_directory(dir.path() + "/hide");
  MountOptions options;
  options.privateTmp = false;
  options.readOnly = {};
  options.hidePaths = {dir.path() + "/hide"};
  auto plan = buildMountPlan(options);
  ASSERT_TRUE(plan) << plan.error().message;
  fs::remove(dir.path() + "/hide");  // gone between plan and namespace
  auto ns = MountNamespace::make(std::move(*plan));
  ASSERT_FALSE(ns);
  EXPECT_EQ(ns.error().step, "mount");
  EXPECT_EQ(ns.error().message, "mount hiding tmpfs on " + dir.path() + "/hide failed: No such file or directory");
}

TEST(MountNamespace, PlansDifferWhenAPathIsMadeAgain) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  fs::create_directory(dir.path() + "/ro");
  MountOptions options;
  options.privateTmp = false;
  options.readOnly = {dir.path() + "/ro"};
  auto before = buildMountPlan(options);
  auto same = buildMountPlan(options);
  ASSERT_TRUE(before && same);
  EXPECT_TRUE(*before == *same);
  // Same path, another directory (the inode number may be reused, so keep
  // the first one alive under another name).
  fs::rename(dir.path() + "/ro", dir.path() + "/old");
  fs::create_directory(dir.path() + "/ro");
  auto after = buildMountPlan(options);
  ASSERT_TRUE(after);
  EXPECT_FALSE(*before == *after);
  // The fingerprint (what a restarted daemon compares) follows equality.
  EXPECT_EQ(before->fingerprint(), same->fingerprint());
  EXPECT_NE(before->fingerprint(), after->fingerprint());
  EXPECT_TRUE(before->fingerprint().ends_with("-" + std::to_string(before->size()))) << before->fingerprint();
  MountOptions capped = options;
  capped.privateTmp = true;
  capped.tmpSizeBytes = 32 << 20;
  auto small = buildMountPlan(capped);
  capped.tmpSizeBytes = 64 << 20;
  auto large = buildMountPlan(capped);
  ASSERT_TRUE(small && large);
  EXPECT_NE(small->fingerprint(), large->fingerprint());
}

TEST(MountNamespace, ItsInodeIsTheOneProcSaysForItsMembers) {
  REQUIRE_ROOT();
  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan) << plan.error().message;
  auto ns = MountNamespace::make(std::move(*plan));
  ASSERT_TRUE(ns) << ns.error().message;
  auto run = runShellIn(*ns, "stat -L -c %i /proc/self/ns/mnt", true);
  ASSERT_TRUE(run.spawned) << run.out;
  EXPECT_EQ(run.out, std::to_string(ns->inode()) + "\n");
  struct stat own {};
  ASSERT_EQ(::stat("/proc/self/ns/mnt", &own), 0);
  EXPECT_NE(ns->inode(), static_cast<uint64_t>(own.st_ino));
}

TEST(MountNamespace, JoiningSomethingElseFailsAtSetnsNamingIt) {
  SpawnRequest req;
  req.path = "/bin/true";
  req.argv = {"true"};
  UniqueFd notANamespace(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(notANamespace);
  req.mountNs = notANamespace.get();
  auto child = spawn(req);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().step, "setns");
  EXPECT_EQ(child.error().message, "setns into the account's mount namespace failed: Invalid argument");

  auto plan = buildMountPlan({});
  ASSERT_TRUE(plan);
  req.mounts = &*plan;
  child = spawn(req);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().code, Errc::kInvalidArgument) << child.error().message;
}

// In a child of its own mount namespace, so that no other test's mount
// counts: no change, then a mount is seen once, then an unmount.
TEST(MountTableWatch, SeesAMountOnceAndAnUnmount) {
  REQUIRE_ROOT();
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(10);
    MountTableWatch watch;
    if (watch.changed()) _exit(11);
    if (::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "size=4k") != 0) _exit(12);
    if (!watch.changed()) _exit(13);
    if (watch.changed()) _exit(14);
    if (::umount(dir.path().c_str()) != 0) _exit(15);
    if (!watch.changed()) _exit(16);
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  ASSERT_TRUE(pidfd);
  auto status = waitExit(pidfd.get());
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0) << "10: unshare, 11: change at start, 12: mount, 13: mount unseen, 14: seen twice, "
                                "15: umount, 16: umount unseen";
}

}  // namespace
}  // namespace hv::os
