#include "process_stats.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

namespace kith::relay::program {

process_stats read_process_stats() {
  process_stats s;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) {
      s.virtual_bytes = size * page;
      s.resident_bytes = resident * page;
    }
    std::fclose(f);
  }
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.')
        ++s.open_fds;
    ::closedir(d);
    if (s.open_fds > 0)
      --s.open_fds; // the directory handle itself
  }
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0)
    s.max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : static_cast<std::uint64_t>(rl.rlim_cur);
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0)
    s.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  return s;
}

std::string process_metrics_text(const process_stats& s, double start_unix_s) {
  std::string out;
  char line[160];
  auto one = [&](const char* name, const char* type, const char* help, const char* value) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    out += name;
    out += ' ';
    out += value;
    out += '\n';
  };
  auto u = [&](std::uint64_t v) {
    std::snprintf(line, sizeof line, "%llu", static_cast<unsigned long long>(v));
    return line;
  };
  auto d = [&](double v) {
    std::snprintf(line, sizeof line, "%.3f", v);
    return line;
  };
  one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
      u(s.resident_bytes));
  one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
      u(s.virtual_bytes));
  one("process_open_fds", "gauge", "Number of open file descriptors.", u(s.open_fds));
  one("process_max_fds", "gauge", "Maximum number of open file descriptors.", u(s.max_fds));
  one("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
      d(s.cpu_seconds));
  one("process_start_time_seconds", "gauge",
      "Start time of the process since unix epoch in seconds.", d(start_unix_s));
  return out;
}

} // namespace kith::relay::program
