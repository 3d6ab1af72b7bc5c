#include "os/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <string_view>

#include "os/mount_ns.h"
#include "os/landlock.h"
#include "os/seccomp.h"

namespace hv::os {
namespace {

// struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2, clone3(2)).
// Defined here rather than taken from <linux/sched.h>, whose CLONE_* macros
// clash with glibc's <sched.h>. A kernel that predates a field accepts the
// larger struct as long as the fields it does not know are zero.
struct CloneArgs {
  uint64_t flags = 0;
  uint64_t pidfd = 0;
  uint64_t childTid = 0;
  uint64_t parentTid = 0;
  uint64_t exitSignal = 0;
  uint64_t stack = 0;
  uint64_t stackSize = 0;
  uint64_t tls = 0;
  uint64_t setTid = 0;
  uint64_t setTidSize = 0;
  uint64_t cgroup = 0;
};
static_assert(sizeof(CloneArgs) == 88, "clone_args VER2 is 88 bytes");
constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;  // CLONE_INTO_CGROUP, Linux 5.7

// Descriptor numbers one spawn binds what its child needs to (SlotLease):
// three stdio sources, the error pipe, up to four cgroup.procs files.
constexpr unsigned kSlotsPerBlock = 8;
constexpr int kMaxJoinSlots = 4;
static_assert(3 + 1 + kMaxJoinSlots == kSlotsPerBlock);

// What the child reports through the error pipe before _exit(127).
enum class Step : int {
  kCgroup = 1, kSetsid, kDup2, kSetgroups, kSetgid, kSetuid, kSetrlimit, kPrctl, kChdir, kExec, kMount, kSeccomp,
  kUnshare, kSetns, kLandlock
};
struct ChildFailure {
  int step = 0;
  int err = 0;
  int index = 0;  // kMount: the plan's failed step (MountPlan::describe)
};

// Everything the child needs, prepared by the parent: the child only reads it.
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  // nullptr = stay
  const int* joinFds = nullptr;  // cgroup.procs files to write "0" to
  int joinCount = 0;
  int stdio[3] = {-1, -1, -1};
  int errorFd = -1;
  bool changeCreds = false;  // setgroups, then the two below if set
  bool setGid = false;
  gid_t gid = 0;
  bool setUid = false;
  uid_t uid = 0;
  const gid_t* groups = nullptr;
  int groupCount = 0;
  bool newSession = false;
  bool noNewPrivs = false;
  rlim_t nofile = 0;  // 0 = inherit
  uint64_t signalsToReset = ~uint64_t{0};  // bit n-1: signal n
  const MountPlan* mounts = nullptr;
  int mountNs = -1;  // setns(CLONE_NEWNS) target, or -1
  const SeccompProgram* seccomp = nullptr;
  bool scopeAbstractUnix = false;  // Landlock: its own abstract unix sockets only
  // Set when the child shares the parent's descriptor table (CLONE_FILES,
  // see SlotLease): every descriptor above is in [slotFirst, slotFirst +
  // kSlotsPerBlock), and the reserved numbers end at slotEnd.
  int slotFirst = -1;
  int slotEnd = 0;
};

// ---- child side: between clone and exec. Only system calls, no allocation,
// no locks (the parent may be multithreaded; see signal-safety(7)). --------

[[noreturn]] void childFail(int errorFd, Step step, int err, int index = 0) {
  ChildFailure failure{static_cast<int>(step), err, index};
  // A pipe write of <= PIPE_BUF bytes is atomic (pipe(7)).
  ssize_t n = ::write(errorFd, &failure, sizeof failure);
  (void)n;
  ::_exit(127);
}

// Nothing but stdin/stdout/stderr may reach the program: not the daemon's
// sockets (Asio opens them without O_CLOEXEC), not a descriptor another
// thread opened a moment ago. CLOSE_RANGE_CLOEXEC (close_range(2), Linux 5.11)
// leaves them open until execve, so the error pipe still works; older kernels
// get the same with fcntl per descriptor. Async-signal-safe, no allocation.
void markInheritedCloexec() {
  if (::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
  struct rlimit limit {};
  const long max = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? static_cast<long>(limit.rlim_cur) : 1024;
  for (long fd = 3; fd < max && fd < 65536; ++fd) ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
}

// The daemon blocks signals for its signalfd and may ignore SIGPIPE; both would
// survive execve(2), so restore the defaults. A caught signal gets SIG_DFL too:
// once unblocked below, its handler must not run in the child. Only the
// signals `dispositions` names (the parent's ignored and caught ones, see
// changedSignals) — a handful instead of 64 system calls. Errors (SIGKILL,
// SIGSTOP) are expected and ignored.
void resetSignals(uint64_t dispositions) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  // glibc refuses its own signals (32, 33) in sigaction(), yet an ignored one
  // is inherited across exec (seen under a CI runner): reset them with the
  // raw rt_sigaction(2), whose struct is {handler, flags, restorer, mask}.
  struct {
    void* handler;
    unsigned long flags;
    void* restorer;
    uint64_t mask;
  } kernelDfl{};  // SIG_DFL is 0
  for (int sig = 1; sig < NSIG; ++sig) {
    if ((dispositions >> (sig - 1) & 1) == 0) continue;
    if (sig >= 32 && sig < SIGRTMIN) ::syscall(SYS_rt_sigaction, sig, &kernelDfl, nullptr, sizeof(uint64_t));
    else ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Moves the three sources above 2 first, so that dup2 into 0..2 can neither
// clobber a source that sits at 0..2 nor be a no-op that would leave
// FD_CLOEXEC set (dup2(2): "If oldfd == newfd, dup2() does nothing").
void installStdio(const ChildPlan& plan) {
  int sources[3];
  for (int i = 0; i < 3; ++i) {
    sources[i] = ::fcntl(plan.stdio[i], F_DUPFD_CLOEXEC, 3);
    if (sources[i] < 0) childFail(plan.errorFd, Step::kDup2, errno);
  }
  for (int i = 0; i < 3; ++i) {
    if (::dup2(sources[i], i) < 0) childFail(plan.errorFd, Step::kDup2, errno);
  }
}

// Raw system calls, not the glibc wrappers: glibc's setuid() & co. broadcast
// the change to every thread of the *parent's* thread list (nptl setxid) and
// take its locks, which a clone3 child must not touch.
void dropCredentials(const ChildPlan& plan) {
  if (::syscall(SYS_setgroups, plan.groupCount, plan.groups) < 0) {
    childFail(plan.errorFd, Step::kSetgroups, errno);
  }
  if (plan.setGid && ::syscall(SYS_setgid, plan.gid) < 0) childFail(plan.errorFd, Step::kSetgid, errno);
  if (plan.setUid && ::syscall(SYS_setuid, plan.uid) < 0) childFail(plan.errorFd, Step::kSetuid, errno);
}

// Joins the cgroups first, so everything after (and every descendant) is
// charged and limited there; "0" means the writing process (cgroups(7)).
void joinCgroups(const ChildPlan& plan) {
  for (int i = 0; i < plan.joinCount; ++i) {
    if (::write(plan.joinFds[i], "0", 1) != 1) childFail(plan.errorFd, Step::kCgroup, errno);
  }
}

// A child cloned with CLONE_FILES first takes a table of its own holding only
// the numbers below slotEnd — close_range(2) with CLOSE_RANGE_UNSHARE copies
// no descriptor above the range it closes — then closes every one of those
// that is not this spawn's: the daemon's first few and the other spawners'
// slots. So neither clone3 copies nor execve closes the thousands of pidfds
// and pipes a daemon with a thousand instances holds (perf: the
// close-on-exec walk alone was ~6 % of a cold start's CPU). Should the kernel
// refuse (older than 5.9), unshare(CLONE_FILES) copies the whole table and
// markInheritedCloexec() below closes the rest at execve, as without slots.
void takeOwnFdTable(const ChildPlan& plan) {
  if (plan.slotFirst < 0) return;
  const auto first = static_cast<unsigned>(plan.slotFirst), end = static_cast<unsigned>(plan.slotEnd);
  if (::syscall(SYS_close_range, end, ~0u, CLOSE_RANGE_UNSHARE) < 0 && ::unshare(CLONE_FILES) < 0) {
    childFail(plan.errorFd, Step::kUnshare, errno);  // nothing changed in the shared table
  }
  if (first > 3) ::syscall(SYS_close_range, 3u, first - 1, 0);
  if (first + kSlotsPerBlock < end) ::syscall(SYS_close_range, first + kSlotsPerBlock, end - 1, 0);
}

[[noreturn]] void runChild(const ChildPlan& plan) {
  // First, while the descriptor still means what the parent holds: after
  // takeOwnFdTable only this spawn's slots are left. setns needs root (it
  // runs before the drop) and an fs_struct of the child's own (no CLONE_FS);
  // it also moves the root and working directory to the namespace's root.
  if (plan.mountNs >= 0 && ::setns(plan.mountNs, CLONE_NEWNS) < 0) childFail(plan.errorFd, Step::kSetns, errno);
  takeOwnFdTable(plan);
  joinCgroups(plan);
  int failedOp = 0, err = 0;  // mounting needs root: before the drop (mount_namespaces(7))
  if (plan.mounts != nullptr && (err = plan.mounts->apply(&failedOp)) != 0) {
    childFail(plan.errorFd, Step::kMount, err, failedOp);
  }
  resetSignals(plan.signalsToReset);
  if (plan.newSession && ::setsid() < 0) childFail(plan.errorFd, Step::kSetsid, errno);
  installStdio(plan);
  if (plan.changeCreds) dropCredentials(plan);
  if (plan.nofile > 0) {
    struct rlimit limit {plan.nofile, plan.nofile};
    if (::setrlimit(RLIMIT_NOFILE, &limit) < 0) childFail(plan.errorFd, Step::kSetrlimit, errno);
  }
  if (plan.noNewPrivs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    childFail(plan.errorFd, Step::kPrctl, errno);
  }
  // After dropping privileges, so the account's own permissions apply.
  if (plan.cwd != nullptr && ::chdir(plan.cwd) < 0) childFail(plan.errorFd, Step::kChdir, errno);
  markInheritedCloexec();
  // Needs no_new_privs (or CAP_SYS_ADMIN); before the filter, which need not allow it.
  if (plan.scopeAbstractUnix && (err = scopeAbstractUnixSockets()) != 0) childFail(plan.errorFd, Step::kLandlock, err);
  // Last, so the filter binds the program and nothing of the set-up.
  if (plan.seccomp != nullptr && (err = plan.seccomp->install()) != 0) childFail(plan.errorFd, Step::kSeccomp, err);
  ::execve(plan.path, plan.argv, plan.envp);
  childFail(plan.errorFd, Step::kExec, errno);
}

// ---- parent side ----------------------------------------------------------

// A NULL-terminated char* array pointing into strings the caller keeps alive.
std::vector<char*> cStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));  // execve does not write
  out.push_back(nullptr);
  return out;
}

