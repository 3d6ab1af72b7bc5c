/* Shared by tunnel_offload.bpf.c and tunnel_offload.cpp: the per-socket entry
 * of the `peers` map. Plain C, fixed-width fields. */
#ifndef HV_PROXY_TUNNEL_OFFLOAD_ABI_H
#define HV_PROXY_TUNNEL_OFFLOAD_ABI_H

#include <linux/types.h>

#define HV_OFFLOAD_MAX_SOCKETS 65536 /* two per offloaded tunnel */

/* Key: the socket cookie of the receiving socket. */
struct hv_peer {
  __u64 peer;  /* socket cookie of the other end of the tunnel (the `socks` key) */
  __u64 bytes; /* bytes received on this socket and redirected to the peer */
};

#endif
