/* hostvisor proxy: kernel-side copy of established plain WebSocket tunnels.
 *
 * Both sockets of a tunnel sit in two SOCKHASHes keyed by socket cookie:
 * `targets` (no program: it only gives each socket the psock a redirect
 * needs) and `socks`, with this stream verdict program attached and no
 * parser, so the kernel hands it every received skb
 * (net/core/skmsg.c sk_psock_verdict_recv, via tcp_read_skb). The program
 * counts the bytes (activity evidence for the idle timeout, byte stats) and
 * redirects the skb to the egress of the peer socket (bpf_sk_redirect_hash
 * on `targets`, flags 0): the peer's psock backlog sends it on, in order,
 * and the bytes never reach user space.
 *
 * User space fills `targets` and `peers` before `socks`, so from the moment
 * a socket gets the verdict its peer is already a valid target (a single
 * map would leave a window in which a redirect finds no peer and drops).
 * A socket with no `peers` entry gets SK_PASS; an empty skb (a bare FIN) is
 * dropped; a peer that is gone makes the
 * redirect fail, which drops the skb (the tunnel is being torn down then).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "tunnel_offload_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, HV_OFFLOAD_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, __u32);
} socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, HV_OFFLOAD_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, __u32);
} targets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HV_OFFLOAD_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, struct hv_peer);
} peers SEC(".maps");

SEC("sk_skb/stream_verdict")
int hv_tunnel_verdict(struct __sk_buff *skb) {
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct hv_peer *p = bpf_map_lookup_elem(&peers, &cookie);
  if (!p) return SK_PASS;
  /* A FIN without data: TCP has already marked the socket (RCV_SHUTDOWN,
   * which user space sees and passes on). Redirected, the empty skb would
   * make the peer's psock backlog send 0 bytes, which it takes for a broken
   * pipe (EPIPE on the peer socket). */
  if (skb->len == 0) return SK_DROP;
  __sync_fetch_and_add(&p->bytes, skb->len);
  return bpf_sk_redirect_hash(skb, &targets, &p->peer, 0);
}

char LICENSE[] SEC("license") = "GPL";
