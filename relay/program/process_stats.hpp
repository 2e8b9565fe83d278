#pragma once

// What the process knows about itself and the relay core cannot: memory,
// file descriptors and CPU, in Prometheus' standard process_* names.
// Linux only (/proc/self); elsewhere the values are 0.

#include <cstdint>
#include <string>

namespace kith::relay::program {

struct process_stats {
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
  double cpu_seconds = 0;
};

/// Reads /proc/self/statm, counts /proc/self/fd (O(open fds): about a
/// millisecond per 10k) and asks getrusage/getrlimit.
[[nodiscard]] process_stats read_process_stats();

/// The process_* families in Prometheus text format, with
/// process_start_time_seconds from `start_unix_s`.
[[nodiscard]] std::string process_metrics_text(const process_stats& s, double start_unix_s);

} // namespace kith::relay::program
