# Shared helpers for lab/run-lab.sh and lab/survey.sh (sourced, not run).
# Uses: PUNCHLAB_PREFIX (optional, see netns.sh), PUNCH (path of the punch binary, for punch_*).

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/.." && pwd)
NETNS="$LAB_DIR/netns.sh"
KINDS="open full-cone restricted port-restricted symmetric"
SRV_IP1=203.0.113.1
SRV_IP2=203.0.113.2

lx() { "$NETNS" exec "$@"; }

# wait_udp NS ADDR:PORT...: until every address has a bound UDP socket in NS (5 s at most).
wait_udp() {
  local ns=$1 out ok a
  shift
  for _ in $(seq 50); do
    out=$(lx "$ns" ss -Hunl 2>/dev/null || true)
    ok=1
    for a in "$@"; do grep -qF " $a " <<<"$out" || ok=0; done
    [ "$ok" = 1 ] && return 0
    sleep 0.1
  done
  return 1
}

# The STUN servers in srv. Each prints the pid of the background process (`ip netns exec` execs, so it is
# the `timeout` guarding the server, which passes TERM on) and returns non-zero if it did not come up.
# Output goes to LOG. SERVER_TIMEOUT (default 600 s) bounds a forgotten server.
start_stund() { # LOG
  "$NETNS" exec srv timeout "${SERVER_TIMEOUT:-600}" stund -h "$SRV_IP1" -a "$SRV_IP2" >"$1" 2>&1 &
  echo $!
  wait_udp srv "$SRV_IP1:3478" "$SRV_IP2:3479"
}

start_coturn() { # LOG
  # -S: plain STUN (no TURN), -n: no config file; two -L IPs give RFC 5780 (alt port 3479 by default).
  "$NETNS" exec srv timeout "${SERVER_TIMEOUT:-600}" turnserver -S -n --no-cli --no-tls --no-dtls -L "$SRV_IP1" -L "$SRV_IP2" \
    --log-file stdout --simple-log --pidfile "${1%.log}.pid" >"$1" 2>&1 &
  echo $!
  wait_udp srv "$SRV_IP1:3478" "$SRV_IP2:3479"
}

start_punch_server() { # LOG
  "$NETNS" exec srv timeout "${SERVER_TIMEOUT:-600}" "$PUNCH" server --listen "$SRV_IP1:3478" --alt-ip "$SRV_IP2" >"$1" 2>&1 &
  echo $!
  wait_udp srv "$SRV_IP1:3478" "$SRV_IP1:3479" "$SRV_IP2:3478" "$SRV_IP2:3479"
}

# stop_ns NAME: stops every process in the lab namespace NAME (srv, ha...): all were started by the lab.
stop_ns() {
  local n=${PUNCHLAB_PREFIX:-punchlab-}$1 pids
  [ -e "/run/netns/$n" ] || return 0
  pids=$(ip netns pids "$n" 2>/dev/null)
  [ -n "$pids" ] || return 0
  stop_pid $pids
}

# stop_pid PID...: TERM, then KILL after a second (our own background processes only).
stop_pid() {
  local p
  for p in "$@"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for _ in $(seq 10); do
    local alive=0
    for p in "$@"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "$@"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  for p in "$@"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
}

# Debian's `stun` (client 0.97): the "Primary:" line names the class. Its exit status is
# (class code) | 0x01 if the NAT preserves ports | 0x10 if it does NOT hairpin; class codes:
# 0x00 Open, 0x02 Independent Mapping + Independent Filter, 0x04 + Address Dependent Filter,
# 0x06 + Port Dependent Filter, 0x08 Dependent Mapping, 0x0A Firewall, 0x0C Blocked, 0x0E unknown.
stun_text_class() { # the client's output -> a lab kind name
  local line
  line=$(grep -m1 '^Primary:' <<<"$1" || true)
  case "$line" in
    *"Port Dependent Filter"*) echo port-restricted ;;
    *"Address Dependent Filter"*) echo restricted ;;
    *"Independent Filter"*) echo full-cone ;;
    *"Dependent Mapping"*) echo symmetric ;;
    *"Primary: Open"*) echo open ;;
    *Firewall*) echo firewall ;;
    *Blocked*) echo blocked ;;
    *) echo unknown ;;
  esac
}

stun_code_class() { # exit status -> a lab kind name
  case $(($1 & 0x0e)) in
    0) echo open ;; 2) echo full-cone ;; 4) echo restricted ;; 6) echo port-restricted ;;
    8) echo symmetric ;; 10) echo firewall ;; 12) echo blocked ;; *) echo unknown ;;
  esac
}

# The "kind" punch's JSON reports for a lab kind (docs/JSON.md).
punch_label() {
  case "$1" in
    open) echo "open" ;; full-cone) echo "full_cone" ;; restricted) echo "restricted_cone" ;;
    port-restricted) echo "port_restricted_cone" ;; symmetric) echo "symmetric" ;; *) echo "?" ;;
  esac
}