bool hasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

Status validate(const SpawnRequest& req) {
  if (req.path.empty() || req.argv.empty()) {
    return fail(Errc::kInvalidArgument, "spawn needs a path and at least argv[0]");
  }
  bool nul = hasNul(req.path) || hasNul(req.cwd);
  for (const auto& s : req.argv) nul = nul || hasNul(s);
  for (const auto& s : req.envp) nul = nul || hasNul(s);
  if (nul) return fail(Errc::kInvalidArgument, "spawn " + req.path + ": a string contains a NUL byte");
  if (req.mounts != nullptr && req.mountNs >= 0) {
    return fail(Errc::kInvalidArgument, "spawn " + req.path + ": a mount plan and a mount namespace to join exclude each other");
  }
  if (req.seccomp != nullptr && !req.noNewPrivs) {
    return fail(Errc::kInvalidArgument, "spawn " + req.path + ": a seccomp filter needs noNewPrivs");
  }
  return {};
}

// Keeps a parent-made fd out of 0..2 (the daemon may run with them closed),
// where the child's dup2 onto stdio would overwrite it.
Status keepAboveStdio(UniqueFd& fd) {
  if (fd.get() > 2) return {};
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return failErrno("fcntl", errno);
  fd.reset(moved);
  return {};
}

// Indexed by Step; 0 is what an unknown report is called.
constexpr const char* kStepNames[] = {"child", "cgroup", "setsid", "dup2",    "setgroups", "setgid", "setuid", "setrlimit",
                                      "prctl", "chdir",  "exec",   "mount", "seccomp",   "unshare", "setns",
                                      "landlock"};
