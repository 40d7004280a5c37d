#!/usr/bin/env bash
# punch real-NAT lab: network namespaces, veth pairs, a router and nftables NATs.
#
#   lab/netns.sh up <kindA> <kindB> [--firewall-a yes|no] [--firewall-b yes|no] [--firewall yes|no]
#                                          # firewall default: no (unsolicited inbound leaves conntrack entries)
#   lab/netns.sh up6                       # the dual-stack lab (lab/README.md, "IPv6 lab"): global IPv6 behind
#                                          # stateful firewalls + symmetric IPv4 NATs, and an IPv4-only host
#   lab/netns.sh down                      # idempotent: removes every punchlab-* namespace and its processes
#   lab/netns.sh exec <ns> <cmd...>        # ns: pub srv ra rb ha hb (hc in the IPv6 lab), or punchlab-NAME
#   lab/netns.sh info                      # KEY=VALUE lines describing the running lab
#   lab/netns.sh rules <ra|rb>             # the router's nft ruleset
#   lab/netns.sh flush                     # flush conntrack and the restricted-cone sets in both routers
#   lab/netns.sh kinds                     # the NAT kinds this script can build
#   lab/netns.sh render KIND yes|no WAN HOST   # print a router ruleset without applying it
#
# kinds: open full-cone restricted port-restricted symmetric
# See lab/README.md for the topology and the rules of every kind.
set -euo pipefail

# PUNCHLAB_PREFIX lets several labs run side by side (the runner uses punchlab-jN-); it must start with
# "punchlab-" and end with "-", so that a plain `down` (prefix punchlab-) removes every lab.
PREFIX=${PUNCHLAB_PREFIX:-punchlab-}
case "$PREFIX" in punchlab-*-) ;; punchlab-) ;; *) echo "netns.sh: PUNCHLAB_PREFIX must look like punchlab-NAME-" >&2; exit 2 ;; esac
STATE_ROOT=/run/punchlab
STATE_DIR=$STATE_ROOT/${PREFIX%-}
STATE=$STATE_DIR/state
KINDS="open full-cone restricted port-restricted symmetric"

# Addresses. "Public" segment: 203.0.113.0/24 (TEST-NET-3). Open hosts get 198.51.100.0/28 (A) and
# 198.51.100.16/28 (B) out of TEST-NET-2, routed by their router; NATed hosts get 10.0.1.0/24 and 10.0.2.0/24.
SRV_IP1=203.0.113.1
SRV_IP2=203.0.113.2
RA_WAN=203.0.113.10
RB_WAN=203.0.113.20
PUB_IP=203.0.113.254 # the router between the NATs (on each of its three links)
OPEN_A_NET=198.51.100.0/28
OPEN_B_NET=198.51.100.16/28

die() { echo "netns.sh: $*" >&2; exit 2; }
ns() { case "$1" in "$PREFIX"*) echo "$1" ;; *) echo "$PREFIX$1" ;; esac; }
nsx() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }

