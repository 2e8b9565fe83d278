// kith-crash-writer: the victim of the crash test (crash_test.cpp).
//
//   kith-crash-writer <dir> <seed> <start> [--sync]
//
// Opens (creating if missing) the RocksDB store in dir for the identity
// derived from seed, then commits steps start, start+1, ... of the crash
// workload (crash_workload.hpp) forever, one store::write per step, and
// after each write returns prints "ack <i>\n" on stdout. The test kills it
// with SIGKILL; an ack is a promise that the step survives that.
//
// By default the store runs with sync = false: SIGKILL ends only the
// process, and every write RocksDB made before store::write returned is
// already in the OS page cache, which the kernel keeps and later writes
// out. So an acknowledged step must survive a killed process even without
// fsync (only a power cut or kernel crash could lose it, which this test
// does not simulate). --sync sets sync = true (fsync per commit) to run
// the same check on the synchronous path.
//
// Any error: a message on stderr and exit status 2.

#include "crash_workload.hpp"

#include "kith/protocol/signed_write.hpp"
#include "kith/storage/store.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "kith-crash-writer: %s\n", what.c_str());
  std::exit(2);
}

// One write(2) per ack line: a line shorter than PIPE_BUF reaches the pipe
// whole, so the reader never sees half an ack.
void ack(std::uint64_t i) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "ack %llu\n", static_cast<unsigned long long>(i));
  const char* p = buf;
  while (n > 0) {
    ssize_t w = ::write(STDOUT_FILENO, p, static_cast<std::size_t>(n));
    if (w < 0) {
      if (errno == EINTR)
        continue;
      die(std::string("cannot write the ack: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<int>(w);
  }
}

} // namespace

int main(int argc, char** argv) {
  using namespace kith;
  if (argc < 4 || argc > 5 || (argc == 5 && std::string(argv[4]) != "--sync"))
    die("usage: kith-crash-writer <dir> <seed> <start> [--sync]");
  const std::string dir = argv[1];
  const std::uint64_t seed = std::strtoull(argv[2], nullptr, 10);
  const std::uint64_t start = std::strtoull(argv[3], nullptr, 10);
  if (start == 0)
    die("steps start at 1");

  const auto me = crash::identity_for(seed);
  const std::string owner = protocol::to_text(me.pub());
  storage::store_options o;
  o.sync = argc == 5;
  o.replica_nonce = crash::replica_nonce;
  auto opened = storage::store::open(dir, me, true, o);
  if (!opened)
    die("cannot open the store: " + opened.err().message);
  auto& s = *opened.value();
  const std::string feed = s.feed_topic_id();

  for (std::uint64_t i = start;; ++i) {
    const auto ops = crash::step_ops(owner, seed, i);
    std::vector<storage::write_op> w;
    w.reserve(ops.size());
    // The first three ops insert document i (no context); the others
    // replace or delete what a read of the earlier document returns.
    for (std::size_t n = 0; n < ops.size(); ++n) {
      storage::version_vector ctx;
      if (n >= 3) {
        auto seen = s.read(feed, ops[n].key);
        if (!seen)
          die("read failed at step " + std::to_string(i) + ": " + seen.err().message);
        ctx = seen->context;
      }
      w.push_back({ops[n].key, ops[n].value, std::move(ctx)});
    }
    auto r = s.write(feed, w, crash::time_of(i));
    if (!r)
      die("write failed at step " + std::to_string(i) + ": " + r.err().message);
    ack(i);
  }
}