static_assert(std::size(kStepNames) == static_cast<size_t>(Step::kLandlock) + 1);

std::string_view stepName(Step step) {
  auto index = static_cast<size_t>(step);
  return kStepNames[index < std::size(kStepNames) ? index : 0];
}

// "exec /srv/a.sh failed: Permission denied", "setuid 1001 failed: ...".
Error childError(const SpawnRequest& req, const ChildFailure& failure) {
  auto step = static_cast<Step>(failure.step);
  std::string subject(stepName(step));
  if (step == Step::kExec) subject += " " + req.path;
  if (step == Step::kCgroup) subject += " join";
  if (step == Step::kChdir) subject += " " + req.cwd;
  if (step == Step::kSetuid && req.uid) subject += " " + std::to_string(*req.uid);
  if (step == Step::kSetgid && req.gid) subject += " " + std::to_string(*req.gid);
  if (step == Step::kSetrlimit) subject += " RLIMIT_NOFILE " + std::to_string(req.rlimitNofile);
  if (step == Step::kMount && req.mounts != nullptr) subject += " " + req.mounts->describe(failure.index);
  if (step == Step::kSetns) subject += " into the account's mount namespace";
  Errc code = Errc::kInternal;
  bool badPath = failure.err == ENOENT || failure.err == EACCES || failure.err == ENOEXEC || failure.err == ENOTDIR;
  if ((step == Step::kExec || step == Step::kChdir) && badPath) code = Errc::kInvalidArgument;
  Error error = Error::fromErrno(std::string(stepName(step)), failure.err, code);
  error.message = subject + " failed: " + std::strerror(failure.err);
  return error;
}

