#include "daemon/resident.h"

#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace hv::daemon {
namespace {

int releaseMainObject(struct dl_phdr_info* info, size_t, void* data) {
  auto* released = static_cast<size_t*>(data);
  static const uintptr_t kPage = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    // Only segments nobody ever writes: MADV_DONTNEED on a private mapping
    // drops written (copy-on-write) pages, which would undo relocations.
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) != 0) continue;
    // Whole pages inside the segment: a page it shares with a writable
    // neighbour is left alone.
    const uintptr_t start = (info->dlpi_addr + ph.p_vaddr + kPage - 1) & ~(kPage - 1);
    const uintptr_t end = (info->dlpi_addr + ph.p_vaddr + ph.p_memsz) & ~(kPage - 1);
    if (end <= start) continue;
    if (::madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED) == 0) *released += end - start;
  }
  return 1;  // the first object is the executable itself: stop there
}

}  // namespace

size_t releaseStartupPages() {
  size_t released = 0;
  ::dl_iterate_phdr(releaseMainObject, &released);
  return released;
}

}  // namespace hv::daemon
