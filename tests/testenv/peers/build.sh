#!/usr/bin/env bash
# Builds the peers the benchmarks run beside metallb-rs from the Go module proxy, at the
# versions pinned in ./metallb/go.mod and ./kube-vip/go.mod (nowhere else), into a cache outside
# the clone:
#
#   ${METALLB_RS_CACHE:-$HOME/.cache/metallb-rs}/peers/metallb<v>-kube-vip<v>/
#     bin/controller, bin/speaker   MetalLB's controller and speaker
#     bin/kube-vip                  kube-vip (services mode: ARP, BGP, Lease election)
#     crds/                         MetalLB's CRDs (the module's config/crd/bases)
#     samples/                      MetalLB's sample objects (the module's configsamples)
#
# and installs GoBGP (gobgpd, gobgp) from Debian when it is missing.
#
# Each peer is its own wrapper module, so their dependencies need not agree:
# - MetalLB v0.16.2 requires github.com/metallb/frr-k8s v0.0.27, which the proxy refuses; the
#   build directory gets v0.0.26 plus the type AsPathPrependPrefixes and the field
#   Advertise.PrefixesWithAsPathPrepend (frr-k8s mode only; layer 2 and native BGP never use them).
# - kube-vip v0.9.2 is served at that exact version only and the sum database does not know it:
#   its go.sum is committed and the build runs with GONOSUMDB=github.com/kube-vip.
#
# A warm cache costs a stamp check (0.2 s; the stamp is written last, so an interrupted build is
# redone); flock serialises concurrent callers. A cold build took 638 s on 2 shared cores
# (controller 291 s, speaker 22 s, kube-vip 324 s), ~6 min on 2 idle ones.
#
# stdout: the peers' root directory (one line). stderr: progress and timings.
# Options: --print-root  print the root directory and exit without building
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

print_only=0
for arg in "$@"; do
    case "$arg" in
        --print-root) print_only=1 ;;
        -h | --help)
            sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "peers/build.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

version_of() { awk -v m="$1" '$1 == "require" && $2 == m { print $3; exit } $1 == m && $2 ~ /^v/ { print $2; exit }' "$2"; }
metallb_version=$(version_of go.universe.tf/metallb "$here/metallb/go.mod")
kube_vip_version=$(version_of github.com/kube-vip/kube-vip "$here/kube-vip/go.mod")
frr_k8s_base=v0.0.26
if [[ -z "$metallb_version" || -z "$kube_vip_version" ]]; then
    echo "peers/build.sh: cannot read the MetalLB or kube-vip version from the go.mod files" >&2
    exit 1
fi

cache=${METALLB_RS_CACHE:-$HOME/.cache/metallb-rs}
root="$cache/peers/metallb${metallb_version}-kube-vip${kube_vip_version}"
bin="$root/bin"
stamp="$root/.complete"

if [[ "$print_only" == 1 ]] || { [[ -f "$stamp" ]] && command -v gobgpd >/dev/null; }; then
    echo "$root"
    exit 0
fi

mkdir -p "$bin"
exec 9>"$root/build.lock"
if ! flock -n 9; then
    echo "peers/build.sh: another build of $root is running; waiting for it" >&2
    flock 9
fi

if ! command -v gobgpd >/dev/null; then
    echo "peers/build.sh: installing gobgpd from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gobgpd >&2
fi
if [[ -f "$stamp" ]]; then
    echo "$root"
    exit 0
fi

command -v go >/dev/null || {
    echo "peers/build.sh: 'go' is not on PATH; install Go >= $(awk '$1 == "go" { print $2 }' "$here/metallb/go.mod")" >&2
    exit 1
}

# build DIR NAME PACKAGE [LDFLAGS]: into a temporary name, then rename, so a half-written binary
# never looks finished.
build() {
    local dir=$1 name=$2 pkg=$3 ldflags=${4:-} start
    [[ -x "$bin/$name" ]] && return 0
    start=$(date +%s)
    echo "peers/build.sh: building $name ($pkg) into $bin" >&2
    (cd "$dir" && GOFLAGS=-mod=readonly GONOSUMDB=github.com/kube-vip CGO_ENABLED=0 \
        go build -buildvcs=false -trimpath -ldflags="-s -w $ldflags" -o "$bin/.$name.partial" "$pkg")
    mv -f "$bin/.$name.partial" "$bin/$name"
    echo "peers/build.sh: built $name in $(($(date +%s) - start)) s" >&2
}

started=$(date +%s)

# MetalLB's build directory: the wrapper module and the patched frr-k8s its replace names.
src="$root/src/metallb"
rm -rf "$src"
mkdir -p "$src"
cp "$here/metallb/go.mod" "$here/metallb/go.sum" "$here/metallb/tools.go" "$src/"
frr_dir=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "github.com/metallb/frr-k8s@$frr_k8s_base" |
    awk -F'"' '$2 == "Dir" { print $4 }')
cp -r "$frr_dir" "$src/frr-k8s"
chmod -R u+w "$src/frr-k8s"
types="$src/frr-k8s/api/v1beta1/frrconfiguration_types.go"
grep -q 'PrefixesWithCommunity \[\]CommunityPrefixes' "$types" || {
    echo "peers/build.sh: frr-k8s $frr_k8s_base no longer has Advertise.PrefixesWithCommunity" >&2
    exit 1
}
sed -i 's|^\(\s*\)PrefixesWithCommunity \[\]CommunityPrefixes.*$|&\n\1PrefixesWithAsPathPrepend []AsPathPrependPrefixes `json:"withAsPathPrepend,omitempty"`|' "$types"
cat >"$src/frr-k8s/api/v1beta1/aspathprepend_peers.go" <<'EOF'
package v1beta1

// AsPathPrependPrefixes is what frr-k8s v0.0.27 adds and MetalLB's frr-k8s mode names.
type AsPathPrependPrefixes struct {
	Prefixes      []string `json:"prefixes,omitempty"`
	AsPathPrepend uint8    `json:"asPathPrepend,omitempty"`
}
EOF

build "$src" controller go.universe.tf/metallb/controller
build "$src" speaker go.universe.tf/metallb/speaker
build "$here/kube-vip" kube-vip github.com/kube-vip/kube-vip \
    "-X main.Version=$kube_vip_version -X main.Build=proxy"

metallb_dir=$(cd "$src" && go list -m -f '{{.Dir}}' go.universe.tf/metallb)
rm -rf "$root/crds" "$root/samples"
mkdir -p "$root/crds" "$root/samples"
cp "$metallb_dir"/config/crd/bases/*.yaml "$root/crds/"
cp "$metallb_dir"/configsamples/*.yaml "$root/samples/"
chmod -R u+w "$root/crds" "$root/samples"
rm -rf "$root/src"

printf 'metallb %s\nkube-vip %s\nfrr-k8s %s (patched)\n%s\nbuilt %s\n' "$metallb_version" \
    "$kube_vip_version" "$frr_k8s_base" "$(go version)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$stamp"
echo "peers/build.sh: done in $(($(date +%s) - started)) s" >&2
echo "$root"
