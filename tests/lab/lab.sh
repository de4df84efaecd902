#!/usr/bin/env bash
# lab.sh - isolated layer-2 segments of network namespaces with an FRR router, for testing
# the metallb-rs speaker (ARP/NDP, BGP, BFD). Several labs with different names can run at once.
#
#   lab.sh [--name NAME] up              create lab NAME and start FRR (replaces a stale lab NAME)
#   lab.sh [--name NAME] down            remove lab NAME, its processes and state (idempotent)
#   lab.sh [--name NAME] status          FRR: bgp summary, ipv4/ipv6 unicast RIB, bfd peers
#   lab.sh [--name NAME] check           exit 0 when lab NAME is up and whole (namespaces, FRR)
#   lab.sh [--name NAME] arp IP          arping IP from the client; prints the MAC that answered
#   lab.sh [--name NAME] ndp IP          ndisc6 IP from the client; prints the MAC that answered
#   lab.sh [--name NAME] exec HOST CMD.. run CMD inside HOST's namespace
#   lab.sh [--name NAME] vtysh ARGS...   the router's vtysh (e.g. -c 'show bgp summary')
#   lab.sh [--name NAME] link HOST up|down  plug / unplug HOST's cable at the switch
#   lab.sh gc                            remove every lab whose owner process is dead
#   lab.sh list                          print the labs: name, owner pid, alive|stale
#   lab.sh deps                          install the Debian packages the labs need (once, up front)
#
# NAME (or env LAB_NAME): 1-8 characters [a-z0-9], starting with a letter. HOST is one of
# router node1 node2 node3 client; its namespace is NAME-HOST, the switch is NAME-sw (bridge br0).
#   host    IPv4               IPv6            MAC
#   router  192.168.250.1/24   fd00:250::1/64  02:4e:4c:00:00:01   FRR, AS 64512
#   node1   192.168.250.11/24  fd00:250::11    02:4e:4c:00:00:11   eBGP peer, AS 64500
#   node2   192.168.250.12/24  fd00:250::12    02:4e:4c:00:00:12   eBGP peer, AS 64500
#   node3   192.168.250.13/24  fd00:250::13    02:4e:4c:00:00:13   iBGP peer, AS 64512
#   client  192.168.250.100/24 fd00:250::100   02:4e:4c:00:01:00
# Free for service IPs: 192.168.250.200-250 and fd00:250::200-250. Both address families are
# activated on every session (IPv6 NLRI over an IPv4 session works). State and FRR log:
# /run/metallb-rs/lab/NAME (frr.log); FRR pathspace NAME (/run/frr/NAME, /etc/frr/NAME).
#
# Settings (environment, read by `up`):
#   LAB_OWNER_PID        the process the lab belongs to; when it is dead the lab is stale
#                        (default: the caller of lab.sh)
#   LAB_BGP_PASSWORD     TCP-MD5 password on every router session (default: none)
#   LAB_KEEPALIVE / LAB_HOLD              router BGP timers, seconds (default 3 / 9)
#   LAB_BFD_RX / LAB_BFD_TX / LAB_BFD_MULT  BFD profile (default 300 ms / 300 ms / 3)
#   LAB_ORIGINATE=1      router also announces 192.168.250.0/24 and fd00:250::/64
# Needs root. Missing Debian packages (frr bird2 gobgpd iputils-arping ndisc6 tcpdump iproute2
# python3) are installed with apt-get.

set -euo pipefail

readonly ROOT=/run/metallb-rs/lab
readonly HOSTS=(router node1 node2 node3 client)
readonly NET4=192.168.250 NET6=fd00:250: MACP=02:4e:4c:00
readonly ROUTER_AS=64512 NODE_AS=64500
readonly FRR_DAEMONS=(zebra bfdd bgpd)

die() { echo "lab: error: $*" >&2; exit 1; }

