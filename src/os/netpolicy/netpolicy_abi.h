/* The layout of the BPF maps shared by netpolicy.bpf.c (compiled by clang
 * for the BPF target) and the C++ side that fills them. C, not C++: both
 * compilers read it, so it uses only the kernel's fixed-width types.
 * Changing a layout changes the pinned maps' key/value sizes: libbpf then
 * refuses to reuse the old pins (see netpolicy.h, "Upgrades").
 */
#ifndef HV_OS_NETPOLICY_ABI_H
#define HV_OS_NETPOLICY_ABI_H

#include <linux/types.h>

/* policies: HASH, key = run cgroup id (__u64), value = struct hv_policy. */
struct hv_policy {
  __u16 listen_port; /* host order; the only port bind() may name */
  __u16 reserved1;
  __u32 reserved2;
};

/* blocked: HASH, key = run cgroup id (__u64), value = struct hv_blocked.
 * Incremented atomically by the programs; read by NetPolicy::blocked(). */
struct hv_blocked {
  __u64 bind;
  __u64 connect;
  __u64 sendmsg;
  __u64 ingress;
};

/* Address spaces in the allowlist trie. A loopback destination (127/8,
 * ::1, their v4-mapped forms, and 0.0.0.0 / :: which the kernel routes to
 * loopback) is looked up only among entries that are themselves loopback,
 * so a wide entry such as 0.0.0.0/0 never opens the host's local services. */
#define HV_FAMILY_V4 4
#define HV_FAMILY_V6 6
#define HV_FAMILY_LOOP4 (0x80 | 4)
#define HV_FAMILY_LOOP6 (0x80 | 6)

/* allow: LPM_TRIE (BPF_F_NO_PREALLOC). The first 96 data bits (protocol,
 * family, port, cgroup id) must match exactly; the address matches by
 * prefix. A v4 address is addr[0], the rest zero. protocol 0 and port
 * 0 are wildcards: the programs look up all four combinations. */
struct hv_allow_key {
  __u32 prefixlen; /* HV_ALLOW_FIXED_BITS + address prefix length */
  __u8 protocol;   /* 0 any, 6 tcp, 17 udp */
  __u8 family;     /* HV_FAMILY_* */
  __u16 port;      /* host order, 0 = any */
  __u64 cgroup_id;
  __u32 addr[4];   /* network order, as struct bpf_sock_addr's user_ip6 */
};

#define HV_ALLOW_FIXED_BITS 96

#define HV_MAX_POLICIES 16384
#define HV_MAX_ALLOW_ENTRIES 65536

#endif /* HV_OS_NETPOLICY_ABI_H */
