/* hostvisor network policy: cgroup-v2 BPF programs attached once to the
 * daemon's cgroup root with BPF_F_ALLOW_MULTI (so they run for every run
 * cgroup below it), each looking up the policy of the socket's cgroup.
 *
 * Kernel references: include/uapi/linux/bpf.h (struct bpf_sock_addr,
 * struct __sk_buff, struct bpf_sock); kernel/bpf/cgroup.c
 * __cgroup_bpf_run_filter_sock_addr (a program returning 0 makes bind,
 * connect or sendmsg fail with EPERM) and __cgroup_bpf_run_filter_skb (0
 * drops the packet); Documentation/bpf/map_lpm_trie.rst (the allowlist).
 *
 * A socket whose cgroup has no entry in `policies` is never restricted.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "netpolicy_abi.h"

#define SOCK_DGRAM 2

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HV_MAX_POLICIES);
  __type(key, __u64);
  __type(value, struct hv_policy);
} policies SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HV_MAX_POLICIES);
  __type(key, __u64);
  __type(value, struct hv_blocked);
} blocked SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, HV_MAX_ALLOW_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct hv_allow_key);
  __type(value, __u8);
} allow SEC(".maps");

enum hv_counter { HV_BIND, HV_CONNECT, HV_SENDMSG, HV_INGRESS };

static __always_inline void count(__u64 cgroup, enum hv_counter which) {
  struct hv_blocked *b = bpf_map_lookup_elem(&blocked, &cgroup);
  if (!b) return;
  if (which == HV_BIND) __sync_fetch_and_add(&b->bind, 1);
  else if (which == HV_CONNECT) __sync_fetch_and_add(&b->connect, 1);
  else if (which == HV_SENDMSG) __sync_fetch_and_add(&b->sendmsg, 1);
  else __sync_fetch_and_add(&b->ingress, 1);
}

/* A peer address, normalised: v4-mapped IPv6 becomes IPv4 (the kernel sends
 * it over IPv4), and the unspecified address becomes loopback (connecting to
 * 0.0.0.0 or :: reaches the local host). */
struct peer {
  __u8 family;
  __u32 addr[4];
};

static __always_inline void setV4(struct peer *p, __u32 ip) {
  if (ip == 0) ip = bpf_htonl(0x7f000001);
  p->family = (bpf_ntohl(ip) >> 24) == 127 ? HV_FAMILY_LOOP4 : HV_FAMILY_V4;
  p->addr[0] = ip;
  p->addr[1] = p->addr[2] = p->addr[3] = 0;
}

static __always_inline void setV6(struct peer *p, __u32 a0, __u32 a1, __u32 a2, __u32 a3) {
  if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
    setV4(p, a3);
    return;
  }
  int prefixZero = a0 == 0 && a1 == 0 && a2 == 0;
  if (prefixZero && a3 == 0) a3 = bpf_htonl(1);
  p->family = prefixZero && a3 == bpf_htonl(1) ? HV_FAMILY_LOOP6 : HV_FAMILY_V6;
  p->addr[0] = a0;
  p->addr[1] = a1;
  p->addr[2] = a2;
  p->addr[3] = a3;
}

static __always_inline int listed(__u64 cgroup, __u8 protocol, __u16 port, const struct peer *p) {
  struct hv_allow_key key = {};
  key.prefixlen = HV_ALLOW_FIXED_BITS + 128;
  key.family = p->family;
  key.cgroup_id = cgroup;
  key.addr[0] = p->addr[0];
  key.addr[1] = p->addr[1];
  key.addr[2] = p->addr[2];
  key.addr[3] = p->addr[3];
  for (int i = 0; i < 4; i++) {
    key.protocol = (i & 1) ? 0 : protocol;
    key.port = (i & 2) ? 0 : port;
    if (bpf_map_lookup_elem(&allow, &key)) return 1;
  }
  return 0;
}

static __always_inline int allowedPeer(__u64 cgroup, const struct hv_policy *policy, __u8 protocol, __u16 port,
                                       const struct peer *p) {
  /* The instance's own port on loopback: its health checks of itself. */
  int loopback = p->family == HV_FAMILY_LOOP4 || p->family == HV_FAMILY_LOOP6;
  if (loopback && policy->listen_port != 0 && port == policy->listen_port) return 1;
  return listed(cgroup, protocol, port, p);
}

