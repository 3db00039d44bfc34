#!/bin/sh
# Runs c_api_test against a real server: starts `lapce-ai serve` on a socket in a fresh temporary
# directory, waits (at most 5 s) for the socket to appear, runs the C program (at most 30 s), stops
# the server and exits with the C program's status.
# Usage: run_c_api_test.sh path/to/lapce-ai path/to/c_api_test
set -u
lapce_ai=$1
test_program=$2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lai-capi.XXXXXX") || exit 1
socket=$tmp/run/s.sock
server_pid=

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null
  # Graceful shutdown drains for at most 1 s; give it 5 s, then kill.
  i=0
  while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "run_c_api_test: server did not stop within 5 s; killing it" >&2
    kill -KILL "$server_pid" 2>/dev/null
  fi
  wait "$server_pid" 2>/dev/null
  server_pid=
}
cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Keep the user's configuration and runtime directory out of the test.
mkdir -p "$tmp/run" "$tmp/home"
HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config XDG_RUNTIME_DIR=$tmp/run \
  timeout 60 "$lapce_ai" serve --socket "$socket" --metrics-addr '' >"$tmp/server.log" 2>&1 &
server_pid=$!

i=0
while [ ! -S "$socket" ]; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run_c_api_test: the server exited before listening:" >&2
    cat "$tmp/server.log" >&2
    server_pid=
    exit 1
  fi
  if [ $i -ge 100 ]; then
    echo "run_c_api_test: no socket at $socket after 5 s; server log:" >&2
    cat "$tmp/server.log" >&2
    exit 1
  fi
  sleep 0.05
  i=$((i + 1))
done

timeout 30 "$test_program" "$socket"
status=$?
if [ $status -eq 124 ]; then
  echo "run_c_api_test: c_api_test timed out after 30 s" >&2
fi
stop_server
if [ $status -ne 0 ]; then
  echo "run_c_api_test: server log:" >&2
  cat "$tmp/server.log" >&2
fi
exit $status
