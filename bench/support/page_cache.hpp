#pragma once

// Dropping a directory's files from the page cache, so that the next open
// reads them from the disk (a "cold" open, as after a reboot) without
// needing root to drop every cache on the machine.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <system_error>
#include <vector>

namespace kith::bench {

/// Flushes every file under dir and asks the kernel to drop its cached
/// pages (no root needed), so the next open reads from the disk. Returns
/// the fraction of the dir's pages still resident afterwards (mincore).
inline double drop_page_cache(const std::filesystem::path& dir) {
  std::uint64_t pages = 0, resident = 0;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec))
      continue;
    int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0)
      continue;
    (void)::fdatasync(fd);
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      const auto len = static_cast<std::size_t>(st.st_size);
      void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
      if (m != MAP_FAILED) {
        std::vector<unsigned char> vec((len + page - 1) / page);
        if (::mincore(m, len, vec.data()) == 0)
          for (auto b : vec)
            resident += b & 1;
        pages += vec.size();
        ::munmap(m, len);
      }
    }
    ::close(fd);
  }
  return pages == 0 ? 0.0 : static_cast<double>(resident) / static_cast<double>(pages);
}

} // namespace kith::bench