void reapBlocking(int pidfd) {
  siginfo_t info{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) < 0 && errno == EINTR) {
  }
}

ssize_t readRetrying(int fd, void* buf, size_t size) {
  ssize_t n;
  do {
    n = ::read(fd, buf, size);
  } while (n < 0 && errno == EINTR);
  return n;
}

// Reads the child's report: 0 bytes (EOF at exec) means success.
Status awaitExec(const SpawnRequest& req, int readFd, int pidfd) {
  ChildFailure failure;
  ssize_t n = readRetrying(readFd, &failure, sizeof failure);
  if (n == 0) return {};
  int err = errno;
  if (n != static_cast<ssize_t>(sizeof failure)) {
    ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    reapBlocking(pidfd);
    return failErrno("read", n < 0 ? err : EPROTO);
  }
  reapBlocking(pidfd);
  return std::unexpected(childError(req, failure));
}

// clone3(CLONE_PIDFD | extra); the child runs `child`, which never returns.
// With every signal blocked, no parent handler can run in the child before it
// resets them (glibc's posix_spawn does the same).
CloneArgs cloneArgs(uint64_t extra, int* pidfd, int cgroupFd) {
  CloneArgs args;
  args.flags = CLONE_PIDFD | extra;  // the pidfd is O_CLOEXEC (clone(2))
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exitSignal = SIGCHLD;
  if (cgroupFd >= 0) {
    args.flags |= kCloneIntoCgroup;
    args.cgroup = static_cast<uint64_t>(cgroupFd);
  }
  return args;
}

template <class ChildFn>
Result<pid_t> cloneWith(uint64_t extra, int* pidfd, int cgroupFd, const ChildFn& child) {
  CloneArgs args = cloneArgs(extra, pidfd, cgroupFd);
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  long ret = ::syscall(SYS_clone3, &args, sizeof args);
  if (ret == 0) child();
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (ret < 0) return failErrno("clone3", err);
  return static_cast<pid_t>(ret);
}

