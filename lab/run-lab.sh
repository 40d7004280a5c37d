#!/usr/bin/env bash
# punch real-NAT lab runner (CI runs it as root from .ci/run).
#
# For each NAT kind (open, full-cone, restricted, port-restricted, symmetric) built by lab/netns.sh:
#   stun     Debian's `stun` client against `stund` in srv classifies the NAT as the lab built it
#            (host A behind a router without WAN firewall, host B behind one with it).
#   nat-type `punch nat-type --json` against `punch server --alt-ip` reports the same kind.
#   classic  Debian's `stun` client classifies the NAT the same against `punch server` as against stund.
#   chat     `punch chat` between every pair of kinds (15 unordered pairs), started together and with B
#            started later, and with/without WAN firewall: each side gets the other's lines once, in order.
#   ipv6     the dual-stack lab (netns.sh up6): IPv6 behind stateful firewalls goes direct, nat-type reports
#            both families, an IPv4-only host chats with a dual-stack one, IPv4 fallback (happy eyeballs).
# Checks of a punch feature that is not there yet (subcommand missing from `punch --help`, detection
# still a stub, server not answering RFC 3489) are reported PENDING: neither passed nor failed.
#
# Ends with a line "N passed, M failed"; exits 1 if anything failed.
#
# Env:
#   PUNCH_LAB_SKIP_OK=1   not root: print why and exit 0 instead of 1
#   PUNCH_LAB_ONLY=...    space-separated subset of: topology stun nat-type classic third-party chat ipv6 (default: all)
#   PUNCH_LAB_JOBS=N      chat scenarios run N at a time, each in its own lab (default 4)
#   PUNCH_LAB_BUDGET=S    no chat scenario starts after S seconds (default 600; the rest FAIL as not run)
#   PUNCH_LAB_FULL=1      also the whole chat matrix behind firewalls (longer)
#   PUNCH_LAB_CHAT_MATCH=RE only the chat scenarios whose "kindA kindB fwA fwB delayB" matches RE
#   PUNCH_LAB_REPEAT=N    run every selected chat scenario N times (flakiness hunting; default 1)
#   PUNCH_LAB_V6_REPEAT=N runs of the IPv6 direct chat (ha <-> hb) in the ipv6 section (default 3)
#   PUNCH_BIN=path        use this punch binary instead of building target/release/punch
#   PUNCH_LAB_KEEP_LOGS=1 keep the log directory (it is kept anyway when something failed)
#   CARGO_TARGET_DIR      honoured for the binary's path
set -uo pipefail
. "$(dirname "$0")/common.sh"

if [ "$(id -u)" != 0 ]; then
  echo "run-lab.sh: the real-NAT lab needs root (network namespaces, nftables); run it as root." >&2
  if [ "${PUNCH_LAB_SKIP_OK:-0}" = 1 ]; then
    echo "run-lab.sh: PUNCH_LAB_SKIP_OK=1: skipping the lab" >&2
    exit 0
  fi
  exit 1
fi

ONLY=${PUNCH_LAB_ONLY:-"topology stun nat-type classic third-party chat ipv6"}
JOBS=${PUNCH_LAB_JOBS:-4}
BUDGET=${PUNCH_LAB_BUDGET:-600} # seconds since the start (build included) after which no chat scenario starts
want() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
T0=$(date +%s)
# PUNCH_LAB_RUN: a short name so that several runs can share a machine (namespaces punchlab-NAME-...).
RUNP=punchlab-${PUNCH_LAB_RUN:-rl}-
export PUNCHLAB_PREFIX=$RUNP
LOGDIR=$(mktemp -d /tmp/punchlab-run.XXXXXX)
BUILD_PID=
SPID=

# ---------------------------------------------------------------------------------------------- results
PASSED=0 FAILED=0 PENDING=0
ROWFMT='%-7s %-50s %s\n'
row() { # STATUS CHECK DETAIL
  printf "$ROWFMT" "$1" "$2" "$3"
  case "$1" in PASS) PASSED=$((PASSED + 1)) ;; FAIL) FAILED=$((FAILED + 1)) ;; PENDING) PENDING=$((PENDING + 1)) ;; esac
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$BUILD_PID" ] && kill "$BUILD_PID" 2>/dev/null
  # Background scenario jobs (subshells of this script), then every lab namespace of this run and
  # whatever still runs inside.
  local j
  for j in $(jobs -p); do kill "$j" 2>/dev/null; done
  stop_pid $SPID
  PUNCHLAB_PREFIX=$RUNP "$NETNS" down >/dev/null 2>&1
  wait 2>/dev/null
  # A scenario that was between two steps may have built its lab again: once more.
  PUNCHLAB_PREFIX=$RUNP "$NETNS" down >/dev/null 2>&1
  if [ "$FAILED" = 0 ] && [ "${PUNCH_LAB_KEEP_LOGS:-0}" != 1 ]; then rm -rf "$LOGDIR"; fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "run-lab.sh: interrupted" >&2; exit 130' INT TERM

