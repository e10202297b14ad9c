#!/usr/bin/env bash
# Builds the sandbox's real components from source through the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes
# through a wrapper module), etcd (go.etcd.io/etcd/server/v3), kwok and helm; and the
# Gateway API CRDs (sigs.k8s.io/gateway-api, config/crd/standard).
#
# Everything lands outside the repository, keyed by version, so a fresh clone (CI)
# reuses it: $TBO_CACHE (default ~/.cache/timeout-budget-operator)/
#   bin/<component>-<version>/   the binaries
#   gomod/ gobuild/              Go module and build caches
# A binary already present is never rebuilt. Progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

CACHE="${TBO_CACHE:-$HOME/.cache/timeout-budget-operator}"
export GOMODCACHE="$CACHE/gomod"
export GOCACHE="$CACHE/gobuild"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
BIN="$CACHE/bin"
WORK="$CACHE/work"
mkdir -p "$BIN" "$WORK" "$GOMODCACHE" "$GOCACHE"

say() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

have_all() { local d="$1"; shift; for b in "$@"; do [ -x "$d/$b" ] || return 1; done; }

build_kubernetes() {
  local out="$BIN/kubernetes-$K8S_VERSION"
  if have_all "$out" kube-apiserver kube-controller-manager kube-scheduler kubectl; then
    say "kubernetes $K8S_VERSION: cached in $out"; return; fi
  local mod="$WORK/kubernetes-$K8S_VERSION"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  say "kubernetes $K8S_VERSION: preparing wrapper module (first time downloads ~1 GB of modules)"
  go mod init tbo.local/k8s-wrapper >/dev/null 2>&1
  go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
  # Replace every staging module (=> ./staging/...) with its published v0.Y.Z.
  local upstream staging minor
  minor="${K8S_VERSION#v1.}"; staging="v0.$minor"
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" > dl.json
  upstream="$(python3 -c 'import json,sys;print(json.load(open("dl.json"))["GoMod"])')"
  grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging' "$upstream" | awk '{print $1}' | sort -u > staging.txt
  say "kubernetes $K8S_VERSION: $(wc -l < staging.txt) staging modules replaced with $staging"
  while read -r name; do
    go mod edit -replace="$name=$name@$staging"
  done < staging.txt
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
  say "kubernetes $K8S_VERSION: go mod tidy"
  go mod tidy >/dev/null
  local major=1 kminor
  kminor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$kminor"
    ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date -X $pkg.gitCommit=release-$K8S_VERSION"
  done
  mkdir -p "$out.tmp"
  say "kubernetes $K8S_VERSION: compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (cold: 15-30 min on 2 cores)"
  go build -trimpath -ldflags "$ld" -o "$out.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "kubernetes $K8S_VERSION: done -> $("$out/kube-apiserver" --version)"
}

build_etcd() {
  local out="$BIN/etcd-$ETCD_VERSION"
  if have_all "$out" etcd; then say "etcd $ETCD_VERSION: cached"; return; fi
  local mod="$WORK/etcd-$ETCD_VERSION"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  say "etcd $ETCD_VERSION: wrapper module"
  go mod init tbo.local/etcd-wrapper >/dev/null 2>&1
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go mod tidy >/dev/null
  mkdir -p "$out.tmp"
  go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "etcd $ETCD_VERSION: done"
}