usage() { sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

valid_kind() { case " $KINDS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Removes namespaces (and stops what runs inside them: lab processes only, they live in our namespaces).
del_ns() {
  local n pids
  for n in "$@"; do
    [ -e "/run/netns/$n" ] || continue
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      kill $pids 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(ip netns pids "$n" 2>/dev/null || true)
        [ -z "$pids" ] && break
        sleep 0.1
      done
      [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    fi
    ip netns del "$n" 2>/dev/null || true
  done
}

# This lab only (used by `up`, so parallel labs with other prefixes survive).
down_own() {
  del_ns "${PREFIX}pub" "${PREFIX}srv" "${PREFIX}ra" "${PREFIX}rb" "${PREFIX}ha" "${PREFIX}hb" "${PREFIX}hc"
  rm -rf "$STATE_DIR" /etc/netns/"${PREFIX}"ha /etc/netns/"${PREFIX}"hb /etc/netns/"${PREFIX}"hc
}

# `down`: every namespace whose name starts with the prefix (plain punchlab-: every lab).
down() {
  local n
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX" || true); do
    del_ns "$n"
    rm -rf "/etc/netns/$n" # the IPv6 lab's hosts files (`up6`)
  done
  if [ "$PREFIX" = punchlab- ]; then rm -rf "$STATE_ROOT"; else rm -rf "$STATE_DIR"; fi
}

sysctls() { # ns, router(0|1)
  local n=$1
  nsx "$n" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
  nsx "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
  nsx "$n" sysctl -qw net.ipv4.ip_forward="$2" >/dev/null
  nsx "$n" ip link set lo up
}

# veth between two namespaces: link NS1 IF1 NS2 IF2
link() {
  ip link add "$2" netns "$(ns "$1")" type veth peer name "$4" netns "$(ns "$3")"
  for i in "$1 $2" "$3 $4"; do
    set -- $i
    nsx "$1" sysctl -qw "net.ipv4.conf.$2.rp_filter=0" >/dev/null 2>&1 || true
    nsx "$1" ip link set "$2" up
  done
}

# The nft ruleset of one router.
#   router_rules KIND FIREWALL(yes|no) WAN_IP HOST_IP
router_rules() {
  local kind=$1 fw=$2 wan=$3 host=$4
  echo "flush ruleset"
  echo "table ip punchlab {"
  case "$kind" in
    open)
      # No NAT and no filtering: the host has a routed public address.
      ;;
    full-cone)
      # EIM + EIF: 1:1 source NAT (port preserved) and every inbound UDP datagram to the host.
      cat <<EOF
  chain pre { type nat hook prerouting priority dstnat; policy accept;
    iifname "wan0" meta l4proto udp dnat to $host
  }
  chain post { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr $host snat to $wan
  }
EOF
      ;;
    restricted)
      # EIM + address-dependent filtering: the full-cone recipe, and new inbound is let in only from an
      # address the same inside port has sent to (key: inside port . remote address).
      cat <<EOF
  set sent { type inet_service . ipv4_addr; flags dynamic,timeout; timeout 5m; }
  chain pre { type nat hook prerouting priority dstnat; policy accept;
    iifname "wan0" meta l4proto udp dnat to $host
  }
  chain post { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr $host snat to $wan
  }
  chain filt { type filter hook forward priority filter; policy accept;
    iifname "lan0" meta l4proto udp update @sent { udp sport . ip daddr }
    iifname "wan0" meta l4proto udp ct state new udp dport . ip saddr != @sent drop
  }
EOF
      ;;
    port-restricted)
      # Linux default: masquerade keeps the port when it can (EIM), conntrack filters by address and port.
      cat <<EOF
  chain post { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade
  }
EOF
      ;;
    symmetric)
      # A random port for every new conntrack entry: address-and-port-dependent mapping.
      cat <<EOF
  chain post { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade random
  }
EOF
      ;;
  esac
  if [ "$fw" = yes ]; then
    # A typical home router: nothing unsolicited reaches the router itself, so unsolicited inbound leaves
    # no conntrack entry (the drop happens before the entry is confirmed).
    cat <<EOF
  chain input { type filter hook input priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" ct state new drop
  }
EOF
  fi
  echo "}"
}

# build_side A|B KIND FIREWALL
build_side() {
  local side=$1 kind=$2 fw=$3 r h wan lan_router lan_host plen open_net other_open other_wan
  if [ "$side" = A ]; then
    r=ra h=ha wan=$RA_WAN open_net=$OPEN_A_NET other_open=$OPEN_B_NET other_wan=$RB_WAN
    if [ "$kind" = open ]; then lan_router=198.51.100.1 lan_host=198.51.100.2 plen=28
    else lan_router=10.0.1.1 lan_host=10.0.1.2 plen=24; fi
  else
    r=rb h=hb wan=$RB_WAN open_net=$OPEN_B_NET other_open=$OPEN_A_NET other_wan=$RA_WAN
    if [ "$kind" = open ]; then lan_router=198.51.100.17 lan_host=198.51.100.18 plen=28
    else lan_router=10.0.2.1 lan_host=10.0.2.2 plen=24; fi
  fi
  nsx "$r" ip addr add "$wan/24" dev wan0
  nsx "$r" ip addr add "$lan_router/$plen" dev lan0
  nsx "$r" ip route add "$other_open" via "$other_wan"
  nsx "$h" ip addr add "$lan_host/$plen" dev eth0
  nsx "$h" ip route add default via "$lan_router"
  router_rules "$kind" "$fw" "$wan" "$lan_host" | nsx "$r" nft -f -
  if command -v conntrack >/dev/null 2>&1; then
    nsx "$r" conntrack -F >/dev/null 2>&1 || true
  fi
  {
    echo "KIND_$side=$kind"
    echo "FIREWALL_$side=$fw"
    echo "WAN_$side=$wan"
    echo "HOST_$side=$lan_host"
    echo "OPEN_NET_$side=$open_net"
  } >>"$STATE"
}

