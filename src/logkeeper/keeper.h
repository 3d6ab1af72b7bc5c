// The log keeper: a small process, one per data directory, that owns the
// pipes instances write their stdout/stderr into and copies them to the log
// files. It is why a program's output survives the daemon:
//
// - the daemon may die or restart at any time; the keeper keeps draining
//   every pipe (no SIGPIPE, no full pipe, no stall), and a new daemon takes
//   the pipes back ("fetch", in the spirit of systemd's fd store);
// - if the keeper dies instead, the daemon still holds both ends of every
//   pipe and hands them to a fresh keeper: programs never notice;
// - the program never waits on the disk: one thread reads every pipe into a
//   bounded buffer per instance (kMaxPending), another writes the buffers
//   to the files. When a buffer is full or a write fails (disk full, quota,
//   I/O error) the bytes are dropped and counted — lines and bytes, per
//   instance — and once writing works again a line in the log says how many
//   were lost and why;
// - rotation is by size, by rename (NAME.log → NAME.log.1 …, keeping `keep`
//   old files), done between two writes, so no byte is lost or duplicated.
//
// Only both dying together loses the pipes (the programs then get EPIPE and
// are restarted by the next daemon with fresh ones).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hv::logkeeper {

inline constexpr size_t kMaxPending = 4 << 20;  // bytes buffered per instance

// Serves the listening SOCK_SEQPACKET socket `listenFd` (the daemon
// connects; one connection at a time, a new one replaces the old) until a
// "quit" message or SIGTERM/SIGINT, then writes out every buffer and
// returns the exit status. Peers with another uid than ours are refused.
int runKeeper(int listenFd);

}  // namespace hv::logkeeper