#if defined(__x86_64__)
// clone3 with a stack of the child's own: the child starts on it and calls
// entry(arg), which never returns. Raw, because glibc 2.36 has no public
// clone3 and its syscall() wrapper would have the child return into a frame
// on the parent's stack (musl's __clone does the same for clone). rax, rcx
// and r11 are all a syscall clobbers, so r12/r13 reach the child intact.
// Returns the child's pid, or -errno.
[[gnu::noinline]] long clone3OnStack(CloneArgs* args, void (*entry)(void*), void* arg) {
  long ret;
  register void (*fn)(void*) asm("r12") = entry;
  register void* fnArg asm("r13") = arg;
  asm volatile(
      "syscall\n\t"
      "testq %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xorl %%ebp, %%ebp\n\t"  // the child: an empty frame chain
      "movq %%r13, %%rdi\n\t"
      "callq *%%r12\n\t"
      "movl $231, %%eax\n\t"  // exit_group(127) should entry return
      "movl $127, %%edi\n\t"
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "0"(static_cast<long>(SYS_clone3)), "D"(args), "S"(sizeof(CloneArgs)), "r"(fn), "r"(fnArg)
      : "rcx", "r11", "memory");
  return ret;
}

void runChildEntry(void* plan) { runChild(*static_cast<const ChildPlan*>(plan)); }

// The numbers reserveSpawnSlots() set aside: blocks of kSlotsPerBlock
// contiguous descriptors, each holding a copy of /dev/null while idle. Nothing
// else ever lands on them (they are open), so a child sharing the table can
// drop everything else by number.
struct SlotTable {
  std::mutex mutex;
  int base = -1;  // -1: none reserved; spawn copies the table
  int blocks = 0;
  uint64_t busy = 0;  // bit b: block b is lent out (or broken, never freed)
  UniqueFd idle;      // /dev/null, what an idle slot holds
};

SlotTable& slotTable() {
  static SlotTable table;
  return table;
}

int dupInto(int from, int slot) {
  int r;
  do {
    r = ::dup3(from, slot, O_CLOEXEC);
  } while (r < 0 && (errno == EINTR || errno == EBUSY));  // EBUSY: a racing open(2), dup2(2)
  return r;
}

// One spawn's block: binds the plan's descriptors into it for a
// CLONE_FILES clone and puts /dev/null back afterwards, so the slots hold no
// reference to the child's pipes (the error pipe must reach EOF). Empty
// (no CLONE_FILES) when nothing was reserved, all blocks are lent, or the
// plan needs more slots than a block has.
class SlotLease {
 public:
  SlotLease(const ChildPlan& plan, ChildPlan& bound) {
    if (plan.joinCount > kMaxJoinSlots) return;
    SlotTable& table = slotTable();
    {
      std::lock_guard lock(table.mutex);
      if (table.base < 0) return;
      for (int b = 0; b < table.blocks; ++b) {
        if ((table.busy >> b & 1) != 0) continue;
        table.busy |= uint64_t{1} << b;
        block_ = b;
        break;
      }
      if (block_ < 0) return;
      first_ = table.base + block_ * static_cast<int>(kSlotsPerBlock);
      bound = plan;
      bound.slotFirst = first_;
      bound.slotEnd = table.base + table.blocks * static_cast<int>(kSlotsPerBlock);
    }
    bool ok = true;
    for (int i = 0; i < 3 && ok; ++i) ok = bind(plan.stdio[i], i, bound.stdio[i]);
    ok = ok && bind(plan.errorFd, 3, bound.errorFd);
    for (int i = 0; i < plan.joinCount && ok; ++i) ok = bind(plan.joinFds[i], 4 + i, joins_[i]);
    bound.joinFds = joins_;
    if (!ok) {
      release();
      bound = plan;
    }
  }
  ~SlotLease() { release(); }
  SlotLease(const SlotLease&) = delete;
  SlotLease& operator=(const SlotLease&) = delete;

  explicit operator bool() const { return block_ >= 0; }

 private:
  bool bind(int fd, int index, int& boundFd) {
    const int slot = first_ + index;
    if (dupInto(fd, slot) < 0) return false;
    used_ |= 1u << index;
    boundFd = slot;
    return true;
  }

  void release() {
    if (block_ < 0) return;
    SlotTable& table = slotTable();
    bool restored = true;
    for (unsigned i = 0; i < kSlotsPerBlock; ++i) {
      if ((used_ >> i & 1) != 0) restored = dupInto(table.idle.get(), first_ + static_cast<int>(i)) >= 0 && restored;
    }
    std::lock_guard lock(table.mutex);
    // A slot that could not be reset keeps the block out of use: closing it
    // instead would free the number for any open(2), whose descriptor a
    // later spawn's dup3 would then silently replace.
    if (restored) table.busy &= ~(uint64_t{1} << block_);
    block_ = -1;
  }

