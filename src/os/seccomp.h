// SeccompProgram: the system-call deny-list every account program runs under.
//
// Built once in the daemon with libseccomp (default action ALLOW), exported to
// raw classic BPF and kept; spawn() installs it in the child as the last step
// before execve (SpawnRequest::seccomp), after the credential drop and
// no_new_privs — so installing needs no allocation and no libseccomp in the
// child. A filter holds for root too, and is inherited by every descendant;
// it cannot be removed, only stacked on (seccomp(2)).
//
// Refused with EPERM: ptrace, process_vm_readv/writev, pidfd_getfd; mount,
// umount, pivot_root, chroot and the new mount API (open_tree, move_mount,
// fs*, mount_setattr); unshare/clone with any CLONE_NEW* flag, setns; bpf,
// perf_event_open, userfaultfd; kernel modules, kexec, reboot, swap, acct,
// syslog, iopl/ioperm/modify_ldt/vm86, keyrings (add_key, request_key,
// keyctl), quotactl, open_by_handle_at/name_to_handle_at, lookup_dcookie,
// sethostname/setdomainname, setting the clock, legacy calls (uselib,
// _sysctl, nfsservctl, vhangup, create_module...); personality() with
// ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO or ADDR_COMPAT_LAYOUT
// (one rule cannot exempt the 0xffffffff query, so that is refused too).
// socket(): only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK; no SOCK_RAW or
// SOCK_PACKET for AF_INET/AF_INET6 (ping sockets, SOCK_DGRAM+IPPROTO_ICMP,
// stay governed by net.ipv4.ping_group_range); netlink only NETLINK_ROUTE,
// which getifaddrs(3), if_nameindex(3) and `ip addr` read (changing routes or
// links still needs CAP_NET_ADMIN, which a new user namespace cannot supply).
// Refused with ENOSYS, so libraries fall back: clone3 (its flags live in
// memory a filter cannot read; glibc then uses clone, whose flags are checked)
// and io_uring_* (its operations bypass seccomp, e.g. IORING_OP_SOCKET).
// The i386 and x32 ABIs get the same rules (seccomp_arch_add), so a 32-bit
// call cannot slip past; other ABIs are killed. On i386 socketcall(2) cannot
// be inspected: its SYS_SOCKET is refused whole (32-bit programs must use the
// direct socket syscall).
//
// Arguments declared int are compared on their low 32 bits where a match
// denies, so garbage in a register's upper half cannot dodge a rule.
// Thread-safe once built (read-only).
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <vector>

#include "base/result.h"
#include "os/cgroup.h"  // MechanismReport

namespace hv::os {

class SeccompProgram {
 public:
  SeccompProgram(SeccompProgram&& other) noexcept;
  SeccompProgram& operator=(SeccompProgram&& other) noexcept;
  SeccompProgram(const SeccompProgram&) = delete;
  SeccompProgram& operator=(const SeccompProgram&) = delete;

  // For prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog()); valid while this
  // object lives.
  const sock_fprog* prog() const { return &prog_; }
  size_t instructionCount() const { return filter_.size(); }

  // Installs the filter on the calling thread. Child side (between clone and
  // exec): one prctl(2), no allocation. Needs no_new_privs first unless the
  // caller has CAP_SYS_ADMIN. Returns 0 or the errno.
  int install() const noexcept;

 private:
  friend Result<SeccompProgram> buildDenyListFilter();
  explicit SeccompProgram(std::vector<sock_filter> filter);

  std::vector<sock_filter> filter_;
  sock_fprog prog_{};  // points into filter_
};

// The deny-list above for the native ABI plus its 32-bit companions.
// kInternal if libseccomp refuses a rule or the export fails.
Result<SeccompProgram> buildDenyListFilter();

// Really tries: a child installs `program` (after no_new_privs) and calls
// unshare(CLONE_NEWUSER), which must fail with EPERM; then socket(AF_PACKET)
// likewise. Enforced, or degraded with the step and errno.
MechanismReport probeSeccomp(const SeccompProgram& program);

}  // namespace hv::os