# ------------------------------------------------------------------------------------------ install
need_pkgs() {
  local missing=() c p
  for c in nft:nftables ip:iproute2 ss:iproute2 conntrack:conntrack stun:stun-client stund:stun-server \
    turnserver:coturn ping:iputils-ping python3:python3 timeout:coreutils; do
    command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "run-lab.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$LOGDIR/apt.log" 2>&1 &&
    apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >>"$LOGDIR/apt.log" 2>&1 ||
    { echo "run-lab.sh: apt-get failed:" >&2; tail -20 "$LOGDIR/apt.log" >&2; return 1; }
}
if ! need_pkgs; then
  row FAIL "install lab packages" "apt-get failed (see above)"
  echo "$PASSED passed, $FAILED failed"
  exit 1
fi

# -------------------------------------------------------------------------------------------- build
# Built in the background while the stund checks (which do not need punch) run.
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$REPO_DIR/$TARGET_DIR ;; esac
PUNCH=${PUNCH_BIN:-$TARGET_DIR/release/punch}
if want nat-type || want classic || want chat || want ipv6; then
  if [ -z "${PUNCH_BIN:-}" ]; then
    (cd "$REPO_DIR" && cargo build --release -p punch) >"$LOGDIR/build.log" 2>&1 &
    BUILD_PID=$!
  fi
fi

BUILD_FAILED=0
wait_build() { # 0 if a usable binary is there (a failed build is reported once)
  [ "$BUILD_FAILED" = 1 ] && return 1
  if [ -n "$BUILD_PID" ]; then
    if ! wait "$BUILD_PID"; then
      BUILD_PID= BUILD_FAILED=1
      row FAIL "build punch (cargo build --release -p punch)" "$(grep -m1 -E '^error' "$LOGDIR/build.log" || tail -1 "$LOGDIR/build.log")"
      return 1
    fi
    BUILD_PID=
  fi
  [ -x "$PUNCH" ] || { BUILD_FAILED=1; row FAIL "punch binary" "$PUNCH missing"; return 1; }
  return 0
}

has_subcommand() { "$PUNCH" --help 2>/dev/null | grep -qE "^  $1( |$)"; }

# Runs the Debian stun client in NS against SRV_IP1; sets STUN_OUT, STUN_RC, STUN_TEXT, STUN_CODE.
run_stun() {
  STUN_OUT=$(lx "$1" timeout 30 stun "$SRV_IP1" 2>&1)
  STUN_RC=$?
  STUN_TEXT=$(stun_text_class "$STUN_OUT")
  STUN_CODE=$(stun_code_class "$STUN_RC")
}
stun_primary() { grep -m1 '^Primary:' <<<"$STUN_OUT" | sed 's/^Primary: //; s/[[:space:]]*$//'; }

# Host A: router without WAN firewall; host B: router with it.
# A failed `up` is logged in full (up-KIND.log) and tried once more before it counts.
lab_up() {
  "$NETNS" up "$1" "$1" --firewall-a no --firewall-b yes >"$LOGDIR/up.log" 2>&1 && return 0
  cat "$LOGDIR/up.log" >>"$LOGDIR/up-$1-failed.log"
  echo "run-lab.sh: lab up $1 failed ($(grep -v 'tearing down' "$LOGDIR/up.log" | tail -1)); retrying" >&2
  sleep 1
  "$NETNS" up "$1" "$1" --firewall-a no --firewall-b yes >"$LOGDIR/up.log" 2>&1
}

printf "$ROWFMT" STATUS CHECK DETAIL
printf "$ROWFMT" ------ ----- ------

# ------------------------------------------------------------------------------ 0. the routed hop
# A packet from a host with TTL 2 passes its own NAT and dies at the router between the NATs (so punch's
# TTL-limited opener never reaches the partner's NAT); TTL 3 gets through.
if want topology; then
  if lab_up port-restricted; then
    t2=$(lx ha ping -n -c1 -W1 -t 2 "$SRV_IP1" 2>&1 | grep -m1 -E 'exceeded|bytes from' || true)
    t3=$(lx ha ping -n -c1 -W1 -t 3 "$SRV_IP1" 2>&1 | grep -m1 -E 'exceeded|bytes from' || true)
    if [[ "$t2" == *"Time to live exceeded"* && "$t3" == *"bytes from"* ]]; then st=PASS; else st=FAIL; fi
    row $st "routed hop between the NATs" "TTL 2: ${t2:-no answer}; TTL 3: ${t3:-no answer}"
    "$NETNS" down >/dev/null
  else
    row FAIL "lab up port-restricted (topology)" "$(grep -v "tearing down" "$LOGDIR/up.log" | tail -1)"
  fi
