#include "os/seccomp.h"

#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

#include "base/unique_fd.h"
#include "os/spawn.h"

namespace hv::os {
namespace {

// Syscalls refused outright with EPERM (see the header for why each group).
constexpr const char* kDenied[] = {
    // other processes' memory and descriptors
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    // the mount table
    "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr",
    // namespaces (unshare and clone are filtered by flag below)
    "setns",
    // kernel attack surface
    "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie", "open_by_handle_at", "name_to_handle_at",
    // modules, kexec, machine state
    "init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd",
    "nfsservctl", "uselib", "_sysctl", "sethostname", "setdomainname", "vhangup",
    "iopl", "ioperm", "modify_ldt", "vm86", "vm86old",
    // keyrings
    "add_key", "request_key", "keyctl",
    // the clock
    "settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64",
};

// Refused with ENOSYS so callers fall back to something the filter can see.
constexpr const char* kNotImplemented[] = {"clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"};

constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                        CLONE_NEWUSER, CLONE_NEWPID,   CLONE_NEWNET};

constexpr uint64_t kUnsafePersonality[] = {ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO,
                                           ADDR_COMPAT_LAYOUT};
constexpr uint64_t kLow32 = 0xffffffffULL;
constexpr uint64_t kSockTypeMask = 0xf;  // SOCK_TYPE_MASK: type without SOCK_NONBLOCK/SOCK_CLOEXEC

struct Filter {
  scmp_filter_ctx ctx = nullptr;
  ~Filter() {
    if (ctx != nullptr) seccomp_release(ctx);
  }
};

// libseccomp returns -errno; a name this libseccomp does not know is a bug in
// the list above, not a host property.
Status addRule(scmp_filter_ctx ctx, const char* name, int err, std::initializer_list<scmp_arg_cmp> args = {}) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return fail(Errc::kInternal, std::string("seccomp: unknown syscall ") + name);
  int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(err), nr, static_cast<unsigned>(args.size()), args.begin());
  if (rc < 0) return failErrno(std::string("seccomp_rule_add ") + name, -rc);
  return {};
}

// unshare(flags) and clone(flags, ...): one rule per namespace flag, since a
// rule tests each argument once (clone's low byte is the exit signal, so
// CLONE_NEWTIME, 0x80, is only meaningful to unshare).
Status addNamespaceRules(scmp_filter_ctx ctx) {
  for (uint64_t flag : kNamespaceFlags) {
    for (const char* name : {"unshare", "clone"}) {
      if (auto ok = addRule(ctx, name, EPERM, {SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)}); !ok) return ok;
    }
  }
  return addRule(ctx, "unshare", EPERM, {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWTIME, CLONE_NEWTIME)});
}

// socket(family, type, protocol): families other than AF_UNIX(1), AF_INET(2),
// AF_INET6(10), AF_NETLINK(16); raw/packet types of INET; netlink but ROUTE.
Status addSocketRules(scmp_filter_ctx ctx) {
  if (auto ok = addRule(ctx, "socket", EPERM, {SCMP_A0(SCMP_CMP_GT, AF_NETLINK)}); !ok) return ok;
  for (uint64_t family = 0; family < AF_NETLINK; ++family) {
    if (family == AF_UNIX || family == AF_INET || family == AF_INET6) continue;
    if (auto ok = addRule(ctx, "socket", EPERM, {SCMP_A0(SCMP_CMP_MASKED_EQ, kLow32, family)}); !ok) return ok;
  }
  for (uint64_t family : {AF_INET, AF_INET6}) {
    for (uint64_t type : {SOCK_RAW, SOCK_PACKET}) {
      auto ok = addRule(ctx, "socket", EPERM,
                        {SCMP_A0(SCMP_CMP_MASKED_EQ, kLow32, family),
                         SCMP_A1(SCMP_CMP_MASKED_EQ, kSockTypeMask, type)});
      if (!ok) return ok;
    }
  }
  return addRule(ctx, "socket", EPERM,
                 {SCMP_A0(SCMP_CMP_MASKED_EQ, kLow32, AF_NETLINK), SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE)});
}

Status addRules(scmp_filter_ctx ctx) {
  for (const char* name : kDenied) {
    if (auto ok = addRule(ctx, name, EPERM); !ok) return ok;
  }
  for (const char* name : kNotImplemented) {
    if (auto ok = addRule(ctx, name, ENOSYS); !ok) return ok;
  }
  for (uint64_t flag : kUnsafePersonality) {
    if (auto ok = addRule(ctx, "personality", EPERM, {SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)}); !ok) return ok;
  }
  if (auto ok = addNamespaceRules(ctx); !ok) return ok;
  return addSocketRules(ctx);
}

// The 32-bit ABIs that share the native kernel, so their syscall numbers
// reach the same code: x86 and x32 beside x86_64, arm beside aarch64.
Status addCompatArches(scmp_filter_ctx ctx) {
  std::vector<uint32_t> extra;
  uint32_t native = seccomp_arch_native();
  if (native == SCMP_ARCH_X86_64) extra = {SCMP_ARCH_X86, SCMP_ARCH_X32};
  if (native == SCMP_ARCH_AARCH64) extra = {SCMP_ARCH_ARM};
  for (uint32_t arch : extra) {
    int rc = seccomp_arch_add(ctx, arch);
    if (rc < 0 && rc != -EEXIST) return failErrno("seccomp_arch_add", -rc);
  }
  return {};
}

