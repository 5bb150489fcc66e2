#!/usr/bin/env bash
# Builds the llmesh images (router, adapter, healthmon, llmesh, simnode)
# from static binaries built on this host, FROM scratch: no base image and
# no registry needed. With CONSUL_IMAGE set (e.g. llmesh/consul:1.14.11),
# also builds a Consul image from bin/consul (`make consul`), for where
# hashicorp/consul cannot be pulled.
#
#   scripts/images.sh                  # llmesh/<service>:$LLMESH_VERSION (default dev)
#   CONSUL_IMAGE=llmesh/consul:test scripts/images.sh
set -euo pipefail

# build runs docker build quietly (the classic builder's deprecation notice
# included), showing its output only when it fails.
build() {
	local out
	if ! out=$(docker build -q "$@" 2>&1); then
		echo "$out" >&2
		return 1
	fi
}

root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$root/bin}
VERSION=${LLMESH_VERSION:-dev}
SERVICES=(router adapter healthmon llmesh simnode)
certs=/etc/ssl/certs/ca-certificates.crt
[[ -r $certs ]] || { echo "images: $certs is missing (apt-get install ca-certificates)" >&2; exit 1; }

work="$BIN/images"
rm -rf "$work"
for svc in "${SERVICES[@]}"; do
	ctx="$work/$svc"
	mkdir -p "$ctx/etc/ssl/certs"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/service" "./services/$svc/cmd/$svc")
	cp "$certs" "$ctx/etc/ssl/certs/"
	echo 'llmesh:x:65532:65532:llmesh:/:/nonexistent' >"$ctx/etc/passwd"
	echo 'llmesh:x:65532:' >"$ctx/etc/group"
	build -f "$root/deployments/docker/prebuilt.Dockerfile" --build-arg "SERVICE=$svc" --build-arg "VERSION=$VERSION" \
		-t "llmesh/$svc:$VERSION" "$ctx"
	echo "images: llmesh/$svc:$VERSION ($(docker image inspect -f '{{.Size}}' "llmesh/$svc:$VERSION" | awk '{printf "%.1f MB", $1/1e6}'))" >&2
done

if [[ -n "${CONSUL_IMAGE:-}" ]]; then
	ctx="$work/consul"
	mkdir -p "$ctx/bin" "$ctx/consul/data" "$ctx/tmp"
	cp "$BIN/consul" "$ctx/bin/consul"
	build -f "$root/deployments/docker/consul.Dockerfile" --build-arg "VERSION=$("$BIN/consul" version | head -1)" \
		-t "$CONSUL_IMAGE" "$ctx"
	echo "images: $CONSUL_IMAGE" >&2
fi
