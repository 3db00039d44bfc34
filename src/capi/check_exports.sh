#!/bin/sh
# Checks that liblapce_ai_client.so exports exactly the functions declared in
# include/lapce_ai/client.h, and does not define the global operator new (which would replace the
# allocator of the program that loads it).
# Usage: check_exports.sh path/to/liblapce_ai_client.so
set -eu
lib=$1
header=$(dirname "$0")/../../include/lapce_ai/client.h

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lai-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Declared: every "lai_name(" that follows LAI_CLIENT_API, possibly on the next line.
tr '\n' ' ' <"$header" | grep -o 'LAI_CLIENT_API [^(;#{}]*lai_[a-z_]*(' |
  sed 's/.*[ *]\(lai_[a-z_]*\)($/\1/' | sort -u >"$tmp/declared"
# Exported: defined dynamic symbols, without the version node (an absolute symbol).
nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
  sort -u >"$tmp/exported"

if [ ! -s "$tmp/declared" ]; then
  echo "no LAI_CLIENT_API declarations found in $header" >&2
  exit 1
fi
if ! diff -u "$tmp/declared" "$tmp/exported"; then
  echo "FAIL: exported symbols (+) differ from the functions declared in client.h (-)" >&2
  exit 1
fi
# Also as a local symbol (the version script hides it, but the library would still route its own
# allocations around the host program's operator new).
if { nm "$lib" 2>/dev/null; nm -D "$lib"; } | grep -Eq ' [TtWw] _Znwm$'; then
  echo "FAIL: $lib defines the global operator new (lai::base's alloc_counter.o was linked in)" >&2
  exit 1
fi
echo "OK: $(wc -l <"$tmp/exported") lai_ functions exported, nothing else"