// libseccomp 2.5 (Debian 12) has no seccomp_export_bpf_mem (2.6): export to a
// memfd and read it back.
Result<std::vector<sock_filter>> exportBpf(scmp_filter_ctx ctx) {
  UniqueFd mem(::memfd_create("hv-seccomp", MFD_CLOEXEC));
  if (!mem) return failErrno("memfd_create", errno);
  if (int rc = seccomp_export_bpf(ctx, mem.get()); rc < 0) return failErrno("seccomp_export_bpf", -rc);
  struct stat st {};
  if (::fstat(mem.get(), &st) < 0) return failErrno("fstat", errno);
  auto bytes = static_cast<size_t>(st.st_size);
  if (bytes == 0 || bytes % sizeof(sock_filter) != 0 || bytes / sizeof(sock_filter) > BPF_MAXINSNS) {
    return fail(Errc::kInternal, "seccomp_export_bpf wrote " + std::to_string(bytes) + " bytes");
  }
  std::vector<sock_filter> filter(bytes / sizeof(sock_filter));
  if (::pread(mem.get(), filter.data(), bytes, 0) != static_cast<ssize_t>(bytes)) {
    return failErrno("read exported filter", errno == 0 ? EIO : errno);
  }
  return filter;
}

// Probe child: report = {stage, errno}; stage 0 means every check held.
void probeChild(const void* arg, int report[2]) {
  const auto* program = static_cast<const SeccompProgram*>(arg);
  auto failAt = [report](int stage, int err) {
    report[0] = stage;
    report[1] = err;
  };
  failAt(0, 0);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return failAt(1, errno);
  if (int err = program->install(); err != 0) return failAt(2, err);
  long rc = ::syscall(SYS_unshare, CLONE_NEWUSER);
  if (rc == 0 || errno != EPERM) return failAt(3, rc == 0 ? 0 : errno);
  rc = ::syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0);
  if (rc >= 0 || errno != EPERM) return failAt(4, rc >= 0 ? 0 : errno);
}

}  // namespace

SeccompProgram::SeccompProgram(std::vector<sock_filter> filter) : filter_(std::move(filter)) {
  prog_.len = static_cast<unsigned short>(filter_.size());
  prog_.filter = filter_.data();
}

SeccompProgram::SeccompProgram(SeccompProgram&& other) noexcept : filter_(std::move(other.filter_)) {
  prog_.len = static_cast<unsigned short>(filter_.size());
  prog_.filter = filter_.data();
  other.prog_ = {};
}

SeccompProgram& SeccompProgram::operator=(SeccompProgram&& other) noexcept {
  if (this == &other) return *this;
  filter_ = std::move(other.filter_);
  prog_.len = static_cast<unsigned short>(filter_.size());
  prog_.filter = filter_.data();
  other.prog_ = {};
  return *this;
}

int SeccompProgram::install() const noexcept {
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog_, 0, 0) < 0) return errno;
  return 0;
}

Result<SeccompProgram> buildDenyListFilter() {
  Filter filter;
  filter.ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (filter.ctx == nullptr) return fail(Errc::kInternal, "seccomp_init failed");
  // A binary search over syscall numbers instead of a linear scan; the
  // kernel's own cache (Linux 5.11) already skips the filter for syscalls
  // allowed whatever their arguments.
  if (int rc = seccomp_attr_set(filter.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0) {
    return failErrno("seccomp_attr_set OPTIMIZE", -rc);
  }
  if (auto ok = addCompatArches(filter.ctx); !ok) return std::unexpected(ok.error());
  if (auto ok = addRules(filter.ctx); !ok) return std::unexpected(ok.error());
  auto bpf = exportBpf(filter.ctx);
  if (!bpf) return std::unexpected(bpf.error());
  return SeccompProgram(std::move(*bpf));
}

MechanismReport probeSeccomp(const SeccompProgram& program) {
  MechanismReport report{"syscall filter", false, {}};
  auto outcome = runInChild(&probeChild, &program, false);
  if (!outcome) {
    report.detail = "probe child: " + outcome.error().message;
    return report;
  }
  auto [stage, err] = *outcome;
  static constexpr const char* kStages[] = {"", "prctl(PR_SET_NO_NEW_PRIVS)", "prctl(PR_SET_SECCOMP)",
                                            "unshare(CLONE_NEWUSER) not refused with EPERM",
                                            "socket(AF_PACKET) not refused with EPERM"};
  if (stage < 0 || stage > 4) {
    report.detail = "probe child reported stage " + std::to_string(stage);
  } else if (stage != 0) {
    report.detail = std::string(kStages[stage]) + ": " + (err == 0 ? "it succeeded" : std::strerror(err)) +
                    "; account programs could create namespaces, raw sockets, ptrace";
  } else {
    report.enforced = true;
    report.detail = "seccomp deny-list (" + std::to_string(program.instructionCount()) +
                    " BPF instructions): ptrace, mount, bpf, new namespaces, raw/packet sockets, modules, "
                    "keyrings refused with EPERM, for root too";
  }
  return report;
}

}  // namespace hv::os
