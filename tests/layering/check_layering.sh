#!/usr/bin/env bash
# The pure folders never include CAF, Asio or RocksDB (house style: pure
# cores, actor shells). causality may include nothing but the standard
# library and its own headers.
set -u
root=${1:-.}
status=0
bad=$(grep -rnE '#include *[<"](caf/|boost/asio|rocksdb/)' "$root/causality" "$root/protocol" 2>/dev/null)
if [ -n "$bad" ]; then
  echo "pure folders include CAF, Asio or RocksDB:"; echo "$bad"; status=1
fi
bad=$(grep -rnE '#include *<' "$root/causality" | grep -vE '#include *<[a-z_]+>' )
if [ -n "$bad" ]; then
  echo "causality includes a non-standard header:"; echo "$bad"; status=1
fi
[ $status -eq 0 ] && echo "layering: ok"
exit $status