static __always_inline int checkBind(struct bpf_sock_addr *ctx) {
  __u64 cgroup = bpf_get_current_cgroup_id();
  struct hv_policy *policy = bpf_map_lookup_elem(&policies, &cgroup);
  if (!policy) return 1;
  __u16 port = bpf_ntohs((__u16)ctx->user_port);
  if (policy->listen_port != 0 && port == policy->listen_port) return 1;
  /* A UDP client's ephemeral port; a TCP one would be an unassigned listener. */
  if (port == 0 && ctx->type == SOCK_DGRAM) return 1;
  count(cgroup, HV_BIND);
  return 0;
}

static __always_inline int checkPeer(struct bpf_sock_addr *ctx, int v6, enum hv_counter which) {
  __u64 cgroup = bpf_get_current_cgroup_id();
  struct hv_policy *policy = bpf_map_lookup_elem(&policies, &cgroup);
  if (!policy) return 1;
  struct peer p = {};
  if (v6)
    setV6(&p, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]);
  else
    setV4(&p, ctx->user_ip4);
  if (allowedPeer(cgroup, policy, (__u8)ctx->protocol, bpf_ntohs((__u16)ctx->user_port), &p)) return 1;
  count(cgroup, which);
  return 0;
}

SEC("cgroup/bind4")
int hv_bind4(struct bpf_sock_addr *ctx) { return checkBind(ctx); }

SEC("cgroup/bind6")
int hv_bind6(struct bpf_sock_addr *ctx) { return checkBind(ctx); }

SEC("cgroup/connect4")
int hv_connect4(struct bpf_sock_addr *ctx) { return checkPeer(ctx, 0, HV_CONNECT); }

SEC("cgroup/connect6")
int hv_connect6(struct bpf_sock_addr *ctx) { return checkPeer(ctx, 1, HV_CONNECT); }

SEC("cgroup/sendmsg4")
int hv_sendmsg4(struct bpf_sock_addr *ctx) { return checkPeer(ctx, 0, HV_SENDMSG); }

SEC("cgroup/sendmsg6")
int hv_sendmsg6(struct bpf_sock_addr *ctx) { return checkPeer(ctx, 1, HV_SENDMSG); }

/* The source of a datagram: IPv4 options are skipped; an IPv6 datagram
 * behind extension headers is not parsed and reported as unknown (-1). */
static __always_inline int udpSource(struct __sk_buff *skb, struct peer *p, __u16 *port) {
  __u32 l4;
  if (skb->protocol == bpf_htons(ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof ip)) return -1;
    setV4(p, ip.saddr);
    l4 = ip.ihl * 4;
  } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof ip6)) return -1;
    if (ip6.nexthdr != IPPROTO_UDP && ip6.nexthdr != IPPROTO_UDPLITE) return -1;
    setV6(p, ip6.saddr.in6_u.u6_addr32[0], ip6.saddr.in6_u.u6_addr32[1], ip6.saddr.in6_u.u6_addr32[2],
          ip6.saddr.in6_u.u6_addr32[3]);
    l4 = sizeof ip6;
  } else {
    return -1;
  }
  __be16 source;
  if (bpf_skb_load_bytes(skb, l4, &source, sizeof source)) return -1;
  *port = bpf_ntohs(source);
  return 0;
}

/* listen() without bind() autobinds an ephemeral port and runs no bind hook
 * (net/ipv4/af_inet.c inet_autobind), so a listener on a port other than
 * the assigned one is refused here: every packet reaching a TCP socket in
 * LISTEN state on another port is dropped (the SYN never gets an answer),
 * whatever way the socket got its port. UDP sockets on other ports (client
 * ephemeral ports) accept datagrams only from allowlisted peers. */
SEC("cgroup_skb/ingress")
int hv_ingress(struct __sk_buff *skb) {
  struct bpf_sock *sk = skb->sk;
  if (!sk) return 1;
  sk = bpf_sk_fullsock(sk);
  if (!sk) return 1;
  __u64 cgroup = bpf_skb_cgroup_id(skb);
  struct hv_policy *policy = bpf_map_lookup_elem(&policies, &cgroup);
  if (!policy) return 1;
  if (policy->listen_port != 0 && sk->src_port == policy->listen_port) return 1;
  if (sk->protocol == IPPROTO_TCP) {
    if (sk->state != BPF_TCP_LISTEN) return 1;
  } else if (sk->protocol == IPPROTO_UDP || sk->protocol == IPPROTO_UDPLITE) {
    struct peer p = {};
    __u16 port = 0;
    if (udpSource(skb, &p, &port) == 0 && allowedPeer(cgroup, policy, (__u8)sk->protocol, port, &p)) return 1;
  } else {
    return 1;
  }
  count(cgroup, HV_INGRESS);
  return 0;
}

/* The kernel wants a license string; no GPL-only helper is used. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
