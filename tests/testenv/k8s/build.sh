#!/usr/bin/env bash
# Builds the control-plane binaries for the metallb-rs test harness from the Go module proxy,
# at the versions pinned in go.mod next to this script, into a cache outside the clone:
#
#   ${METALLB_RS_CACHE:-$HOME/.cache/metallb-rs}/k8s/<k8s-version>-etcd<etcd-version>/bin/
#
# Default binaries: kube-apiserver, etcd, kubectl. kube-controller-manager is built only when
# asked for, with the argument `--with-controller-manager` or METALLB_RS_BUILD_KCM=1.
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
#   --print-bin-dir             print the bin directory and exit without building
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

with_kcm=${METALLB_RS_BUILD_KCM:-0}
print_only=0
for arg in "$@"; do
    case "$arg" in
        --with-controller-manager) with_kcm=1 ;;
        --print-bin-dir) print_only=1 ;;
        -h | --help)
            sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
if [[ -z "$k8s_version" || -z "$etcd_version" ]]; then
    echo "build.sh: cannot read the k8s.io/kubernetes or etcd version from $here/go.mod" >&2
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

is_complete() {
    [[ -f "$stamp_default" ]] || return 1
    [[ "$with_kcm" != 1 || -f "$stamp_kcm" ]]
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

# build NAME PACKAGE: go build into a temporary name, then rename, so a half-written binary
# never looks finished.
build() {
    local name=$1 pkg=$2 start
    start=$(date +%s)
    echo "build.sh: building $name ($pkg) into $bin" >&2
    (cd "$here" && GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -buildvcs=false -trimpath \
        -ldflags="-s -w$version_ldflags" -o "$bin/.$name.partial" "$pkg")
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
echo "build.sh: done in $(($(date +%s) - started)) s" >&2
echo "$bin"
