#!/usr/bin/env bash
# What third-party STUN tools say about every lab NAT kind (not a test: it prints what each tool reports).
# For each kind x firewall (no, yes) x server (stund, coturn, punch server): the Debian `stun` client's
# "Primary:" line and exit status, pystun3's "NAT Type:" line, and (punch server only) `punch nat-type`.
#
#   bash lab/survey.sh [kind...]        (as root; needs stun-client stun-server coturn and pip pystun3)
# Env: PUNCH (default target/release/punch; the punch rows are skipped if it is missing), SURVEY_SERVERS.
set -uo pipefail
. "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || { echo "survey.sh: run as root" >&2; exit 2; }
if ! command -v stun >/dev/null || ! command -v stund >/dev/null || ! command -v turnserver >/dev/null || ! command -v nft >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    nftables iproute2 stun-client stun-server coturn python3-pip >/dev/null || exit 1
fi
command -v pystun3 >/dev/null || python3 -m pip install -q pystun3 || python3 -m pip install -q --break-system-packages pystun3 || exit 1
PUNCH=${PUNCH:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/punch}
servers=${SURVEY_SERVERS:-"stund coturn punch"}
kinds=${*:-$KINDS}
TMP=$(mktemp -d /tmp/punchlab-survey.XXXXXX)
SPID=
cleanup() { stop_pid $SPID; "$NETNS" down >/dev/null 2>&1; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%-16s %-3s %-7s %-58s %-4s %-24s %s\n' kind fw server "stun (Primary: line)" rc pystun3 "punch nat-type"
for kind in $kinds; do
  for fw in no yes; do
    for server in $servers; do
      if [ "$server" = punch ] && [ ! -x "$PUNCH" ]; then continue; fi
      "$NETNS" up "$kind" "$kind" --firewall "$fw" >/dev/null || { echo "up failed"; exit 1; }
      SPID=$("start_${server/punch/punch_server}" "$TMP/$server.log") || echo "($server did not come up)"
      out=$(timeout 30 "$NETNS" exec ha stun "$SRV_IP1" 2>&1)
      rc=$?
      primary=$(grep -m1 '^Primary:' <<<"$out" | sed 's/^Primary: //; s/\t*$//')
      # pystun3 compares the mapped address with its bind address (-i; default 0.0.0.0, so it can never
      # say "Open Internet"): bind it to the host's address.
      hip=$("$NETNS" info | sed -n 's/^HOST_A=//p')
      py=$(timeout 60 "$NETNS" exec ha pystun3 -H "$SRV_IP1" -P 3478 -i "$hip" -p 40000 2>&1 | grep -m1 'NAT Type' | sed 's/NAT Type: //')
      nt=-
      if [ "$server" = punch ]; then
        nt=$(timeout 30 "$NETNS" exec ha "$PUNCH" nat-type --server "$SRV_IP1:3478" --json 2>/dev/null |
          python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("kind"), "|", "; ".join(d.get("notes") or []))' 2>/dev/null || echo "(no output)")
      fi
      printf '%-16s %-3s %-7s %-58s 0x%02x %-24s %s\n' "$kind" "$fw" "$server" "${primary:-(none)}" "$rc" "${py:-(none)}" "$nt"
      stop_pid $SPID
      SPID=
      "$NETNS" down >/dev/null
    done
  done
done