fi

# --------------------------------------------------------------------------------- 1. stun vs stund
declare -A STUND_CLASS
if want stun || want classic; then
  for kind in $KINDS; do
    if ! lab_up "$kind"; then
      row FAIL "lab up $kind" "$(grep -v "tearing down" "$LOGDIR/up.log" | tail -1)"
      continue
    fi
    if ! SPID=$(start_stund "$LOGDIR/stund-$kind.log"); then
      row FAIL "stund in srv ($kind)" "did not listen on $SRV_IP1:3478 and $SRV_IP2:3479"
      stop_pid $SPID; stop_ns srv; SPID=
      "$NETNS" down >/dev/null
      continue
    fi
    for h in ha hb; do
      fw=$([ $h = ha ] && echo no || echo yes)
      run_stun "$h"
      STUND_CLASS[$kind/$h]=$STUN_TEXT
      if [ "$STUN_TEXT" = "$kind" ] && [ "$STUN_CODE" = "$kind" ]; then st=PASS; else st=FAIL; fi
      want stun && row "$st" "stun vs stund: $kind fw=$fw ($h)" "$(stun_primary) [exit 0x$(printf %02x "$STUN_RC")]"
    done
    stop_pid $SPID; stop_ns srv; SPID=
    "$NETNS" down >/dev/null
  done
fi

# ------------------------------------------------------------ 2./3. punch nat-type; stun vs punch server
if want nat-type || want classic; then
  if wait_build; then
    natype_ready=1
    has_subcommand nat-type || natype_ready=0
    classic_ready=-1 # probed on the first lab: does punch server answer RFC 3489 requests at all?
    for kind in $KINDS; do
      lab_up "$kind" || { row FAIL "lab up $kind" "$(grep -v "tearing down" "$LOGDIR/up.log" | tail -1)"; continue; }
      if ! has_subcommand server || ! SPID=$(start_punch_server "$LOGDIR/punch-server-$kind.log"); then
        st=FAIL; has_subcommand server || st=PENDING
        want nat-type && row $st "punch nat-type: $kind" "punch server did not come up (4 sockets)"
        want classic && row $st "stun vs punch server: $kind" "punch server did not come up (4 sockets)"
        stop_pid $SPID; stop_ns srv; SPID=
        "$NETNS" down >/dev/null
        continue
      fi
      if [ "$classic_ready" = -1 ]; then
        # No NAT at all between srv and itself: any RFC 3489 server answers this.
        probe=$(lx srv timeout 20 stun "$SRV_IP1" 2>&1)
        if [ "$(stun_text_class "$probe")" = blocked ]; then classic_ready=0; else classic_ready=1; fi
      fi
      for h in ha hb; do
        fw=$([ $h = ha ] && echo no || echo yes)
        if want nat-type; then
          if [ "$natype_ready" = 0 ]; then
            row PENDING "punch nat-type: $kind fw=$fw ($h)" "punch --help lists no nat-type"
          else
            js=$(lx "$h" timeout 30 "$PUNCH" nat-type --server "$SRV_IP1:3478" --json 2>"$LOGDIR/nat-type-$kind-$h.err")
            rc=$?
            got=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("kind",""))' <<<"$js" 2>/dev/null)
            if grep -qi 'not implemented' <<<"$js"; then
              # The detector stub (core/src/detect.rs) says so in its notes.
              row PENDING "punch nat-type: $kind fw=$fw ($h)" "detection not implemented yet (kind \"${got:-?}\")"
            else
              if [ $rc = 0 ] && [ "$got" = "$(punch_label "$kind")" ]; then st=PASS; else st=FAIL; fi
              row $st "punch nat-type: $kind fw=$fw ($h)" "kind \"${got:-?}\" (want \"$(punch_label "$kind")\") exit $rc"
            fi
          fi
        fi
        if want classic; then
          if [ "$classic_ready" = 0 ]; then
            row PENDING "stun vs punch server: $kind fw=$fw ($h)" "punch server does not answer RFC 3489 (classic) requests yet"
          else
            run_stun "$h"
            ref=${STUND_CLASS[$kind/$h]:-?}
            if [ "$STUN_TEXT" = "$ref" ] && [ "$STUN_CODE" = "$ref" ]; then st=PASS; else st=FAIL; fi
            row $st "stun vs punch server: $kind fw=$fw ($h)" "$(stun_primary) [exit 0x$(printf %02x "$STUN_RC")]; stund: $ref"
          fi
        fi
      done
      stop_pid $SPID; stop_ns srv; SPID=
      "$NETNS" down >/dev/null
    done
  fi
