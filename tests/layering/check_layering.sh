#!/usr/bin/env bash
# The pure folders never include CAF, Asio or RocksDB (house style: pure
# cores, actor shells). causality may include nothing but the standard
# library and its own headers. The relay's cores (relay/include, relay/src,
# relay/schema) are pure too; only relay/program/ may use Asio.
set -u
root=${1:-.}
status=0
bad=$(grep -rnE '#include *[<"](caf/|boost/asio|rocksdb/)' "$root/causality" "$root/protocol" \
      "$root/relay/include" "$root/relay/src" "$root/relay/schema" 2>/dev/null)
if [ -n "$bad" ]; then
  echo "pure folders include CAF, Asio or RocksDB:"; echo "$bad"; status=1
fi
# The relay cores run in the deterministic simulator: time and randomness
# come in as arguments, never from the clock or the OS.
bad=$(grep -rnE 'randombytes|random_device|system_clock|steady_clock|identity::generate|#include *<(chrono|random|ctime)>' \
      "$root/relay/include" "$root/relay/src" 2>/dev/null)
if [ -n "$bad" ]; then
  echo "relay cores read the clock or the OS random source:"; echo "$bad"; status=1
fi
bad=$(grep -rnE '#include *<' "$root/causality" | grep -vE '#include *<[a-z_]+>' )
if [ -n "$bad" ]; then
  echo "causality includes a non-standard header:"; echo "$bad"; status=1
fi
[ $status -eq 0 ] && echo "layering: ok"
exit $status