up() {
  [ $# -ge 2 ] || die "usage: netns.sh up <kindA> <kindB> [--firewall-a yes|no] [--firewall-b yes|no]"
  local ka=$1 kb=$2 fa=no fb=no
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --firewall-a) fa=${2:-}; shift 2 ;;
      --firewall-b) fb=${2:-}; shift 2 ;;
      --firewall) fa=${2:-}; fb=${2:-}; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  valid_kind "$ka" || die "unknown kind '$ka' (one of: $KINDS)"
  valid_kind "$kb" || die "unknown kind '$kb' (one of: $KINDS)"
  for f in "$fa" "$fb"; do case "$f" in yes | no) ;; *) die "--firewall-a/-b take yes or no" ;; esac; done
  command -v nft >/dev/null || die "nft not found (apt-get install nftables)"

  down_own
  # Any failure from here on (set -e or die) tears the half-built lab down.
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "netns.sh: up failed, tearing down" >&2; down_own; fi' EXIT
  mkdir -p "$STATE_DIR"
  : >"$STATE"
  local n
  for n in pub srv ra rb ha hb; do ip netns add "$PREFIX$n"; done
  sysctls srv 0; sysctls ha 0; sysctls hb 0
  sysctls pub 1; sysctls ra 1; sysctls rb 1

  # The public segment: punchlab-pub is a router (the internet's hop between the NATs, as on the real
  # internet: a packet from a host with TTL 2 opens its own NAT's mapping and dies here, before the other
  # NAT). Every public address keeps its /24, and pub answers ARP for the others (proxy ARP) and forwards.
  link srv eth0 pub srv
  link ra wan0 pub ra
  link rb wan0 pub rb
  for n in srv ra rb; do
    nsx pub ip addr add "$PUB_IP/32" dev "$n"
    nsx pub sysctl -qw "net.ipv4.conf.$n.proxy_arp=1" "net.ipv4.neigh.$n.proxy_delay=0" >/dev/null
  done
  nsx pub ip route add "$SRV_IP1/32" dev srv
  nsx pub ip route add "$SRV_IP2/32" dev srv
  nsx pub ip route add "$RA_WAN/32" dev ra
  nsx pub ip route add "$RB_WAN/32" dev rb
  nsx pub ip route add "$OPEN_A_NET" via "$RA_WAN" dev ra
  nsx pub ip route add "$OPEN_B_NET" via "$RB_WAN" dev rb
  link ha eth0 ra lan0
  link hb eth0 rb lan0

  nsx srv ip addr add "$SRV_IP1/24" dev eth0
  nsx srv ip addr add "$SRV_IP2/24" dev eth0
  nsx srv ip route add "$OPEN_A_NET" via "$RA_WAN"
  nsx srv ip route add "$OPEN_B_NET" via "$RB_WAN"
  {
    echo "SRV_IP1=$SRV_IP1"
    echo "SRV_IP2=$SRV_IP2"
  } >>"$STATE"
  build_side A "$ka" "$fa"
  build_side B "$kb" "$fb"

  # Smoke: both hosts reach the server (skipped when ping is not installed).
  local h ok
  command -v ping >/dev/null || echo "netns.sh: no ping, skipping the reachability check" >&2
  for h in $(command -v ping >/dev/null && echo ha hb); do
    ok=0
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      if nsx "$h" ping -c1 -W1 "$SRV_IP1" >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.2
    done
    [ "$ok" = 1 ] || die "$h cannot reach $SRV_IP1"
  done
  # The pings left conntrack entries (ICMP only); start the tests from clean tables.
  flush
  trap - EXIT
  echo "lab up: A=$ka (firewall $fa) B=$kb (firewall $fb)"
}