fi

# ------------------------------------------- 3b. punch nat-type against third-party servers (stund, coturn)
# stund speaks RFC 3489 (CHANGED-ADDRESS), coturn RFC 5780 (OTHER-ADDRESS): punch's detector must read both.
if want third-party && wait_build; then
  for kind in $KINDS; do
    lab_up "$kind" || { row FAIL "lab up $kind" "$(grep -v "tearing down" "$LOGDIR/up.log" | tail -1)"; continue; }
    for srvname in stund coturn; do
      if ! SPID=$(start_$srvname "$LOGDIR/$srvname-3p-$kind.log"); then
        row FAIL "punch nat-type vs $srvname: $kind" "$srvname did not come up"
        stop_pid $SPID; stop_ns srv; SPID=
        continue
      fi
      for h in ha hb; do
        fw=$([ $h = ha ] && echo no || echo yes)
        js=$(lx "$h" timeout 30 "$PUNCH" nat-type --server "$SRV_IP1:3478" --json 2>"$LOGDIR/nat-type-$srvname-$kind-$h.err")
        rc=$?
        got=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("kind",""))' <<<"$js" 2>/dev/null)
        if [ $rc = 0 ] && [ "$got" = "$(punch_label "$kind")" ]; then st=PASS; else st=FAIL; fi
        row $st "punch nat-type vs $srvname: $kind fw=$fw ($h)" "kind \"${got:-?}\" (want \"$(punch_label "$kind")\") exit $rc"
      done
      stop_pid $SPID; stop_ns srv; SPID=
    done
    "$NETNS" down >/dev/null
  done
fi

# ------------------------------------------------------------------------------------------- 4. chat
# The path this lab pair should end on: relay, direct, or "either" where Linux conntrack makes it a race.
# punch itself answers, from core's decision table and its conntrack rule (`punch strategy --help`,
# docs/STRATEGY.md "Linux conntrack and start skew"). STAY: seconds both sides keep chatting (long runs live
# through the server's retry rounds).
expected_path() { # KIND_A KIND_B FW_A FW_B [STAY]
  "$PUNCH" strategy "$1" "$2" --fw-a "$3" --fw-b "$4" --stay "${5:-0}" 2>/dev/null || echo "unknown (punch strategy failed)"
}

# The lines of FILE on stdout, GAP seconds apart, with IDLE seconds of silence before the fourth.
feed() { # FILE GAP IDLE
  local l k=0
  while read -r l; do
    k=$((k + 1))
    [ "$3" -gt 0 ] && [ "$k" = 4 ] && sleep "$3"
    echo "$l"
    sleep "$2"
  done <"$1"
}