  int block_ = -1;
  int first_ = -1;
  unsigned used_ = 0;
  int joins_[kMaxJoinSlots] = {-1, -1, -1, -1};
};

// posix_spawn's way (glibc spawni.c): CLONE_VM|CLONE_VFORK, so the kernel
// neither copies the daemon's page tables nor has either side take
// copy-on-write faults, and this thread sleeps until the child has exec'd
// or failed (which the plain clone would wait for on the error pipe
// anyway). Safe because the child only reads the plan and makes system
// calls (see runChild) and every signal stays blocked until it resets
// them. 64 KiB of stack: runChild's deepest frame is a few hundred bytes.
// With a SlotLease the child also shares the descriptor table (CLONE_FILES)
// until its first system call takes its own (takeOwnFdTable); the vfork
// keeps this thread from resetting the slots before that.
Result<pid_t> cloneAndRun(const ChildPlan& plan, int* pidfd, int cgroupFd) {
  constexpr size_t kStackSize = 64 * 1024;
  auto stack = std::make_unique<unsigned char[]>(kStackSize);  // 16-byte aligned
  ChildPlan bound;
  SlotLease lease(plan, bound);
  const ChildPlan& run = lease ? bound : plan;
  const uint64_t flags =
      CLONE_VM | CLONE_VFORK | (lease ? CLONE_FILES : 0) | (plan.mounts != nullptr ? CLONE_NEWNS : 0);
  CloneArgs args = cloneArgs(flags, pidfd, cgroupFd);
  args.stack = reinterpret_cast<uint64_t>(stack.get());
  args.stackSize = kStackSize;
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  long ret = clone3OnStack(&args, runChildEntry, const_cast<ChildPlan*>(&run));
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (ret < 0) return failErrno("clone3", static_cast<int>(-ret));
  return static_cast<pid_t>(ret);
}
#else
Result<pid_t> cloneAndRun(const ChildPlan& plan, int* pidfd, int cgroupFd) {
  uint64_t extra = plan.mounts != nullptr ? CLONE_NEWNS : 0;
  return cloneWith(extra, pidfd, cgroupFd, [&plan] { runChild(plan); });
}
#endif

// The cgroup.procs files the child writes itself into; owns the one spawn
// opens for the fallback below.
struct CgroupJoin {
  std::vector<int> fds;
  UniqueFd v2Procs;
};

// clone3 straight into req.cgroupFd. Where the kernel refuses that — EBUSY
// (domain controllers enabled in that cgroup), EOPNOTSUPP (domain invalid),
// EINVAL or E2BIG (older than 5.7), clone(2) — a plain clone3 whose child
// joins through the cgroup's cgroup.procs, opened here before the clone.
Result<pid_t> cloneIntoCgroup(const SpawnRequest& req, ChildPlan& plan, CgroupJoin& join, int* pidfd,
                              CgroupEntry* entry) {
  if (req.cgroupFd < 0) return cloneAndRun(plan, pidfd, -1);
  *entry = CgroupEntry::kCloneIntoCgroup;
  Result<pid_t> pid = cloneAndRun(plan, pidfd, req.cgroupFd);
  int err = pid ? 0 : pid.error().sysErrno;
  if (pid || (err != EBUSY && err != EOPNOTSUPP && err != EINVAL && err != E2BIG)) return pid;
  join.v2Procs.reset(::openat(req.cgroupFd, "cgroup.procs", O_WRONLY | O_CLOEXEC));
  if (!join.v2Procs) return failErrno("open cgroup.procs", errno);
  join.fds.insert(join.fds.begin(), join.v2Procs.get());
  plan.joinFds = join.fds.data();
  plan.joinCount = static_cast<int>(join.fds.size());
  *entry = CgroupEntry::kProcsFile;
  return cloneAndRun(plan, pidfd, -1);
}

