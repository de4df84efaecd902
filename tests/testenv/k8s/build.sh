#!/usr/bin/env bash
# Builds the control-plane binaries for the metallb-rs test harness from the Go module proxy,
# at the versions pinned in go.mod next to this script, into a cache outside the clone:
#
#   ${METALLB_RS_CACHE:-$HOME/.cache/metallb-rs}/k8s/<k8s-version>-etcd<etcd-version>/bin/
#
# Default binaries: kube-apiserver, etcd, kubectl. kube-controller-manager is built only when
# asked for, with the argument `--with-controller-manager` or METALLB_RS_BUILD_KCM=1.
# `--cluster` (or METALLB_RS_BUILD_CLUSTER=1) also builds what the local cluster's nodes run:
# kubelet, kube-controller-manager, kube-scheduler, kube-proxy (same k8s.io/kubernetes), the
# nodes' static pause program (./pause, for the sandbox image), a static HTTP demo server
# (./demo, for hack/run's demo workload), and
# containerd, ctr, containerd-shim-runc-v2 at the version pinned in containerd/go.mod (its own
# module, so its dependencies need not agree with Kubernetes'); and it installs the Debian
# packages the nodes need when they are missing (runc, containernetworking-plugins, nftables,
# iptables, conntrack, socat; curl and openssl for cluster.sh).
#
# A warm cache costs a few milliseconds: the script checks a stamp file and exits. The stamp
# is written last, so an interrupted build is redone. flock serialises concurrent callers
# (several test binaries starting at once) so only one of them builds.
#
# stdout: the bin directory (one line), for callers such as the Rust harness.
# stderr: progress and timings.
#
# Options:
#   --with-controller-manager   also build kube-controller-manager
#   --cluster                   also build and install everything a local cluster's node needs
#   --print-bin-dir             print the bin directory and exit without building
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

with_kcm=${METALLB_RS_BUILD_KCM:-0}
with_cluster=${METALLB_RS_BUILD_CLUSTER:-0}
print_only=0
for arg in "$@"; do
    case "$arg" in
        --with-controller-manager) with_kcm=1 ;;
        --cluster) with_cluster=1 with_kcm=1 ;;
        --print-bin-dir) print_only=1 ;;
        -h | --help)
            sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "build.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

# The versions come from go.mod so there is one place to change them.
k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")
containerd_version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/containerd/containerd/v2") {
    print $(i + 1); exit } }' "$here/containerd/go.mod")
if [[ -z "$k8s_version" || -z "$etcd_version" || -z "$containerd_version" ]]; then
    echo "build.sh: cannot read the k8s.io/kubernetes, etcd or containerd version from go.mod" >&2
    exit 1
fi

cache=${METALLB_RS_CACHE:-$HOME/.cache/metallb-rs}
key="${k8s_version}-etcd${etcd_version#v}"
root="$cache/k8s/$key"
bin="$root/bin"

if [[ "$print_only" == 1 ]]; then
    echo "$bin"
    exit 0
fi

stamp_default="$bin/.complete"
stamp_kcm="$bin/.complete-kube-controller-manager"
stamp_nodes="$bin/.complete-nodes"
# containerd has its own version, so its stamp names it: a new pin rebuilds only containerd.
stamp_containerd="$bin/.complete-containerd-$containerd_version"

# The Debian packages a node needs, as (command package) pairs.
node_packages=(runc runc /usr/lib/cni/bridge containernetworking-plugins nft nftables
    iptables iptables conntrack conntrack socat socat curl curl openssl openssl)