host_id() {
  case $1 in router) echo 1 ;; node1) echo 11 ;; node2) echo 12 ;; node3) echo 13 ;; client) echo 100 ;;
    *) die "unknown host '$1' (one of: ${HOSTS[*]})" ;; esac
}
host_mac() { local id; id=$(printf '%04d' "$(host_id "$1")"); echo "$MACP:${id:0:2}:${id:2:2}"; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"; }

# Sets the globals of lab $1.
select_lab() {
  [[ $1 =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "lab name '$1' must be 1-8 characters [a-z0-9], starting with a letter"
  NAME=$1 SW=$1-sw STATE=$ROOT/$1 FRR_RUN=/run/frr/$1 FRR_ETC=/etc/frr/$1
}
ns_of() { echo "$NAME-$1"; }
namespaces() { local h; echo "$SW"; for h in "${HOSTS[@]}"; do ns_of "$h"; done; }

# --- packages -----------------------------------------------------------------------------
ensure_pkgs() {
  local miss=()
  command -v ip >/dev/null || miss+=(iproute2)
  { [[ -x /usr/lib/frr/bgpd && -x /usr/lib/frr/bfdd ]] && command -v vtysh >/dev/null; } || miss+=(frr)
  { command -v bird >/dev/null && command -v birdc >/dev/null; } || miss+=(bird2)
  command -v gobgpd >/dev/null || miss+=(gobgpd)
  command -v ndisc6 >/dev/null || miss+=(ndisc6)
  command -v tcpdump >/dev/null || miss+=(tcpdump)
  command -v python3 >/dev/null || miss+=(python3)
  command -v arping >/dev/null || miss+=(iputils-arping)
  # Not the labs': the speaker's allocator (jemalloc) builds with make.
  command -v make >/dev/null || miss+=(make)
  if ((${#miss[@]})); then
    command -v apt-get >/dev/null || die "missing ${miss[*]}, and no apt-get to install it"
    mkdir -p "$ROOT"
    # parallel labs wait for one installation instead of fighting over the dpkg lock
    (
      flock 9
      apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${miss[@]}" >/dev/null 2>&1 \
        || die "apt-get install ${miss[*]} failed"
    ) 9>"$ROOT/.apt.lock"
  fi
  arping -V 2>&1 | grep -q iputils || die "arping is not iputils-arping (apt-get install iputils-arping)"
}

# --- processes ----------------------------------------------------------------------------
ns_exists() { [[ -e /run/netns/$1 ]]; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
vty() { in_ns "$(ns_of router)" vtysh -N "$NAME" "$@"; }
# start time of a process (field 22 of /proc/PID/stat), empty when it does not exist
start_time() { local s f; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0; s=${s##*) }; read -ra f <<<"$s"; echo "${f[19]}"; }
pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
frr_pid() { local f=$FRR_RUN/$1.pid; [[ -s $f ]] && cat "$f" || true; }
# a pid read from a file counts only if it is still our program (guards against pid reuse)
pid_is() { local pid=$1 pat=$2; pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pat"; }
# the owner recorded in state dir $1 is still the same process
owner_alive() {
  local pid st; pid=$(cat "$1/owner" 2>/dev/null) || return 1; st=$(cat "$1/owner.start" 2>/dev/null) || return 1
  [[ -n $pid && $(start_time "$pid") == "$st" ]]
}
require_up() { [[ -e $STATE/up ]] || die "lab $NAME is not up (run: lab.sh --name $NAME up)"; }

# --- the segment --------------------------------------------------------------------------
make_ns() {
  local ns=$1
  ns_exists "$ns" && die "namespace '$ns' exists and does not belong to lab $NAME; remove it or use another name"
  ip netns add "$ns" || die "cannot create namespace $ns"
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null
  ip -n "$ns" link set lo up
}

plug() {           # host $1 gets eth0; its switch port is named after the host
  local h=$1 ns id; ns=$(ns_of "$1"); id=$(host_id "$h")
  ip -n "$SW" link add "h-$h" address "$(host_mac "$h")" type veth peer name "$h" || die "cannot create veth for $h"
  ip -n "$SW" link set "h-$h" netns "$ns"
  ip -n "$ns" link set "h-$h" name eth0
  in_ns "$ns" sysctl -qw net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.accept_ra=0 >/dev/null
  ip -n "$SW" link set "$h" master br0 up
  ip -n "$ns" addr add "$NET4.$id/24" dev eth0
  ip -n "$ns" addr add "$NET6:$id/64" dev eth0 nodad
  ip -n "$ns" link set eth0 up
}

# peer_group NAME REMOTE_AS SOURCE: one router peer group with all lab settings
peer_group() {
  local g=$1 pw=${LAB_BGP_PASSWORD:-}
  cat <<EOF
 neighbor $g peer-group
 neighbor $g remote-as $2
 neighbor $g bfd profile lab
 neighbor $g timers ${LAB_KEEPALIVE:-3} ${LAB_HOLD:-9}
 neighbor $g timers connect 5
 neighbor $g update-source $3
EOF
  if [[ -n $pw ]]; then echo " neighbor $g password $pw"; fi
}

frr_conf() {
  cat <<EOF
hostname $NAME-router
log file $STATE/frr.log informational
log timestamp precision 3
!
bfd
 profile lab
  detect-multiplier ${LAB_BFD_MULT:-3}
  receive-interval ${LAB_BFD_RX:-300}
  transmit-interval ${LAB_BFD_TX:-300}
 exit
exit
!
router bgp $ROUTER_AS
 bgp router-id $NET4.1
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp bestpath as-path multipath-relax
EOF
  peer_group EBGP4 "$NODE_AS" "$NET4.1"
  peer_group EBGP6 "$NODE_AS" "$NET6:1"
  peer_group IBGP4 "$ROUTER_AS" "$NET4.1"
  peer_group IBGP6 "$ROUTER_AS" "$NET6:1"
  local n id
  for n in node1 node2; do id=$(host_id "$n")
    printf ' neighbor %s peer-group EBGP4\n neighbor %s peer-group EBGP6\n' "$NET4.$id" "$NET6:$id"
  done
  id=$(host_id node3)
  printf ' neighbor %s peer-group IBGP4\n neighbor %s peer-group IBGP6\n' "$NET4.$id" "$NET6:$id"
  local af g
  for af in ipv4 ipv6; do
    echo " address-family $af unicast"
    for g in EBGP4 EBGP6 IBGP4 IBGP6; do
      echo "  neighbor $g activate"
      echo "  neighbor $g soft-reconfiguration inbound"
    done
    echo "  maximum-paths 8"
    echo "  maximum-paths ibgp 8"
    if [[ ${LAB_ORIGINATE:-0} == 1 ]]; then
      if [[ $af == ipv4 ]]; then echo "  network $NET4.0/24"; else echo "  network $NET6:/64"; fi
    fi
    echo " exit-address-family"
  done
  echo "exit"
}

start_frr() {
  frr_conf >"$STATE/frr.conf"
  install -d -o frr -g frr -m 0755 "$FRR_RUN" "$FRR_ETC"
  install -o frr -g frrvty -m 0640 /dev/null "$FRR_ETC/vtysh.conf"
  chown frr:frr "$STATE"; touch "$STATE/frr.log"; chown frr:frr "$STATE/frr.log"
  local d i
  for d in "${FRR_DAEMONS[@]}"; do
    # no TCP vty (-P 0); datacenter profile; the config is pushed below with vtysh
    in_ns "$(ns_of router)" "/usr/lib/frr/$d" -d -N "$NAME" -P 0 -F datacenter -f /dev/null \
      --log "file:$STATE/frr.log" >>"$STATE/frr.stderr" 2>&1 || die "FRR $d did not start (see $STATE/frr.stderr)"
    for ((i = 0; i < 100; i++)); do [[ -S $FRR_RUN/$d.vty ]] && break; sleep 0.05; done
    [[ -S $FRR_RUN/$d.vty ]] || die "FRR $d started but its vty socket never appeared"
  done
  vty -f "$STATE/frr.conf" >"$STATE/vtysh.out" 2>&1 || { cat "$STATE/vtysh.out" >&2; die "FRR rejected the config"; }
  for ((i = 0; i < 100; i++)); do
    in_ns "$(ns_of router)" ss -Htln 'sport = :179' | grep -q . && return 0; sleep 0.05
  done
  die "bgpd is not listening on port 179 (see $STATE/frr.log)"
}

stop_frr() {
  local d pid i
  for d in bgpd bfdd zebra; do
    pid=$(frr_pid "$d")
    if pid_is "$pid" "-N $NAME "; then kill "$pid" 2>/dev/null || true; fi
  done
  for d in bgpd bfdd zebra; do
    pid=$(frr_pid "$d")
    for ((i = 0; i < 50; i++)); do pid_is "$pid" "-N $NAME " || break; sleep 0.05; done
    if pid_is "$pid" "-N $NAME "; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$FRR_RUN" "$FRR_ETC"
}

# kills what still runs in the lab's namespaces (speakers, bird, gobgpd of tests), except
# the owner and this script's callers, which may have a thread inside but live elsewhere
kill_ns_processes() {
  local ns pid pids=() sig i
  local keep=" $$ $PPID $(cat "$STATE/owner" 2>/dev/null || true) "
  for ns in $(namespaces); do
    ns_exists "$ns" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      [[ $keep == *" $pid "* ]] || pids+=("$pid")
    done
  done
  ((${#pids[@]})) || return 0
  for sig in TERM KILL; do
    kill -s "$sig" "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      local alive=0; for pid in "${pids[@]}"; do pid_alive "$pid" && alive=1; done
      ((alive)) || return 0; sleep 0.05
    done
  done
}

lab_down() {
  [[ -d $STATE ]] || { ns_exists "$SW" && die "namespace $SW exists but lab $NAME has no state in $STATE"; return 0; }
  stop_frr
  kill_ns_processes
  local ns
  for ns in $(namespaces); do
    if ns_exists "$ns"; then ip netns del "$ns" 2>/dev/null || true; fi
    ! ns_exists "$ns" || die "cannot delete namespace $ns"
  done
  rm -rf "$STATE"
}

# --- commands -----------------------------------------------------------------------------
cmd_up() {
  need_root; ensure_pkgs
  if [[ -d $STATE ]]; then
    owner_alive "$STATE" && die "lab $NAME is in use by the live process $(cat "$STATE/owner")"
    lab_down
  fi
  local owner=${LAB_OWNER_PID:-$PPID} st ns
  for ns in $(namespaces); do   # refuse before touching anything
    ! ns_exists "$ns" || die "namespace '$ns' exists and does not belong to lab $NAME; remove it or use another name"
  done
  st=$(start_time "$owner"); [[ -n $st ]] || die "owner process $owner does not exist"
  mkdir -p "$STATE"
  echo "$owner" >"$STATE/owner"; echo "$st" >"$STATE/owner.start"
  trap 'trap - EXIT; lab_down' EXIT   # a failed `up` leaves nothing behind
  make_ns "$SW"
  ip -n "$SW" link add br0 type bridge || die "cannot create bridge"
  # no STP delay, no MLD snooping (so NS to solicited-node groups reach every port)
  ip -n "$SW" link set br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
  ip -n "$SW" link set br0 up
  local h
  for h in "${HOSTS[@]}"; do make_ns "$(ns_of "$h")"; plug "$h"; done
  in_ns "$(ns_of router)" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null
  start_frr
  : >"$STATE/up"
  trap - EXIT
}

cmd_down() { need_root; lab_down; }

cmd_status() {
  need_root; require_up
  vty -c 'show bgp summary' -c 'show bgp ipv4 unicast' -c 'show bgp ipv6 unicast' -c 'show bfd peers brief'
}

# Quiet, for scripts that reuse a lab: the up marker, every namespace, FRR's daemons
# (still our processes) and bgpd answering on its vty.
cmd_check() {
  need_root
  [[ -e $STATE/up ]] || return 1
  local ns d
  for ns in $(namespaces); do ns_exists "$ns" || return 1; done
  for d in "${FRR_DAEMONS[@]}"; do pid_is "$(frr_pid "$d")" "-N $NAME " || return 1; done
  # a hung bgpd counts as broken, not as a reason to hang
  timeout 10 ip netns exec "$(ns_of router)" vtysh -N "$NAME" -c 'show bgp summary' >/dev/null 2>&1
}

cmd_arp() {
  [[ $# -eq 1 ]] || die "usage: lab.sh arp IPV4"
  need_root; require_up
  local out mac
  out=$(in_ns "$(ns_of client)" arping -c 1 -w 2 -I eth0 "$1" 2>&1) || true
  mac=$(sed -n 's/.*reply from [^ ]* \[\([0-9A-Fa-f:]*\)\].*/\1/p' <<<"$out" | head -1)
  [[ -n $mac ]] || die "no ARP reply for $1"
  echo "${mac,,}"
}

cmd_ndp() {
  [[ $# -eq 1 ]] || die "usage: lab.sh ndp IPV6"
  need_root; require_up
  local mac
  mac=$(in_ns "$(ns_of client)" ndisc6 -q -1 -r 2 -w 1000 "$1" eth0 2>/dev/null | head -1) || true
  [[ -n $mac ]] || die "no neighbour advertisement for $1"
  echo "${mac,,}"
}

cmd_exec() {
  [[ $# -ge 2 ]] || die "usage: lab.sh exec HOST CMD..."
  need_root; require_up; host_id "$1" >/dev/null
  local ns; ns=$(ns_of "$1"); shift
  exec ip netns exec "$ns" "$@"
}

cmd_vtysh() { need_root; require_up; exec ip netns exec "$(ns_of router)" vtysh -N "$NAME" "$@"; }

cmd_link() {
  [[ $# -eq 2 && ($2 == up || $2 == down) ]] || die "usage: lab.sh link HOST up|down"
  need_root; require_up; host_id "$1" >/dev/null
  ip -n "$SW" link set "$1" "$2"
}

cmd_gc() {
  need_root
  local d
  for d in "$ROOT"/*/; do
    [[ -d $d ]] || continue; d=${d%/}
    owner_alive "$d" && continue
    select_lab "${d##*/}"; lab_down
  done
}

cmd_list() {
  local d
  for d in "$ROOT"/*/; do
    [[ -d $d ]] || continue; d=${d%/}
    printf '%s\t%s\t%s\n' "${d##*/}" "$(cat "$d/owner" 2>/dev/null || echo '?')" \
      "$(owner_alive "$d" && echo alive || echo stale)"
  done
}

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }

main() {
  local name=${LAB_NAME:-}
  if [[ ${1:-} == --name ]]; then [[ $# -ge 2 ]] || die "--name needs a value"; name=$2; shift 2; fi
  local cmd=${1:-}; shift || true
  case $cmd in
    gc) cmd_gc "$@"; return ;; list) cmd_list "$@"; return ;;
    deps) need_root; ensure_pkgs; return ;;
    -h|--help|help) usage; return ;;
    "") usage >&2; exit 2 ;;
  esac
  [[ -n $name ]] || die "no lab name: set LAB_NAME or pass --name NAME"
  select_lab "$name"
  case $cmd in
    up) cmd_up "$@" ;; down) cmd_down "$@" ;; status) cmd_status "$@" ;; check) cmd_check "$@" ;;
    arp) cmd_arp "$@" ;; ndp) cmd_ndp "$@" ;; exec) cmd_exec "$@" ;; vtysh) cmd_vtysh "$@" ;;
    link) cmd_link "$@" ;;
    *) die "unknown command '$cmd' (try: lab.sh help)" ;;
  esac
}
main "$@"
