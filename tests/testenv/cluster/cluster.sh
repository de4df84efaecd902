#!/usr/bin/env bash
# cluster.sh - a real multi-node Kubernetes cluster on this machine, on a network lab's segment.
# Several clusters with different names run at once.
#
#   cluster.sh [--name NAME] up [--nodes N]   lab NAME (tests/lab/lab.sh) + control plane + N nodes
#   cluster.sh [--name NAME] down             remove cluster NAME and its lab (idempotent)
#   cluster.sh [--name NAME] check            exit 0 when cluster NAME is up and every process runs
#   cluster.sh [--name NAME] kubeconfig       print the admin kubeconfig path (for the host)
#   cluster.sh [--name NAME] import FILE...   import OCI image archives into every node
#   cluster.sh [--name NAME] kubectl ARGS...  kubectl with the admin kubeconfig
#   cluster.sh gc                             remove every cluster whose owner process is dead
#   cluster.sh list                           print the clusters: name, owner pid, alive|stale
#
# Layout (NAME: 1-8 characters [a-z0-9]; N: 1-3, the lab's nodes):
#   NAME-cp      network namespace on the lab bridge, 192.168.250.2: etcd, kube-apiserver
#                (:6443), kube-controller-manager, kube-scheduler
#   NAME-nodeI   the lab's node namespaces (192.168.250.1I) become Kubernetes nodes `nodeI`, each
#                with its own UTS namespace (hostname nodeI), containerd, kubelet, kube-proxy
#                (nftables); dual-stack: pod subnets 10.244.I.0/24 and fd00:10:244:I::/64 (CNI
#                bridge), Services 10.96.0.0/16 and fd00:10:96::/112
#   the lab's router (FRR) and client share the segment; the host reaches the API server at
#   https://127.0.0.1:PORT through a socat relay (the kubeconfig says which port).
# State, logs and the kubeconfig: /run/metallb-rs/cluster/NAME. cgroups: /metallb-rs/NAME/nodeI in
# every cgroup v1 hierarchy. The kubelet's global sysctls are saved by the first cluster up and
# restored when the last one goes down.
#
# Settings (environment, read by `up`):
#   CLUSTER_OWNER_PID  the process the cluster belongs to; when it is dead the cluster is stale
#                      (default: the caller of cluster.sh)
#   CLUSTER_PAUSE_IMAGE  the sandbox image archive, `metallb-image pause --binary PAUSE --out FILE`
#                      with PAUSE from build.sh --cluster (`metallb-testenv cluster up` does this)
#   CLUSTER_KEEP_FAILED=1  a failed `up` keeps what it started, logs included (remove with `down`)
#   METALLB_RS_CACHE   the binaries' cache (tests/testenv/k8s/build.sh --cluster builds them)
# Needs root and cgroup v1 (the measured facts: /work/shared/reference/local-cluster.md).

set -euo pipefail

readonly HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly LAB=$HERE/../../lab/lab.sh
readonly BUILD=$HERE/../k8s/build.sh
readonly ROOT=/run/metallb-rs/cluster
# Dual-stack: the lab's segment has both families, and so do pods and Services.
readonly NET4=192.168.250 CP_IP=192.168.250.2 NET6=fd00:250: CP_IP6=fd00:250::2
readonly POD_NET=10.244 SVC_CIDR=10.96.0.0/16 SVC_API=10.96.0.1
readonly POD_NET6=fd00:10:244 SVC_CIDR6=fd00:10:96::/112
readonly PAUSE_IMAGE=localhost/metallb-rs/pause:1
# The global sysctls the kubelet rewrites (protectKernelDefaults: false).
readonly SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

die() { echo "cluster: error: $*" >&2; exit 1; }
log() { echo "cluster: $*" >&2; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, cgroups)"; }