// The signals this process ignores or catches (bit n-1 for signal n), from
// the SigIgn and SigCgt lines of /proc/self/status; all of them when that
// cannot be read. The child resets only these (the others are SIG_DFL
// already). Read once per process: the kernel formats the whole status file
// for it, which was ~2.4 % of the CPU of a cold start of 1,000 (perf,
// 2026-12-05). A disposition set later is still covered when it is one of
// kAlwaysReset, the signals daemons handle after their first spawn (the
// daemon's signal_set: SIGTERM, SIGINT, SIGHUP; SIGPIPE ignored): resetting
// a signal that is already SIG_DFL costs one syscall and changes nothing.
uint64_t readChangedSignals() {
  UniqueFd fd(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
  char buf[4096];
  ssize_t n = fd ? readRetrying(fd.get(), buf, sizeof buf - 1) : -1;
  if (n <= 0) return ~uint64_t{0};
  buf[n] = '\0';
  uint64_t mask = 0;
  int found = 0;
  for (const char* key : {"\nSigIgn:\t", "\nSigCgt:\t"}) {
    const char* at = std::strstr(buf, key);
    if (at == nullptr) continue;
    mask |= std::strtoull(at + std::strlen(key), nullptr, 16);
    ++found;
  }
  return found == 2 ? mask : ~uint64_t{0};
}

uint64_t changedSignals() {
  constexpr auto bit = [](int sig) { return uint64_t{1} << (sig - 1); };
  constexpr uint64_t kAlwaysReset = bit(SIGTERM) | bit(SIGINT) | bit(SIGHUP) | bit(SIGPIPE) | bit(SIGCHLD) |
                                    bit(SIGUSR1) | bit(SIGUSR2) | bit(SIGQUIT);
  static const uint64_t once = readChangedSignals();
  return once | kAlwaysReset;
}

ChildPlan makePlan(const SpawnRequest& req, std::vector<char*>& argv, std::vector<char*>& envp, int devNull,
                   int errorFd) {
  ChildPlan plan;
  plan.path = req.path.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.cwd = req.cwd.empty() ? nullptr : req.cwd.c_str();
  plan.stdio[0] = req.stdinFd < 0 ? devNull : req.stdinFd;
  plan.stdio[1] = req.stdoutFd < 0 ? devNull : req.stdoutFd;
  plan.stdio[2] = req.stderrFd < 0 ? devNull : req.stderrFd;
  plan.errorFd = errorFd;
  // setgroups runs whenever uid or gid really changes, so a child dropped
  // from root never keeps root's supplementary groups.
  plan.setGid = req.gid && *req.gid != ::getegid();
  plan.gid = req.gid.value_or(0);
  plan.setUid = req.uid && *req.uid != ::geteuid();
  plan.uid = req.uid.value_or(0);
  plan.changeCreds = plan.setGid || plan.setUid;
  plan.groups = req.groups.data();
  plan.groupCount = static_cast<int>(req.groups.size());
  plan.newSession = req.newSession;
  plan.noNewPrivs = req.noNewPrivs;
  plan.nofile = req.rlimitNofile > 0 ? static_cast<rlim_t>(req.rlimitNofile) : 0;
  plan.signalsToReset = changedSignals();
  plan.mounts = req.mounts;
  plan.mountNs = req.mountNs;
  plan.seccomp = req.seccomp;
  plan.scopeAbstractUnix = req.scopeAbstractUnix;
  return plan;
}

}  // namespace

Result<Child> spawn(const SpawnRequest& req) {
  if (auto ok = validate(req); !ok) return std::unexpected(ok.error());
  std::vector<char*> argv = cStrings(req.argv);
  std::vector<char*> envp = cStrings(req.envp);

  UniqueFd devNull;
  if (req.stdinFd < 0 || req.stdoutFd < 0 || req.stderrFd < 0) {
    devNull.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!devNull) return failErrno("open /dev/null", errno);
    if (auto ok = keepAboveStdio(devNull); !ok) return std::unexpected(ok.error());
  }
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) < 0) return failErrno("pipe", errno);
  UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  if (auto ok = keepAboveStdio(writeEnd); !ok) return std::unexpected(ok.error());

  CgroupJoin join{req.joinCgroupFds, {}};
  ChildPlan plan = makePlan(req, argv, envp, devNull.get(), writeEnd.get());
  plan.joinFds = join.fds.data();
  plan.joinCount = static_cast<int>(join.fds.size());

  int rawPidfd = -1;
  CgroupEntry entry = CgroupEntry::kNone;
  Result<pid_t> pid = cloneIntoCgroup(req, plan, join, &rawPidfd, &entry);
  if (!pid && req.mounts != nullptr && pid.error().sysErrno == EPERM) {
    pid.error().code = Errc::kUnavailable;
    pid.error().message = "clone3(CLONE_NEWNS) for private mounts failed: needs CAP_SYS_ADMIN (a root daemon)";
  }
  if (!pid) return std::unexpected(pid.error());
  UniqueFd pidfd(rawPidfd);
  writeEnd.reset();  // else our own copy would keep the pipe from reaching EOF
  if (auto ok = awaitExec(req, readEnd.get(), pidfd.get()); !ok) return std::unexpected(ok.error());
  return Child{*pid, std::move(pidfd), entry};
}

