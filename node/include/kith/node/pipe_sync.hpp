#pragma once

// `kith sync --stdio`: the node's peer protocol over stdin/stdout, so two
// nodes can sync through any pipe (ssh, socat, a serial line). The command
// splices the pipe to its own running daemon's peer port; the daemon does
// the handshake and the sync as for any peer.
//
// Both ends of a pipe run the same command. To agree on who starts the
// handshake, each first writes "KITHPIPE" and 8 random bytes; the end with
// the larger bytes becomes the initiator and tells its daemon so with
// actors::pipe_initiate_preamble.

#include "kith/node/data_dir.hpp"

#include <chrono>

namespace kith::node {

struct pipe_options {
  int in_fd = 0;  // the pipe's incoming side (stdin)
  int out_fd = 1; // the pipe's outgoing side (stdout)
  /// Stop after this long without a byte in either direction (0: never).
  std::chrono::seconds idle_exit{0};
};

/// Runs until the pipe or the daemon closes (or the idle limit); returns
/// the process exit code. Reports to stderr only: stdout is the pipe.
[[nodiscard]] int run_pipe_sync(const data_dir& home, const pipe_options& o);

} // namespace kith::node