select_cluster() {
  [[ $1 =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "cluster name '$1' must be 1-8 characters [a-z0-9], starting with a letter"
  NAME=$1 STATE=$ROOT/$1 CP_NS=$1-cp CGROUP=metallb-rs/$1
}
node_ns() { echo "$NAME-node$1"; }
node_dir() { echo "$STATE/node$1"; }
nodes() { cat "$STATE/nodes" 2>/dev/null || echo 0; }
# nsenter, not `ip netns exec`: the latter remounts /sys in a private mount namespace, which
# hides the cgroup mounts and the kubelet's volume mounts from containerd (the nodes use it too)
in_cp() { nsenter --net="/run/netns/$CP_NS" "$@"; }
start_time() { local s f; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0; s=${s##*) }; read -ra f <<<"$s"; echo "${f[19]}"; }
owner_alive() {
  local pid st; pid=$(cat "$1/owner" 2>/dev/null) || return 1; st=$(cat "$1/owner.start" 2>/dev/null) || return 1
  [[ -n $pid && $(start_time "$pid") == "$st" ]]
}
pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
v1_hierarchies() { awk '$3 == "cgroup" { print $2 }' /proc/mounts; }
# runc also mirrors the pods' cgroups into the hybrid layout's cgroup2 mount
all_hierarchies() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts; }

# --- processes ----------------------------------------------------------------------------
# spawn LABEL CMD...: runs CMD in its own session, logs to STATE/LABEL.log, pid in STATE/LABEL.pid.
# nsenter execs without forking, so the recorded pid is the component's.
spawn() {
  local label=$1; shift
  setsid "$@" </dev/null >>"$STATE/$label.log" 2>&1 &
  echo $! >"$STATE/$label.pid"
  disown # the teardown kills it; bash need not report that
}
# every pid the cluster started (from its pid files) that is still its component: every
# component's command line names the state directory, which guards against reused pids
spawned_pids() {
  local f pid
  for f in "$STATE"/*.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$STATE/" && echo "$pid"
  done
  return 0
}
# kill_all GRACE PID...: TERM, then KILL whatever is left after GRACE seconds
kill_all() {
  local grace=$1; shift
  (($#)) || return 0
  local sig i pid alive
  for sig in TERM KILL; do
    kill -s "$sig" "$@" 2>/dev/null || true
    for ((i = 0; i < grace * 20; i++)); do
      alive=0; for pid in "$@"; do pid_alive "$pid" && alive=1; done
      ((alive)) || return 0; sleep 0.05
    done
  done
}
# every process in the cluster's cgroups (the pods' containers)
cgroup_pids() {
  local d; d=/sys/fs/cgroup/pids/$CGROUP
  [[ -d $d ]] || return 0
  find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}
# every process in the node namespaces (containerd, shims, kubelet, kube-proxy, hostNetwork
# pods), except this script and the owner, which may have a thread inside but live elsewhere
node_ns_pids() {
  local i pid keep=" $$ $PPID $(cat "$STATE/owner" 2>/dev/null || true) "
  for ((i = 1; i <= 3; i++)); do
    [[ -e /run/netns/$(node_ns "$i") ]] || continue
    for pid in $(ip netns pids "$(node_ns "$i")" 2>/dev/null); do
      [[ $keep == *" $pid "* ]] || echo "$pid"
    done
  done
}
wait_for() { # wait_for SECONDS WHAT CMD...
  local secs=$1 what=$2 deadline; shift 2; deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do ((SECONDS < deadline)) || die "gave up waiting ${secs} s for: $what"; sleep 0.2; done
}
# the end of every component's log, for a failed start whose state is about to go
dump_logs() {
  local f
  for f in "$STATE"/*.log; do
    [[ -s $f ]] || continue
    echo "---- ${f##*/}" >&2
    grep -v DEPRECATION "$f" | tail -n 5 >&2 || true
  done
}

# --- sysctls ------------------------------------------------------------------------------
# The first cluster up saves the values; the last one down restores them (under a lock).
save_sysctls() {
  (
    flock 7
    [[ -s $ROOT/sysctls ]] || sysctl "${SYSCTLS[@]}" 2>/dev/null | sed 's/ = /=/' >"$ROOT/sysctls"
  ) 7>"$ROOT/.lock"
}
restore_sysctls() {
  (
    flock 7
    local d
    for d in "$ROOT"/*/; do [[ -d $d && ${d%/} != "$STATE" ]] && exit 0; done
    if [[ -s $ROOT/sysctls ]]; then sysctl -qw $(cat "$ROOT/sysctls") >/dev/null || true; fi
    rm -f "$ROOT/sysctls"
  ) 7>"$ROOT/.lock"
}

# --- certificates -------------------------------------------------------------------------
# cert NAME SUBJECT [EXTENSIONS]: an ECDSA key and a certificate signed by the cluster CA;
# a client certificate unless EXTENSIONS say otherwise
cert() {
  local p=$STATE/pki/$1
  openssl ecparam -name prime256v1 -genkey -noout -out "$p.key" 2>/dev/null
  openssl req -new -key "$p.key" -subj "$2" -out "$p.csr" 2>/dev/null
  openssl x509 -req -in "$p.csr" -CA "$STATE/pki/ca.crt" -CAkey "$STATE/pki/ca.key" -CAcreateserial \
    -days 30 -extfile <(echo "${3:-extendedKeyUsage=clientAuth}") -out "$p.crt" 2>/dev/null
  rm -f "$p.csr"
}
make_pki() {
  local d=$STATE/pki i
  mkdir -p "$d"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$d/ca.key" -subj "/CN=metallb-rs-$NAME-ca" -days 30 -out "$d/ca.crt" 2>/dev/null
  local sans=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
  sans+=,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$CP_IP,IP:$SVC_API
  cert apiserver /CN=kube-apiserver "$(printf 'extendedKeyUsage=serverAuth\nsubjectAltName=%s' "$sans")"
  cert admin /O=system:masters/CN=metallb-rs-admin
  cert apiserver-kubelet /O=system:masters/CN=kube-apiserver-kubelet-client
  cert controller-manager /CN=system:kube-controller-manager
  cert scheduler /CN=system:kube-scheduler
  cert proxy /CN=system:kube-proxy
  for ((i = 1; i <= $(nodes); i++)); do cert "node$i" "/O=system:nodes/CN=system:node:node$i"; done
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/sa.key" 2>/dev/null
  openssl ec -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}
# kubeconfig FILE SERVER CERT: a kubeconfig with the client certificate pki/CERT
kubeconfig() {
  local pki=$STATE/pki
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $NAME
  cluster: {server: "$2", certificate-authority: $pki/ca.crt}
users:
- name: $3
  user: {client-certificate: $pki/$3.crt, client-key: $pki/$3.key}
contexts:
- name: $NAME
  context: {cluster: $NAME, user: $3}
current-context: $NAME
EOF
}

# --- control plane ------------------------------------------------------------------------
plug_cp() {
  local sw=$NAME-sw
  ip netns add "$CP_NS"
  ip -n "$CP_NS" link set lo up
  ip -n "$sw" link add h-cp type veth peer name cp
  ip -n "$sw" link set h-cp netns "$CP_NS"
  ip -n "$CP_NS" link set h-cp name eth0
  ip -n "$sw" link set cp master br0 up
  ip -n "$CP_NS" addr add "$CP_IP/24" dev eth0
  ip netns exec "$CP_NS" sysctl -qw net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.accept_ra=0
  ip -n "$CP_NS" addr add "$CP_IP6/64" dev eth0 nodad
  ip -n "$CP_NS" link set eth0 up
}

start_control_plane() {
  local bin=$1 pki=$STATE/pki i
  kubeconfig "$STATE/controller-manager.kubeconfig" https://127.0.0.1:6443 controller-manager
  kubeconfig "$STATE/scheduler.kubeconfig" https://127.0.0.1:6443 scheduler
  spawn etcd nsenter --net="/run/netns/$CP_NS" "$bin/etcd" --name "$NAME" --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NAME=http://127.0.0.1:2380" --unsafe-no-fsync --log-level warn
  # --enable-aggregator-routing: the API server calls webhooks at their pods' addresses (routed
  # to the nodes' pod subnets below), since no kube-proxy runs beside it.
  spawn kube-apiserver nsenter --net="/run/netns/$CP_NS" "$bin/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --advertise-address="$CP_IP" --secure-port=6443 \
    --cert-dir="$STATE/apiserver-certs" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --kubelet-client-certificate="$pki/apiserver-kubelet.crt" --kubelet-client-key="$pki/apiserver-kubelet.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SVC_CIDR,$SVC_CIDR6" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --enable-aggregator-routing=true --profiling=false
  wait_for 60 "kube-apiserver ready" in_cp curl -sfk --cacert "$pki/ca.crt" \
    --cert "$pki/admin.crt" --key "$pki/admin.key" https://127.0.0.1:6443/readyz
  spawn kube-controller-manager nsenter --net="/run/netns/$CP_NS" "$bin/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=true --leader-elect=false \
    --service-cluster-ip-range="$SVC_CIDR,$SVC_CIDR6" --node-monitor-grace-period=20s \
    --bind-address=127.0.0.1 --profiling=false
  spawn kube-scheduler nsenter --net="/run/netns/$CP_NS" "$bin/kube-scheduler" --kubeconfig="$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --profiling=false
  # The host's way in: TCP on the host -> a Unix socket -> the API server in the namespace.
  spawn relay-cp nsenter --net="/run/netns/$CP_NS" socat "UNIX-LISTEN:$STATE/api.sock,fork,mode=600" TCP:127.0.0.1:6443
  wait_for 10 "the API relay socket" test -S "$STATE/api.sock"
  local port
  for ((port = 20000 + RANDOM % 20000; ; port++)); do
    ss -Htln "sport = :$port" | grep -q . || break
  done
  spawn relay-host socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$STATE/api.sock"
  kubeconfig "$STATE/kubeconfig" "https://127.0.0.1:$port" admin
  wait_for 10 "the API relay on port $port" "$bin/kubectl" --kubeconfig "$STATE/kubeconfig" get --raw /readyz
}

# --- nodes --------------------------------------------------------------------------------
# make_cgroups NODE: /metallb-rs/NAME/nodeI in every v1 hierarchy. Under the clusters' lock:
# another cluster may be creating or removing /metallb-rs at the same time.
make_cgroups() {
  exec 7>"$ROOT/.lock"
  flock 7
  local h path d
  for h in $(v1_hierarchies); do
    path=$h
    for d in metallb-rs "$NAME" "node$1"; do
      path=$path/$d
      [[ -d $path ]] && continue
      mkdir "$path"
      # a new cpuset cgroup has no CPUs or memory nodes until given its parent's
      if [[ -e $path/cpuset.cpus ]]; then
        cat "${path%/*}/cpuset.cpus" >"$path/cpuset.cpus"
        cat "${path%/*}/cpuset.mems" >"$path/cpuset.mems"
      fi
    done
  done
  exec 7>&-
}

remove_cgroups() {
  exec 7>"$ROOT/.lock"
  flock 7
  local h
  for h in $(all_hierarchies); do
    [[ -d $h/$CGROUP ]] || continue
    find "$h/$CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
    rmdir "$h/metallb-rs" 2>/dev/null || true # only when no other cluster uses it
  done
  exec 7>&-
}

node_config() { # node_config I BIN: containerd, CNI, kubelet and kube-proxy configuration
  local i=$1 bin=$2 d; d=$(node_dir "$1")
  mkdir -p "$d/cni/net.d" "$d/logs"
  cat >"$d/containerd.toml" <<TOML
version = 3
root = "$d/containerd/root"
state = "$d/containerd/state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins.'io.containerd.internal.v1.opt']
  path = "$d/containerd/opt"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$d/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$(command -v runc)"
      Root = "$d/runc"
      SystemdCgroup = false
TOML
  cat >"$d/cni/net.d/10-pods.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "mlb-$NAME", "plugins": [{
  "type": "bridge", "bridge": "cni0", "isGateway": true, "hairpinMode": true,
  "ipam": {"type": "host-local", "dataDir": "$d/cni/ipam",
           "ranges": [[{"subnet": "$POD_NET.$i.0/24"}], [{"subnet": "$POD_NET6:$i::/64"}]],
           "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}]}
JSON
  kubeconfig "$d/kubelet.kubeconfig" "https://$CP_IP:6443" "node$i"
  kubeconfig "$d/proxy.kubeconfig" "https://$CP_IP:6443" proxy
  cat >"$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP/node$i
containerRuntimeEndpoint: unix://$d/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
readOnlyPort: 0
failSwapOn: false
protectKernelDefaults: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
nodeStatusUpdateFrequency: 5s
podLogsDir: $d/logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
YAML
  cat >"$d/proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: node$i
clusterCIDR: $POD_NET.0.0/16,$POD_NET6::/48
clientConnection: {kubeconfig: $d/proxy.kubeconfig}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

node_network() { # node_network I N: routes, forwarding, masquerade of pod traffic leaving the pod net
  local i=$1 n=$2 j ns; ns=$(node_ns "$i")
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null
  for ((j = 1; j <= n; j++)); do
    ((j == i)) && continue
    ip -n "$ns" route add "$POD_NET.$j.0/24" via "$NET4.1$j"
    ip -n "$ns" route add "$POD_NET6:$j::/64" via "$NET6:1$j"
  done
  # locally generated ClusterIP packets need a route before kube-proxy's DNAT
  ip -n "$ns" route add "$SVC_CIDR" via "$CP_IP"
  ip -n "$ns" route add "$SVC_CIDR6" via "$CP_IP6"
  ip -n "$CP_NS" route add "$POD_NET.$i.0/24" via "$NET4.1$i"
  ip -n "$CP_NS" route add "$POD_NET6:$i::/64" via "$NET6:1$i"
  ip netns exec "$ns" nft -f - <<NFT
table ip metallb-rs-nodes {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $POD_NET.$i.0/24 ip daddr != $POD_NET.0.0/16 masquerade
  }
}
table ip6 metallb-rs-nodes {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip6 saddr $POD_NET6:$i::/64 ip6 daddr != $POD_NET6::/48 masquerade
  }
}
NFT
}

start_node() { # start_node I BIN
  local i=$1 bin=$2 d; d=$(node_dir "$1")
  mkdir -p "$d"
  touch "$d/uts"
  unshare --uts="$d/uts" hostname "node$i"
  make_cgroups "$i"
  node_config "$i" "$bin"
  local enter=(nsenter --net="/run/netns/$(node_ns "$i")" --uts="$d/uts")
  # the runc shim is found on PATH
  spawn "node$i-containerd" env PATH="$bin:$PATH" "${enter[@]}" "$bin/containerd" \
    --config "$d/containerd.toml"
  wait_for 30 "containerd of node$i" test -S "$d/containerd.sock"
  "$bin/ctr" -a "$d/containerd.sock" -n k8s.io images import --local "$STATE/pause.tar" >"$d/import.log" 2>&1 \
    || die "importing the pause image into node$i: $(tail -3 "$d/import.log")"
  spawn "node$i-kubelet" "${enter[@]}" "$bin/kubelet" --config="$d/kubelet.yaml" \
    --kubeconfig="$d/kubelet.kubeconfig" --root-dir="$d/kubelet" --cert-dir="$d/kubelet-pki" \
    --hostname-override="node$i" --node-ip="$NET4.1$i,$NET6:1$i"
  spawn "node$i-proxy" "${enter[@]}" "$bin/kube-proxy" --config="$d/proxy.yaml"
}

# --- teardown -----------------------------------------------------------------------------
cluster_down() {
  [[ -d $STATE ]] || return 0
  # kubelets first, so nothing restarts the pods being killed
  kill_all 5 $(spawned_pids | grep -xF -f <(cat "$STATE"/node*-kubelet.pid 2>/dev/null) || true)
  # The rest is thrown away with its state, so it gets one second: kube-apiserver alone would
  # spend a minute on a graceful shutdown.
  kill_all 1 $(cgroup_pids) $(node_ns_pids) $(spawned_pids)
  # container root filesystems, pod network namespaces, volumes, the UTS namespaces: deepest first
  local m
  for m in $(findmnt -rn -o TARGET | grep "^$STATE/" | sort -r || true); do umount -l "$m" 2>/dev/null || true; done
  # entries in the directories every kubelet and containerd share: only this cluster's
  find /var/log/containers -maxdepth 1 -lname "$STATE/*" -delete 2>/dev/null || true
  # (a CNI result names its pod's network namespace, which lives under the state directory)
  { grep -lsF "\"sandbox\":\"$STATE/" /var/lib/cni/results/* || true; } | xargs -r rm -f
  remove_cgroups
  if [[ -e /run/netns/$CP_NS ]]; then ip netns del "$CP_NS" || true; fi
  LAB_OWNER_PID=$$ bash "$LAB" --name "$NAME" down || true
  restore_sysctls
  rm -rf "$STATE"
}

nodes_ready() { # nodes_ready BIN N: exactly N nodes, all Ready
  local ready
  ready=$("$1/kubectl" --kubeconfig "$STATE/kubeconfig" get nodes --no-headers | awk '$2 == "Ready"' | wc -l)
  ((ready == $2))
}

# --- commands -----------------------------------------------------------------------------
cmd_up() {
  local n=3
  if [[ ${1:-} == --nodes ]]; then n=${2:-}; shift 2 || true; fi
  [[ $n =~ ^[1-3]$ ]] || die "--nodes takes 1 to 3 (the lab's nodes)"
  need_root
  [[ -f ${CLUSTER_PAUSE_IMAGE:-} ]] || die "CLUSTER_PAUSE_IMAGE must name the pause image archive (metallb-image pause)"
  if [[ -d $STATE ]]; then
    owner_alive "$STATE" && die "cluster $NAME is in use by the live process $(cat "$STATE/owner")"
    cluster_down
  fi
  local started=$SECONDS owner=${CLUSTER_OWNER_PID:-$PPID} st bin i
  st=$(start_time "$owner"); [[ -n $st ]] || die "owner process $owner does not exist"
  bin=$(bash "$BUILD" --cluster)
  mkdir -p "$STATE"
  echo "$owner" >"$STATE/owner"; echo "$st" >"$STATE/owner.start"; echo "$n" >"$STATE/nodes"
  # a failed `up` leaves nothing behind, unless asked to keep it for a post-mortem
  [[ ${CLUSTER_KEEP_FAILED:-0} == 1 ]] || trap 'trap - EXIT; dump_logs; cluster_down' EXIT
  save_sysctls
  LAB_OWNER_PID=$owner bash "$LAB" --name "$NAME" up
  plug_cp
  make_pki
  cp "$CLUSTER_PAUSE_IMAGE" "$STATE/pause.tar"
  start_control_plane "$bin"
  for ((i = 1; i <= n; i++)); do node_network "$i" "$n"; done
  for ((i = 1; i <= n; i++)); do start_node "$i" "$bin"; done
  wait_for 120 "$n nodes Ready" nodes_ready "$bin" "$n"
  # what a real cluster's workers carry, and what the MetalLB samples select; kubelets may not
  # set node-role labels themselves (NodeRestriction)
  "$bin/kubectl" --kubeconfig "$STATE/kubeconfig" label nodes --all node-role.kubernetes.io/worker= >/dev/null
  : >"$STATE/up"
  trap - EXIT
  log "cluster $NAME: $n nodes Ready in $((SECONDS - started)) s; KUBECONFIG=$STATE/kubeconfig"
}

cmd_down() { need_root; cluster_down; }

# Quiet, for scripts that reuse a cluster: the up marker, every process alive, the API ready.
cmd_check() {
  need_root
  [[ -e $STATE/up ]] || return 1
  local pid
  for pid in $(spawned_pids); do pid_alive "$pid" || return 1; done
  timeout 10 "$(bash "$BUILD" --print-bin-dir)/kubectl" --kubeconfig "$STATE/kubeconfig" \
    get --raw /readyz >/dev/null 2>&1
}

require_up() { [[ -e $STATE/up ]] || die "cluster $NAME is not up (run: cluster.sh --name $NAME up)"; }

cmd_import() {
  (($#)) || die "usage: cluster.sh import FILE..."
  need_root; require_up
  local bin f i pids=(); bin=$(bash "$BUILD" --print-bin-dir)
  for f in "$@"; do [[ -f $f ]] || die "no image archive $f"; done
  # the nodes import in parallel: each one unpacks the layers into its own containerd
  for ((i = 1; i <= $(nodes); i++)); do
    (
      for f in "$@"; do
        "$bin/ctr" -a "$(node_dir "$i")/containerd.sock" -n k8s.io images import --local "$f" \
          >"$(node_dir "$i")/import.log" 2>&1 || die "importing $f into node$i: $(tail -3 "$(node_dir "$i")/import.log")"
      done
    ) &
    pids+=($!)
  done
  local failed=0
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  ((failed == 0)) || exit 1
}

cmd_kubectl() { require_up; exec "$(bash "$BUILD" --print-bin-dir)/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

cmd_gc() {
  need_root
  local d
  for d in "$ROOT"/*/; do
    [[ -d $d ]] || continue; d=${d%/}
    owner_alive "$d" && continue
    select_cluster "${d##*/}"; cluster_down
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
  local name=${CLUSTER_NAME:-}
  if [[ ${1:-} == --name ]]; then [[ $# -ge 2 ]] || die "--name needs a value"; name=$2; shift 2; fi
  local cmd=${1:-}; shift || true
  mkdir -p "$ROOT"
  case $cmd in
    gc) cmd_gc "$@"; return ;; list) cmd_list "$@"; return ;;
    -h|--help|help) usage; return ;;
    "") usage >&2; exit 2 ;;
  esac
  [[ -n $name ]] || die "no cluster name: set CLUSTER_NAME or pass --name NAME"
  select_cluster "$name"
  case $cmd in
    up) cmd_up "$@" ;; down) cmd_down "$@" ;; check) cmd_check "$@" ;;
    kubeconfig) require_up; echo "$STATE/kubeconfig" ;;
    import) cmd_import "$@" ;; kubectl) cmd_kubectl "$@" ;;
    *) die "unknown command '$cmd' (try: cluster.sh help)" ;;
  esac
}
main "$@"