# One scenario in its own lab: chat_scenario ID KIND_A KIND_B FW_A FW_B DELAY_B [STAY [FLUSH [IDLE]]]
# STAY: seconds both sides keep stdin open after their lines (default 0: leave when done).
# FLUSH: if > 0, each side types six lines, one a second, and both routers lose every conntrack entry (and the
# restricted-cone set) FLUSH seconds in: a router reboot mid-chat. The pair must deliver every line once and
# end on the path it should have (recovered, not stuck on a dead mapping).
# IDLE: if > 0, the routers forget idle UDP flows after 20 s (conntrack timeouts), each side sends three
# lines, says nothing for IDLE seconds, then sends a fourth: punch's keepalives must keep the direct path.
chat_scenario() {
  local id=$1 ka=$2 kb=$3 fa=$4 fb=$5 delay=$6 stay=${7:-0} flush=${8:-0} idle=${9:-0}
  local d="$LOGDIR/chat-$id" pa pb ra rb t0 v
  mkdir -p "$d"
  # Birthday probing (a random-port symmetric NAT against a port-filtering one) finds its path within 15 s: both
  # sides stay that long, so that the verdict sees the path it ends on.
  local birthday=no
  if "$PUNCH" strategy "$ka" "$kb" --fw-a "$fa" --fw-b "$fb" --json 2>/dev/null | grep -q '"strategy":"birthday"'; then
    birthday=yes
    [ "$stay" -lt 16 ] && stay=16
  fi
  export PUNCHLAB_PREFIX="${RUNP}j$id-"
  local label="chat $ka <-> $kb fw=$fa/$fb $([ "$delay" = 0 ] && echo together || echo "B +${delay}s")"
  [ "$stay" -gt 0 ] && label="$label, stays ${stay}s"
  [ "$flush" -gt 0 ] && label="chat $ka <-> $kb fw=$fa/$fb, conntrack flushed at ${flush}s"
  [ "$idle" -gt 0 ] && label="chat $ka <-> $kb fw=$fa/$fb, idle ${idle}s, UDP timeouts 20s"
  if ! "$NETNS" up "$ka" "$kb" --firewall-a "$fa" --firewall-b "$fb" >"$d/up.log" 2>&1; then
    printf 'FAIL\t%s\t%s\n' "$label" "lab up: $(tail -1 "$d/up.log")" >"$d/row"
    return
  fi
  local spid
  if ! spid=$(start_punch_server "$d/server.log"); then
    printf 'FAIL\t%s\t%s\n' "$label" "punch server did not come up" >"$d/row"
    stop_pid $spid; "$NETNS" down >/dev/null 2>&1
    return
  fi
  local n=3 gap=0 r
  [ "$flush" -gt 0 ] && n=6 gap=1
  if [ "$idle" -gt 0 ]; then
    n=4
    for r in ra rb; do
      lx "$r" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=20 net.netfilter.nf_conntrack_udp_timeout_stream=20
    done
  fi
  for ((k = 1; k <= n; k++)); do echo "A$id-$k"; done >"$d/a.sent"
  for ((k = 1; k <= n; k++)); do echo "B$id-$k"; done >"$d/b.sent"
  t0=$(date +%s.%N)
  local limit=$((30 + stay + n * gap + idle))
  [ "$flush" -gt 0 ] && { sleep "$flush"; "$NETNS" flush; } >/dev/null 2>&1 &
  { feed "$d/a.sent" "$gap" "$idle"; sleep "$stay"; } | lx ha timeout $limit "$PUNCH" chat "$((id + 1))-lab-secret" --server "$SRV_IP1:3478" \
    --name alice --json --wait 20 >"$d/a.out" 2>"$d/a.err" &
  pa=$!
  [ "$delay" != 0 ] && sleep "$delay"
  { feed "$d/b.sent" "$gap" "$idle"; sleep "$stay"; } | lx hb timeout $limit "$PUNCH" chat "$((id + 1))-lab-secret" --server "$SRV_IP1:3478" \
    --name bob --json --wait 20 >"$d/b.out" 2>"$d/b.err" &
  pb=$!
  wait $pa; ra=$?
  wait $pb; rb=$?
  local secs
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  stop_pid $spid
  "$NETNS" down >/dev/null 2>&1
  [ -d "$d" ] || return 0 # the run was interrupted and cleaned up
  v=$(python3 "$LAB_DIR/chat_verdict.py" "$d/a.out" "$ra" "$d/a.sent" "$d/b.out" "$rb" "$d/b.sent" 2>/dev/null)
  IFS=$'\t' read -r st patha pathb detail <<<"$v"
  local want
  want=$(expected_path "$ka" "$kb" "$fa" "$fb" "$stay")
  # After a flush, two unfirewalled masquerade routers each see the other's ongoing packets as new inbound
  # flows and reserve their tuples (unreplied conntrack entries, 30 s): no direct path can form until those
  # expire, so the relay carries the chat and a later retry round goes direct (docs/STRATEGY.md).
  if [ "$flush" -gt 0 ] && [ "$ka $kb $fa $fb" = "port-restricted port-restricted no no" ]; then want=either; fi
  # A flush kills a birthday path's mappings on both routers: nothing gets through until the liveness check
  # gives up (under a second), the chat falls back to the relay and a new birthday round runs (seconds, by
  # chance); the lines arrive either way.
  if [ "$flush" -gt 0 ] && [ "$birthday" = yes ]; then want=either; fi
  if [ "$st" = PASS ] && [ "$want" != either ] && { [ "$patha" != "$want" ] || [ "$pathb" != "$want" ]; }; then
    st=FAIL
    detail="expected path $want; $detail"
  fi
  printf '%s\t%s\t%s\n' "$st" "$label" "path A=$patha B=$pathb (expected: $want) exit $ra/$rb ${secs}s; $detail" >"$d/row"
}

