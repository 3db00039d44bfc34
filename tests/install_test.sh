#!/bin/sh
# Installs the build into a temporary prefix and uses it from there: `lapce-ai --version` and a
# tool run from PREFIX/bin, and a C program compiled and linked against the installed client
# library through `pkg-config lapce_ai_client`.
# Usage: install_test.sh BUILD_DIR C_COMPILER VERSION
set -eu
build=$1
cc=$2
version=$3
# A private directory (mktemp fills in the X's) holding the prefix and the install's log.
work=$(mktemp -d "${TMPDIR:-/tmp}/lai-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2
  exit 1
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[ -x "$prefix/bin/lapce-ai" ] || fail "no bin/lapce-ai in the prefix"
out=$("$prefix/bin/lapce-ai" --version)
case $out in
  *"$version"*) ;;
  *) fail "bin/lapce-ai --version printed '$out', not version $version" ;;
esac
mkdir "$prefix/work"
printf 'hello from the installed engine\n' >"$prefix/work/a.txt"
out=$(HOME="$prefix" XDG_CONFIG_HOME="$prefix/config" "$prefix/bin/lapce-ai" tool run read_file \
  --cwd "$prefix/work" --args '{"path":"a.txt"}')
case $out in
  *"hello from the installed engine"*) ;;
  *) fail "bin/lapce-ai tool run read_file printed: $out" ;;
esac

pc=$(find "$prefix" -name lapce_ai_client.pc)
[ -n "$pc" ] || fail "no lapce_ai_client.pc in the prefix"
[ -f "$prefix/include/lapce_ai/client.h" ] || fail "no include/lapce_ai/client.h in the prefix"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
cat >"$prefix/abi.c" <<'C'
#include <lapce_ai/client.h>
#include <stdio.h>
int main(void) {
  printf("abi %u, %s\n", (unsigned)lai_abi_version(), lai_status_string(LAI_OK));
  return lai_abi_version() == LAPCE_AI_CLIENT_ABI_VERSION ? 0 : 1;
}
C
# shellcheck disable=SC2046  # pkg-config's flags are meant to be split.
"$cc" -std=c99 -o "$prefix/abi" "$prefix/abi.c" $(pkg-config --cflags --libs lapce_ai_client) ||
  fail "a C program does not build against the installed library"
LD_LIBRARY_PATH=$(pkg-config --variable=libdir lapce_ai_client) "$prefix/abi" ||
  fail "the installed library reports another ABI version than its header"
echo "installed into $prefix and used from there"