build_thanos() {
  # Thanos (query, sidecar, ...) from github.com/thanos-io/thanos through a wrapper module:
  # a `go install pkg@version` ignores the replace directives of the module's go.mod, so
  # they are copied into the wrapper's go.mod, as build_kubernetes does for its staging.
  local out="$BIN/thanos-$THANOS_VERSION"
  if have_all "$out" thanos; then say "thanos $THANOS_VERSION: cached"; return; fi
  local mod="$WORK/thanos-$THANOS_VERSION"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  say "thanos $THANOS_VERSION: wrapper module (first time downloads ~300 MB of modules, 1.5 GB unpacked)"
  go mod init tbo.local/thanos-wrapper >/dev/null 2>&1
  go mod edit -require="github.com/thanos-io/thanos@$THANOS_VERSION"
  local upstream
  upstream="$(go mod download -json "github.com/thanos-io/thanos@$THANOS_VERSION" \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')"
  go mod edit -json "$upstream" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    if not new.get("Version"):
        sys.exit("local replace in thanos go.mod: %s => %s" % (lhs, new["Path"]))
    print("%s=%s@%s" % (lhs, new["Path"], new["Version"]))' > replace.txt
  say "thanos $THANOS_VERSION: $(wc -l < replace.txt) replace directives copied from its go.mod"
  while read -r r; do go mod edit -replace="$r"; done < replace.txt
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/thanos-io/thanos/cmd/thanos"\n' > tools.go
  # Thanos' go.mod lacks one module that go mod tidy wants for a dependency's test
  # (lightstep-tracer-go's tests -> onsi/ginkgo -> nxadm/tail); pinned so tidy never looks
  # for the newest version (it is not compiled into the binary).
  go mod edit -require=github.com/nxadm/tail@v1.4.11
  say "thanos $THANOS_VERSION: go mod tidy"
  go mod tidy >/dev/null
  local v="-X github.com/prometheus/common/version"
  local ld="-s -w $v.Version=${THANOS_VERSION#v} $v.Revision=release-$THANOS_VERSION"
  ld="$ld $v.Branch=release-$THANOS_VERSION $v.BuildUser=tbo $v.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"
  mkdir -p "$out.tmp"
  say "thanos $THANOS_VERSION: compiling (cold: ~2 min on 2 cores)"
  # The tags of Thanos' own release build (.promu.yml). slicelabels is required: Thanos casts
  # Prometheus' labels.Labels to its gRPC labels with unsafe, which assumes the slice layout;
  # with Prometheus' default (stringlabels) every sidecar panics on Query's first Info call.
  go build -trimpath -tags netgo,slicelabels -ldflags "$ld" -o "$out.tmp/thanos" \
    github.com/thanos-io/thanos/cmd/thanos
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "thanos $THANOS_VERSION: done -> $("$out/thanos" --version 2>&1 | head -1)"
}

go_install() {  # name module/cmd version binary
  local name="$1" pkg="$2" ver="$3" binname="$4"
  local out="$BIN/$name-$ver"
  if have_all "$out" "$binname"; then say "$name $ver: cached"; return; fi
  say "$name $ver: go install $pkg@$ver"
  GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w ${5:-}" "$pkg@$ver"
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "$name $ver: done"
}

build_kwok() {
  go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" kwok
  # Stage configs ship inside the module: copy them next to the binary.
  local stages="$BIN/kwok-$KWOK_VERSION/stages"
  if [ ! -d "$stages" ]; then
    local src="$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
    mkdir -p "$stages"
    cp "$src/node/fast/node-initialize.yaml" "$src/node/heartbeat/node-heartbeat.yaml" \
       "$src/pod/fast/pod-ready.yaml" "$src/pod/fast/pod-complete.yaml" "$src/pod/fast/pod-delete.yaml" "$stages/"
  fi
}

fetch_gateway_api() {
  # No binary: the standard channel's CRDs, as the module ships them (Apache-2.0), copied
  # next to the binaries. The ValidatingAdmissionPolicy beside them guards CRD upgrades
  # across channels and is not installed.
  local out="$BIN/gateway-api-$GATEWAY_API_VERSION"
  if [ -f "$out/gateway.networking.k8s.io_httproutes.yaml" ]; then
    say "gateway-api $GATEWAY_API_VERSION: cached"; return; fi
  say "gateway-api $GATEWAY_API_VERSION: go mod download (CRDs only)"
  local dir
  dir="$(go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$out.tmp"
  cp "$dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$out.tmp/"
  rm -f "$out.tmp"/gateway.networking.k8s.io_vap_*.yaml
  chmod u+w "$out.tmp"/*.yaml
  rm -rf "$out"; mv "$out.tmp" "$out"
  say "gateway-api $GATEWAY_API_VERSION: done ($(ls "$out" | wc -l) CRDs)"
}

what="${1:-all}"
case "$what" in
  kubernetes) build_kubernetes ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  gateway-api) fetch_gateway_api ;;
  thanos) build_thanos ;;
  helm) go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
  all)
    build_etcd; build_kwok; fetch_gateway_api
    go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    build_kubernetes; build_thanos ;;
  *) echo "usage: $0 [all|kubernetes|etcd|kwok|helm|gateway-api|thanos]" >&2; exit 2 ;;
esac