if want chat; then
  if wait_build; then
    # The two long runs first, so that they overlap the rest: one unfirewalled router, direct after the
    # retry rounds (docs/STRATEGY.md).
    scen=("port-restricted port-restricted yes no 0 95" "port-restricted port-restricted no yes 0 95")
    # Idle for 50 s behind routers that forget idle UDP flows after 20 s: still direct, the late line arrives.
    scen+=("port-restricted port-restricted no no 0 0 0 50" "symmetric full-cone yes yes 0 0 0 50")
    # Idle for 80 s: the learnt keepalive interval outgrows the routers' 20 s (the ping after 25 s of silence
    # finds the path dead), the chat moves to the relay, a round through the server makes it direct again, and
    # the interval settles on the 17 s the path survived: direct at the end, the late line arrives
    # (docs/STRATEGY.md). Firewalled routers: without `ct state new drop` the dead path's check pings leave
    # unreplied conntrack entries that reserve the tuple until they time out (20 s here), and the pair stays on
    # the relay until a retry round after that.
    scen+=("port-restricted port-restricted yes yes 0 0 0 80")
    set -- $KINDS
    kinds=("$@")
    for ((i = 0; i < ${#kinds[@]}; i++)); do
      for ((j = i; j < ${#kinds[@]}; j++)); do
        scen+=("${kinds[i]} ${kinds[j]} no no 0")
      done
    done
    for ((i = 0; i < ${#kinds[@]}; i++)); do
      for ((j = i; j < ${#kinds[@]}; j++)); do
        scen+=("${kinds[i]} ${kinds[j]} no no 1.5")
      done
    done
    scen+=("port-restricted port-restricted yes yes 0" "port-restricted port-restricted yes yes 1.5")
    scen+=("port-restricted port-restricted yes no 0" "port-restricted port-restricted no yes 1.5")
    scen+=("symmetric port-restricted yes yes 0" "restricted symmetric yes yes 1.5")
    # Birthday probing with 15 ms of start skew, both orders, with and without the port-restricted side's firewall.
    scen+=("symmetric port-restricted no no 0.015" "symmetric port-restricted no yes 0.015" "port-restricted symmetric yes no 0.015")
    # A router reboot mid-chat (conntrack flushed on both routers 3 s in), every pair kind.
    for ((i = 0; i < ${#kinds[@]}; i++)); do
      for ((j = i; j < ${#kinds[@]}; j++)); do
        scen+=("${kinds[i]} ${kinds[j]} no no 0 0 3")
      done
    done
    if [ "${PUNCH_LAB_FULL:-0}" = 1 ]; then
      for ((i = 0; i < ${#kinds[@]}; i++)); do
        for ((j = i; j < ${#kinds[@]}; j++)); do
          scen+=("${kinds[i]} ${kinds[j]} yes yes 0")
        done
      done
    fi
    if [ -n "${PUNCH_LAB_CHAT_MATCH:-}" ]; then
      sel=()
      for s in "${scen[@]}"; do grep -qE -- "$PUNCH_LAB_CHAT_MATCH" <<<"$s" && sel+=("$s"); done
      scen=("${sel[@]}")
    fi
    if [ "${PUNCH_LAB_REPEAT:-1}" -gt 1 ]; then
      sel=()
      for s in "${scen[@]}"; do for ((r = 0; r < PUNCH_LAB_REPEAT; r++)); do sel+=("$s"); done; done
      scen=("${sel[@]}")
    fi
    if ! has_subcommand chat; then
      for s in "${scen[@]}"; do
        set -- $s
        row PENDING "chat $1 <-> $2 fw=$3/$4" "punch --help lists no chat"
      done
    else
      # N scenarios at a time, each in its own namespaces (prefix punchlab-rl-jID-); rows in order.
      running=0
      for ((n = 0; n < ${#scen[@]}; n++)); do
        if [ $(($(date +%s) - T0)) -gt "$BUDGET" ]; then
          set -- ${scen[n]}
          mkdir -p "$LOGDIR/chat-$n"
          printf 'FAIL\tchat %s <-> %s fw=%s/%s\tnot run: the lab time budget (%s s) was spent\n' "$1" "$2" "$3" "$4" "$BUDGET" >"$LOGDIR/chat-$n/row"
          continue
        fi
        chat_scenario "$n" ${scen[n]} &
        running=$((running + 1))
        if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
      done
      wait
      for ((n = 0; n < ${#scen[@]}; n++)); do
        if [ -f "$LOGDIR/chat-$n/row" ]; then
          IFS=$'\t' read -r st label detail <"$LOGDIR/chat-$n/row"
          row "$st" "$label" "$detail"
        else
          row FAIL "chat scenario $n (${scen[n]})" "no result (logs: $LOGDIR/chat-$n)"
        fi
      done
    fi
  fi
fi

# ------------------------------------------------------------------------------------------ IPv6 lab
# The dual-stack lab (lab/netns.sh up6, its own namespaces punchlab-RUN-v6-*): ha and hb have global IPv6
# addresses behind stateful firewalls (new inbound dropped) and private IPv4 addresses behind symmetric
# NATs (masquerade random); hc is IPv4 only. The server listens on 203.0.113.1 (+ --alt-ip .2) and on
# 2001:db8:0:1::1; the hosts know it as server.lab (both addresses).
#   routed    IPv6 crosses routed hops (hop limit 2 dies at pub, 3 arrives); the firewalls drop new inbound
#   nat-type  `punch nat-type --server server.lab` reports IPv4 (symmetric) and IPv6 (no NAT)
#   direct    ha <-> hb chat goes direct over IPv6 (PUNCH_LAB_V6_REPEAT runs, default 3: the direct rate)
#   v4-only   hc (IPv4 only) <-> ha (dual stack): every line delivered (relay: both IPv4 NATs symmetric)
#   fallback  with IPv6 to the server dropped at ra, ha's chat registers over IPv4 (happy eyeballs)
V6_SRV=2001:db8:0:1::1 V6_HA=2001:db8:a::2

# One chat between two lab hosts: v6_chat ID NS_A NS_B; leaves d/{a,b}.{out,sent} and sets V6_VERDICT, V6_ADDR_A,
# V6_ADDR_B (the last direct address each side reported), V6_MS_A, V6_MS_B (pairing to direct, ms) and V6_SECS.
v6_chat() {
  local id=$1 na=$2 nb=$3 d="$LOGDIR/v6-chat-$1" pa ra rb t0
  mkdir -p "$d"
  for k in 1 2 3; do echo "A$id-$k"; done >"$d/a.sent"
  for k in 1 2 3; do echo "B$id-$k"; done >"$d/b.sent"
  t0=$(date +%s.%N)
  { cat "$d/a.sent"; sleep 2; } | lx "$na" timeout 40 "$PUNCH" chat "$((id + 60))-six-lab" --server server.lab \
    --name alice --json --wait 20 >"$d/a.out" 2>"$d/a.err" &
  pa=$!
  { cat "$d/b.sent"; sleep 2; } | lx "$nb" timeout 40 "$PUNCH" chat "$((id + 60))-six-lab" --server server.lab \
    --name bob --json --wait 20 >"$d/b.out" 2>"$d/b.err"
  rb=$?
  wait $pa; ra=$?
  V6_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  V6_VERDICT=$(python3 "$LAB_DIR/chat_verdict.py" "$d/a.out" "$ra" "$d/a.sent" "$d/b.out" "$rb" "$d/b.sent" 2>/dev/null)
  # The last path's address, and how long after pairing the first direct path came (ms, "-" if none).
  local last='import json,sys
addr, paired, direct = "none", None, None
for l in open(sys.argv[1], errors="replace"):
    try: v=json.loads(l)
    except ValueError: continue
    if not isinstance(v, dict): continue
    if v.get("event")=="paired" and paired is None: paired=v.get("ts")
    if v.get("event")=="path":
        addr=v.get("addr") or v.get("path")
        if v.get("path")=="direct" and direct is None: direct=v.get("ts")
print(addr, direct - paired if paired is not None and direct is not None else "-")'
  read -r V6_ADDR_A V6_MS_A <<<"$(python3 -c "$last" "$d/a.out")"
  read -r V6_ADDR_B V6_MS_B <<<"$(python3 -c "$last" "$d/b.out")"
}

if want ipv6; then
  if wait_build; then
    export PUNCHLAB_PREFIX="${RUNP}v6-"
    if ! "$NETNS" up6 >"$LOGDIR/up6.log" 2>&1; then
      row FAIL "IPv6 lab up (lab/netns.sh up6)" "$(grep -v "tearing down" "$LOGDIR/up6.log" | tail -1)"
    else
      t2=$(lx ha ping -n -c1 -W1 -t 2 "$V6_SRV" 2>&1 | grep -m1 -iE 'exceeded|bytes from' || true)
      t3=$(lx ha ping -n -c1 -W1 -t 3 "$V6_SRV" 2>&1 | grep -m1 -iE 'exceeded|bytes from' || true)
      inb=$(lx srv ping -n -c1 -W1 "$V6_HA" >/dev/null 2>&1 && echo answered || echo dropped)
      if [[ "$t2" == *[Ee]xceeded* && "$t3" == *"bytes from"* && "$inb" = dropped ]]; then st=PASS; else st=FAIL; fi
      row $st "IPv6: routed hops, stateful firewall" "hop limit 2: ${t2:-no answer}; 3: ${t3:-no answer}; srv -> ha: $inb"
      "$NETNS" flush >/dev/null 2>&1
      lx srv timeout "${SERVER_TIMEOUT:-600}" "$PUNCH" server --listen "$SRV_IP1:3478" --alt-ip "$SRV_IP2" \
        --listen "[$V6_SRV]:3478" >"$LOGDIR/v6-server.log" 2>&1 &
      SPID=$!
      if ! wait_udp srv "$SRV_IP1:3478" "$SRV_IP2:3479" "[$V6_SRV]:3478"; then
        row FAIL "IPv6: punch server on both families" "did not listen (see $LOGDIR/v6-server.log)"
      else
        out=$(lx ha timeout 30 "$PUNCH" nat-type --server server.lab --json 2>"$LOGDIR/v6-nat-type.err")
        nt=$(python3 -c 'import json,sys
v=json.loads(sys.argv[1]); a=v.get("ipv4") or {}; b=v.get("ipv6") or {}
print(a.get("kind"), a.get("public_addr"), b.get("behind_nat"), b.get("public_addr"))' "$out" 2>/dev/null || echo "unparsable: ${out:0:80}")
        read -r k4 p4 nat6 p6 <<<"$nt"
        if [ "$k4" = symmetric ] && [ "$nat6" = False ] && [[ "$p6" == "[$V6_HA]:"* ]]; then st=PASS; else st=FAIL; fi
        row $st "IPv6: nat-type reports both families" "IPv4: $k4 $p4; IPv6: behind NAT $nat6, $p6"

        direct=0 runs=${PUNCH_LAB_V6_REPEAT:-3} worst=0
        for ((r = 0; r < runs; r++)); do
          v6_chat "$r" ha hb
          IFS=$'\t' read -r st patha pathb detail <<<"$V6_VERDICT"
          if [ "$st" = PASS ] && [[ "$V6_ADDR_A" == "[2001:db8:b::2]:"* && "$V6_ADDR_B" == "[$V6_HA]:"* ]]; then
            direct=$((direct + 1))
          else
            st=FAIL
          fi
          row $st "IPv6: chat ha <-> hb direct over IPv6" "run $((r + 1))/$runs: A -> $V6_ADDR_A (+$V6_MS_A ms), B -> $V6_ADDR_B (+$V6_MS_B ms); ${V6_SECS}s; ${detail:-no verdict}"
        done
        echo "IPv6 direct rate: $direct/$runs runs direct over IPv6 (symmetric IPv4 NATs on both sides)"

        v6_chat 50 hc ha
        IFS=$'\t' read -r st patha pathb detail <<<"$V6_VERDICT"
        row "${st:-FAIL}" "IPv6: chat hc (IPv4 only) <-> ha (dual stack)" "path A=$patha B=$pathb (relay expected: symmetric x symmetric over IPv4); ${V6_SECS}s; ${detail:-no verdict}"

        # Happy eyeballs: ra drops IPv6 to the server; ha must register over IPv4 (250 ms later).
        printf 'table ip6 punchlab6b {\n  chain f {\n    type filter hook forward priority -10;\n    ip6 daddr %s drop\n  }\n}\n' \
          "$V6_SRV" | lx ra nft -f -
        t0=$(date +%s.%N)
        lx ha timeout 4 "$PUNCH" chat 77-eyeballs-lab --server server.lab >/dev/null 2>"$LOGDIR/v6-fallback.err" </dev/null
        lx ra nft delete table ip6 punchlab6b
        line=$(grep -m1 "joining nameplate" "$LOGDIR/v6-fallback.err" || true)
        reg=$(grep -m1 "registered" "$LOGDIR/v6-fallback.err" || true)
        if [[ "$line" == *"server.lab ($SRV_IP1:3478)"* && -n "$reg" ]]; then st=PASS; else st=FAIL; fi
        row $st "IPv6: server IPv6 dropped, falls back to IPv4" "${line#punch: }; ${reg#punch: }"
      fi
      stop_pid $SPID; SPID=
      "$NETNS" down >/dev/null 2>&1
    fi
    export PUNCHLAB_PREFIX=$RUNP
  fi
fi

echo
if [ "$FAILED" -gt 0 ] || [ "${PUNCH_LAB_KEEP_LOGS:-0}" = 1 ]; then echo "lab logs (kept): $LOGDIR"; fi
echo "lab time: $(($(date +%s) - T0)) s; pending (not counted): $PENDING"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
