// Converts a process's start time (clock ticks since boot, /proc/PID/stat
// field 22) to Unix seconds, using the boot time from /proc/stat. For the
// uptime of processes re-adopted from an earlier daemon.
#pragma once

#include <cstdint>

namespace hv::supervisor {

// 0 when /proc cannot tell.
int64_t startTicksToWallSeconds(uint64_t startTicks);

}  // namespace hv::supervisor
