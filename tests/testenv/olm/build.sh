#!/usr/bin/env bash
# Builds the OLM tools for the metallb-rs bundle tests from the Go module proxy, at the versions
# pinned in go.mod next to this script, into a cache outside the clone:
#
#   ${METALLB_RS_CACHE:-$HOME/.cache/metallb-rs}/olm/opm<v>-olm<v>-sdk<v>/bin/
#     opm            operator-registry's opm (render, validate, serve)
#     operator-sdk   `bundle validate`, `scorecard`
#     olm, catalog   OLM v0's two operators, run out of cluster against a local cluster
#   .../crds/        OLM v0's CRDs (the OLM module's deploy/chart/crds)
#
# `go install module/cmd@version` is refused by the proxy for these modules (a deprecation
# look-up), so this directory is a small module whose tools.go imports the commands. The proxy
# also refuses github.com/operator-framework/ansible-operator-plugins, which operator-sdk imports
# for its Ansible scaffolding plugin only: ./ansible-stub replaces it (bundle validate, generate
# and scorecard are upstream code, unchanged).
#
# A warm cache costs a few milliseconds (a stamp file, written last, so an interrupted build is
# redone); flock serialises concurrent callers. A cold build takes ~6 min on 2 cores.
#
# stdout: the bin directory (one line). stderr: progress and timings.
# Options: --print-bin-dir  print the bin directory and exit without building
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

print_only=0
for arg in "$@"; do
    case "$arg" in
        --print-bin-dir) print_only=1 ;;
        -h | --help)
            sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "olm/build.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

version_of() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$here/go.mod"; }
registry_version=$(version_of github.com/operator-framework/operator-registry)
olm_version=$(version_of github.com/operator-framework/operator-lifecycle-manager)
sdk_version=$(version_of github.com/operator-framework/operator-sdk)
if [[ -z "$registry_version" || -z "$olm_version" || -z "$sdk_version" ]]; then
    echo "olm/build.sh: cannot read the operator-registry, OLM or operator-sdk version from go.mod" >&2
    exit 1
fi

cache=${METALLB_RS_CACHE:-$HOME/.cache/metallb-rs}
root="$cache/olm/opm${registry_version}-olm${olm_version}-sdk${sdk_version}"
bin="$root/bin"
stamp="$bin/.complete"

if [[ "$print_only" == 1 ]]; then
    echo "$bin"
    exit 0
fi
if [[ -f "$stamp" ]]; then
    echo "$bin"
    exit 0
fi

mkdir -p "$bin"
exec 9>"$root/build.lock"
if ! flock -n 9; then
    echo "olm/build.sh: another build of $root is running; waiting for it" >&2
    flock 9
fi
if [[ -f "$stamp" ]]; then
    echo "$bin"
    exit 0
fi

command -v go >/dev/null || {
    echo "olm/build.sh: 'go' is not on PATH; install Go >= $(awk '$1 == "go" { print $2 }' "$here/go.mod")" >&2
    exit 1
}

# build NAME PACKAGE CGO TAGS [LDFLAGS]: into a temporary name, then rename, so a half-written
# binary never looks finished.
build() {
    local name=$1 pkg=$2 cgo=$3 tags=$4 ldflags=${5:-} start
    [[ -x "$bin/$name" ]] && return 0
    start=$(date +%s)
    echo "olm/build.sh: building $name ($pkg) into $bin" >&2
    (cd "$here" && GOFLAGS=-mod=readonly CGO_ENABLED=$cgo go build -buildvcs=false -trimpath \
        -tags "$tags" -ldflags="-s -w $ldflags" -o "$bin/.$name.partial" "$pkg")
    mv -f "$bin/.$name.partial" "$bin/$name"
    echo "olm/build.sh: built $name in $(($(date +%s) - start)) s" >&2
}

started=$(date +%s)
# opm and OLM link SQLite (the deprecated index format) through cgo; json1 is what upstream uses.
build opm github.com/operator-framework/operator-registry/cmd/opm 1 "json1 containers_image_openpgp" \
    "-X github.com/operator-framework/operator-registry/cmd/opm/version.opmVersion=$registry_version"
build olm github.com/operator-framework/operator-lifecycle-manager/cmd/olm 1 json1
build catalog github.com/operator-framework/operator-lifecycle-manager/cmd/catalog 1 json1
build operator-sdk github.com/operator-framework/operator-sdk/cmd/operator-sdk 1 containers_image_openpgp \
    "-X github.com/operator-framework/operator-sdk/internal/version.Version=$sdk_version -X github.com/operator-framework/operator-sdk/internal/version.GitVersion=$sdk_version"

module_dir=$(cd "$here" && go list -m -f '{{.Dir}}' github.com/operator-framework/operator-lifecycle-manager)
rm -rf "$root/crds"
mkdir -p "$root/crds"
cp "$module_dir"/deploy/chart/crds/*.yaml "$root/crds/"
chmod -R u+w "$root/crds"

printf 'opm %s\nolm %s\noperator-sdk %s\n%s\nbuilt %s\n' "$registry_version" "$olm_version" \
    "$sdk_version" "$(go version)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$stamp"
echo "olm/build.sh: done in $(($(date +%s) - started)) s" >&2
echo "$bin"