# ------------------------------------------------------------------------------------------- IPv6 lab
# Addresses of the dual-stack lab (`up6`). Every link is its own subnet, routed by pub (no proxy ARP).
V6_SRV=2001:db8:0:1::1        # the server's IPv6 address (next to SRV_IP1 and SRV_IP2)
V6_HA=2001:db8:a::2           # host A's global address (LAN A: 2001:db8:a::/64, behind ra's firewall)
V6_HB=2001:db8:b::2           # host B's global address (LAN B: 2001:db8:b::/64, behind rb's firewall)

# The ruleset of a dual-stack router: symmetric IPv4 NAT (masquerade random) and, for IPv6 (no NAT), a
# stateful firewall: only what belongs to a flow the inside started comes in.
router6_rules() {
  cat <<EOF
flush ruleset
table ip punchlab {
  chain post { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade random
  }
}
table ip6 punchlab6 {
  chain filt { type filter hook forward priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
}
EOF
}

v6_sysctls() { # ns forwarding(0|1)
  nsx "$1" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
  nsx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 >/dev/null
  nsx "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null 2>&1 || true
  nsx "$1" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 >/dev/null 2>&1 || true
  nsx "$1" sysctl -qw net.ipv4.ip_forward="$2" net.ipv6.conf.all.forwarding="$2" >/dev/null
  nsx "$1" ip link set lo up
}

# up6: the dual-stack lab.
#
#   srv -------- pub (router) ----- ra: symmetric IPv4 NAT + IPv6 firewall ----- ha (dual stack)
#                   |
#                   +-------------- rb: symmetric IPv4 NAT + IPv6 firewall --+-- hb (dual stack)
#                                                                            +-- hc (IPv4 only, lan1)
#
#   srv 203.0.113.1 .2/28, 2001:db8:0:1::1/64     ha 10.0.1.2/24, 2001:db8:a::2/64 (ra lan0: .1, ::1)
#   ra wan0 203.0.113.17/28, 2001:db8:0:a0::1/64  hb 10.0.2.2/24, 2001:db8:b::2/64 (rb lan0: .1, ::1)
#   rb wan0 203.0.113.33/28, 2001:db8:0:b0::1/64  hc 10.0.3.2/24 (rb lan1: 10.0.3.1), IPv6 disabled
#
# The hosts resolve server.lab to both server addresses (/etc/netns/NS/hosts, which `ip netns exec` mounts
# over /etc/hosts).
up6() {
  command -v nft >/dev/null || die "nft not found (apt-get install nftables)"
  down_own
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "netns.sh: up6 failed, tearing down" >&2; down_own; fi' EXIT
  mkdir -p "$STATE_DIR"
  : >"$STATE"
  local n
  for n in pub srv ra rb ha hb hc; do ip netns add "$PREFIX$n"; done
  for n in srv ha hb hc; do v6_sysctls $n 0; done
  for n in pub ra rb; do v6_sysctls $n 1; done
  nsx hc sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
  link srv eth0 pub srv
  link ra wan0 pub ra
  link rb wan0 pub rb
  link ha eth0 ra lan0
  link hb eth0 rb lan0
  link hc eth0 rb lan1
  nsx hc sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1 >/dev/null

  nsx pub ip addr add 203.0.113.14/28 dev srv
  nsx pub ip addr add 2001:db8:0:1::ff/64 dev srv nodad
  nsx pub ip addr add 203.0.113.30/28 dev ra
  nsx pub ip addr add 2001:db8:0:a0::ff/64 dev ra nodad
  nsx pub ip addr add 203.0.113.46/28 dev rb
  nsx pub ip addr add 2001:db8:0:b0::ff/64 dev rb nodad
  nsx pub ip -6 route add 2001:db8:a::/64 via 2001:db8:0:a0::1
  nsx pub ip -6 route add 2001:db8:b::/64 via 2001:db8:0:b0::1

  nsx srv ip addr add "$SRV_IP1/28" dev eth0
  nsx srv ip addr add "$SRV_IP2/28" dev eth0
  nsx srv ip addr add "$V6_SRV/64" dev eth0 nodad
  nsx srv ip route add default via 203.0.113.14
  nsx srv ip -6 route add default via 2001:db8:0:1::ff

  nsx ra ip addr add 203.0.113.17/28 dev wan0
  nsx ra ip addr add 2001:db8:0:a0::1/64 dev wan0 nodad
  nsx ra ip route add default via 203.0.113.30
  nsx ra ip -6 route add default via 2001:db8:0:a0::ff
  nsx ra ip addr add 10.0.1.1/24 dev lan0
  nsx ra ip addr add 2001:db8:a::1/64 dev lan0 nodad
  nsx rb ip addr add 203.0.113.33/28 dev wan0
  nsx rb ip addr add 2001:db8:0:b0::1/64 dev wan0 nodad
  nsx rb ip route add default via 203.0.113.46
  nsx rb ip -6 route add default via 2001:db8:0:b0::ff
  nsx rb ip addr add 10.0.2.1/24 dev lan0
  nsx rb ip addr add 2001:db8:b::1/64 dev lan0 nodad
  nsx rb ip addr add 10.0.3.1/24 dev lan1

  nsx ha ip addr add 10.0.1.2/24 dev eth0
  nsx ha ip addr add "$V6_HA/64" dev eth0 nodad
  nsx ha ip route add default via 10.0.1.1
  nsx ha ip -6 route add default via 2001:db8:a::1
  nsx hb ip addr add 10.0.2.2/24 dev eth0
  nsx hb ip addr add "$V6_HB/64" dev eth0 nodad
  nsx hb ip route add default via 10.0.2.1
  nsx hb ip -6 route add default via 2001:db8:b::1
  nsx hc ip addr add 10.0.3.2/24 dev eth0
  nsx hc ip route add default via 10.0.3.1

  for n in ra rb; do router6_rules | nsx $n nft -f -; done
  for n in ha hb hc; do
    mkdir -p "/etc/netns/$PREFIX$n"
    printf '127.0.0.1 localhost\n%s server.lab\n%s server.lab\n' "$V6_SRV" "$SRV_IP1" >"/etc/netns/$PREFIX$n/hosts"
  done
  {
    echo "SRV_IP1=$SRV_IP1"
    echo "SRV_IP2=$SRV_IP2"
    echo "V6_SRV=$V6_SRV"
    echo "V6_HA=$V6_HA"
    echo "V6_HB=$V6_HB"
  } >>"$STATE"
  # Smoke: the hosts reach the server over IPv4, and ha and hb over IPv6.
  local h to ok
  for h in ha:$SRV_IP1 hb:$SRV_IP1 hc:$SRV_IP1 ha:$V6_SRV hb:$V6_SRV; do
    n=${h%%:*} to=${h#*:}
    ok=0
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      if nsx "$n" ping -c1 -W1 "$to" >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.2
    done
    [ "$ok" = 1 ] || die "$n cannot reach the server at $to"
  done
  flush
  trap - EXIT
  echo "lab up: dual stack (symmetric IPv4 NATs, IPv6 stateful firewalls, hc IPv4 only)"
}

flush() {
  local r
  for r in ra rb; do
    [ -e "/run/netns/$PREFIX$r" ] || continue
    if command -v conntrack >/dev/null 2>&1; then nsx "$r" conntrack -F >/dev/null 2>&1 || true; fi
    nsx "$r" nft flush set ip punchlab sent >/dev/null 2>&1 || true
  done
}

cmd=${1:-}
[ -n "$cmd" ] || { usage; exit 2; }
shift
case "$cmd" in
  up) [ "$(id -u)" = 0 ] || die "must run as root"; up "$@" ;;
  up6) [ "$(id -u)" = 0 ] || die "must run as root"; up6 ;;
  down) [ "$(id -u)" = 0 ] || die "must run as root"; down ;;
  exec)
    [ $# -ge 2 ] || die "usage: netns.sh exec <ns> <cmd...>"
    n=$1; shift
    exec ip netns exec "$(ns "$n")" "$@"
    ;;
  info) [ -f "$STATE" ] || die "lab is not up"; cat "$STATE" ;;
  rules) [ $# -eq 1 ] || die "usage: netns.sh rules <ra|rb>"; nsx "$1" nft list ruleset ;;
  render) router_rules "$@" ;; # render KIND yes|no WAN HOST: print a ruleset without applying it
  flush) flush ;;
  kinds) echo "$KINDS" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