missing_packages() {
    local i miss=()
    for ((i = 0; i < ${#node_packages[@]}; i += 2)); do
        local cmd=${node_packages[i]}
        if [[ "$cmd" == /* ]]; then [[ -x "$cmd" ]] || miss+=("${node_packages[i + 1]}")
        else command -v "$cmd" >/dev/null || miss+=("${node_packages[i + 1]}"); fi
    done
    echo "${miss[*]}"
}

is_complete() {
    [[ -f "$stamp_default" ]] || return 1
    [[ "$with_kcm" != 1 || -f "$stamp_kcm" ]] || return 1
    [[ "$with_cluster" != 1 || (-f "$stamp_nodes" && -x "$bin/pause" && -x "$bin/demo" && -f "$stamp_containerd" &&
        -z "$(missing_packages)") ]]
}

if is_complete; then
    echo "$bin"
    exit 0
fi

mkdir -p "$bin"
exec 9>"$root/build.lock"
if ! flock -n 9; then
    echo "build.sh: another build of $key is running; waiting for it" >&2
    flock 9
fi
# The build we waited for may have produced everything.
if is_complete; then
    echo "$bin"
    exit 0
fi

command -v go >/dev/null || {
    echo "build.sh: 'go' is not on PATH; install Go >= $(awk '$1 == "go" { print $2 }' "$here/go.mod")" >&2
    exit 1
}

minor=${k8s_version#v1.}
minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
version_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    version_ldflags+=" -X $pkg.gitVersion=$k8s_version"
    version_ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    version_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

# build NAME PACKAGE [DIR [TAGS]]: go build (in the module at DIR, default this directory) into a
# temporary name, then rename, so a half-written binary never looks finished.
build() {
    local name=$1 pkg=$2 dir=${3:-$here} tags=${4:-} start
    start=$(date +%s)
    echo "build.sh: building $name ($pkg) into $bin" >&2
    (cd "$dir" && GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -buildvcs=false -trimpath \
        -tags "$tags" -ldflags="-s -w$version_ldflags" -o "$bin/.$name.partial" "$pkg")
    mv -f "$bin/.$name.partial" "$bin/$name"
    echo "build.sh: built $name in $(($(date +%s) - start)) s" >&2
}

started=$(date +%s)
if [[ ! -f "$stamp_default" ]]; then
    build etcd ./etcd
    build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
    build kubectl k8s.io/kubernetes/cmd/kubectl
    printf 'k8s %s\netcd %s\n%s\nbuilt %s\n' "$k8s_version" "$etcd_version" \
        "$(go version)" "$build_date" >"$stamp_default"
fi
if [[ "$with_kcm" == 1 && ! -f "$stamp_kcm" ]]; then
    build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
    printf 'k8s %s\n%s\nbuilt %s\n' "$k8s_version" "$(go version)" "$build_date" >"$stamp_kcm"
fi
if [[ "$with_cluster" == 1 && ! -f "$stamp_nodes" ]]; then
    build kubelet k8s.io/kubernetes/cmd/kubelet
    build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
    build kube-proxy k8s.io/kubernetes/cmd/kube-proxy
    printf 'k8s %s\n%s\nbuilt %s\n' "$k8s_version" "$(go version)" "$build_date" >"$stamp_nodes"
fi
# The rename in build() makes an existing binary a complete one.
for small in pause demo; do
    if [[ "$with_cluster" == 1 && ! -x "$bin/$small" ]]; then
        build "$small" "./$small"
    fi
done
if [[ "$with_cluster" == 1 && ! -f "$stamp_containerd" ]]; then
    # The Kubernetes version ldflags do not apply to containerd; its own version variable does.
    version_ldflags=" -X github.com/containerd/containerd/v2/version.Version=$containerd_version"
    static_tags="urfave_cli_no_docs no_btrfs no_devmapper no_zfs osusergo netgo static_build"
    for cmd in containerd ctr; do
        build "$cmd" "github.com/containerd/containerd/v2/cmd/$cmd" "$here/containerd" "$static_tags"
    done
    build containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
        "$here/containerd" "$static_tags no_grpc"
    printf 'containerd %s\n%s\nbuilt %s\n' "$containerd_version" "$(go version)" "$build_date" \
        >"$stamp_containerd"
fi
if [[ "$with_cluster" == 1 ]]; then
    read -ra miss <<<"$(missing_packages)"
    if ((${#miss[@]})); then
        command -v apt-get >/dev/null || {
            echo "build.sh: missing ${miss[*]}, and no apt-get to install them" >&2
            exit 1
        }
        echo "build.sh: installing ${miss[*]} with apt-get" >&2
        # The lab's lock: parallel callers wait for one dpkg run instead of fighting over it.
        mkdir -p /run/metallb-rs/lab
        (
            flock 8
            apt-get update -qq >/dev/null 2>&1
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${miss[@]}" >/dev/null 2>&1
        ) 8>/run/metallb-rs/lab/.apt.lock
    fi
fi
echo "build.sh: done in $(($(date +%s) - started)) s" >&2
echo "$bin"
