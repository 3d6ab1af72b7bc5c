// What the daemon keeps mapped after its start-up.
#pragma once

#include <cstddef>

namespace hv::daemon {

// Unmaps (MADV_DONTNEED) the executable's read-only segments — code,
// read-only data, unwind tables — once start-up is over, so that the daemon's
// resident set is the code it runs from then on, not the code it ran once
// (config, migrations, BPF and seccomp loading, CLI parsing). Why it pays:
// each fault on the binary maps up to 16 neighbouring page-cache pages
// (fault-around, 64 KiB), and MADV_RANDOM does not turn that off (measured,
// kernel 6.18). The pages stay in the page cache (shared with every
// `hostvisor` command): the next use of one is a minor fault, ~20 µs.
// Writable segments (data, and RELRO, which the loader wrote) are never
// touched. A software breakpoint or uprobe already in that code (a private
// copy of the page) is dropped with it: call this before anyone is told the
// process is ready. Returns the bytes of mappings dropped (0 if none).
size_t releaseStartupPages();

}  // namespace hv::daemon
