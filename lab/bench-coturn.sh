#!/usr/bin/env bash
# Relay throughput: punch server vs coturn (TURN ChannelData, one hop) vs a plain recvmmsg/sendmmsg forwarder,
# on loopback, through the same generator (`punch bench relay --coturn`; docs/BENCHMARKS.md, "Relay over
# sockets"). Installs Debian's coturn if missing, starts turnserver on 127.0.0.1 (no auth, loopback peers
# allowed, one relay thread, pinned to CPU 0 like the punch server when there are two CPUs or more), runs the
# bench, and stops turnserver.
#
#   bash lab/bench-coturn.sh [punch bench relay flags, e.g. --duration 10 --rate 100000 --json]
# Env: PUNCH (default target/release/punch, built if missing), COTURN_PORT (default 34780).
set -euo pipefail
REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v turnserver >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "bench-coturn.sh: coturn is missing; run as root to install it" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null
fi
PUNCH=${PUNCH:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/punch}
if [ ! -x "$PUNCH" ]; then
  (cd "$REPO_DIR" && cargo build --release -p punch)
fi
PORT=${COTURN_PORT:-34780}
LOG=$(mktemp /tmp/bench-coturn.XXXXXX.log)
PIN=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then PIN=(taskset -c 0); fi
"${PIN[@]}" turnserver -n --no-auth --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$PORT" \
  --allow-loopback-peers --no-cli --no-tls --no-dtls --relay-threads 1 --min-port 49152 --max-port 49400 \
  --no-multicast-peers --simple-log --log-file "$LOG" >/dev/null 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . && break
  kill -0 "$PID" 2>/dev/null || { echo "bench-coturn.sh: turnserver exited; its log:" >&2; cat "$LOG"* >&2; exit 1; }
  sleep 0.1
done
"$PUNCH" bench relay --coturn "127.0.0.1:$PORT" --coturn-pid "$PID" "$@"