Status reserveSpawnSlots(int blocks) {
  if (blocks < 1 || blocks > 64) return fail(Errc::kInvalidArgument, "spawn slots: 1 to 64 blocks");
  SlotTable& table = slotTable();
  std::lock_guard lock(table.mutex);
  if (table.base >= 0) return {};
#if defined(__x86_64__)
  UniqueFd idle(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!idle) return failErrno("open /dev/null", errno);
  if (auto ok = keepAboveStdio(idle); !ok) return ok;
  // The lowest free run of blocks × kSlotsPerBlock numbers above 2: F_DUPFD
  // gives the lowest free number at or above its argument, so a run that
  // meets a taken number starts over behind it.
  const int want = blocks * static_cast<int>(kSlotsPerBlock);
  std::vector<UniqueFd> run;
  while (static_cast<int>(run.size()) < want) {
    const int from = run.empty() ? 3 : run.back().get() + 1;
    UniqueFd fd(::fcntl(idle.get(), F_DUPFD_CLOEXEC, from));
    if (!fd) return failErrno("reserve spawn slots", errno);
    if (!run.empty() && fd.get() != from) run.clear();
    run.push_back(std::move(fd));
  }
  table.base = run.front().get();
  table.blocks = blocks;
  for (auto& fd : run) (void)fd.release();  // held for the life of the process
  table.idle = std::move(idle);
#endif
  return {};
}

namespace {

// Runs fn in a child (in a new mount namespace if asked) and returns its
// report. With `ns`, the child stays alive after reporting so that the parent
// can open /proc/PID/ns/mnt into *ns; then it is killed.
Result<std::array<int, 2>> runProbe(ProbeFn fn, const void* arg, bool newMountNs, UniqueFd* ns) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) < 0) return failErrno("pipe", errno);
  UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  int rawPidfd = -1;
  auto child = [&] {
    int report[2] = {0, 0};
    fn(arg, report);
    bool written = ::write(writeEnd.get(), report, sizeof report) == sizeof report;
    if (!written || ns == nullptr) _exit(written ? 0 : 127);
    // Alive, so that the parent can open /proc/PID/ns/mnt; every signal is
    // blocked (cloneWith), SIGKILL ends it.
    for (;;) ::pause();
  };
  Result<pid_t> pid = cloneWith(newMountNs ? CLONE_NEWNS : 0, &rawPidfd, -1, child);
  if (!pid) return std::unexpected(pid.error());
  UniqueFd pidfd(rawPidfd);
  writeEnd.reset();
  std::array<int, 2> report{};
  ssize_t n = readRetrying(readEnd.get(), report.data(), sizeof report);
  const bool reported = n == static_cast<ssize_t>(sizeof report);
  int openErr = 0;
  if (ns != nullptr) {
    if (reported && report[0] == 0) {
      const std::string path = "/proc/" + std::to_string(*pid) + "/ns/mnt";
      ns->reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!*ns) openErr = errno;
    }
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
  }
  reapBlocking(pidfd.get());  // fn has returned: the child is exiting (or killed)
  if (!reported) return fail(Errc::kInternal, "probe child died before reporting");
  if (openErr != 0) return failErrno("open /proc/PID/ns/mnt", openErr);
  return report;
}

}  // namespace

Result<std::array<int, 2>> runInChild(ProbeFn fn, const void* arg, bool newMountNs) {
  return runProbe(fn, arg, newMountNs, nullptr);
}

Result<std::array<int, 2>> runInNewMountNs(ProbeFn fn, const void* arg, UniqueFd& ns) {
  return runProbe(fn, arg, true, &ns);
}

}  // namespace hv::os
