#!/usr/bin/env bash
# Builds a real Consul agent into $BIN from the Go module proxy, for tests
# that need one (tests/consultest). Idempotent: does nothing when
# $BIN/consul already reports v$CONSUL_VERSION.
#
# The version is pinned by tools/consul/go.mod, a module of its own that is
# kept out of go.work so Consul's few hundred dependencies never enter the
# workspace; GOWORK=off builds it on its own. Consul 1.14 is the newest
# MPL-2.0 release whose dependencies the proxy serves. The first build is
# several minutes on 2 cores; Go's build cache keeps it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$root/bin}
CONSUL_VERSION=1.14.11 # must match tools/consul/go.mod

if [[ -x "$BIN/consul" ]] && "$BIN/consul" version 2>/dev/null | grep -qx "Consul v$CONSUL_VERSION"; then
	exit 0
fi

echo "build-consul: building consul $CONSUL_VERSION (the first time takes several minutes)" >&2
mkdir -p "$BIN"
# CGO_ENABLED=0 as Consul's own release builds: a static binary, and no C
# toolchain needed. No -ldflags: the version comes from the VERSION file
# embedded in the module ("1.14.11", no -dev suffix); only the git revision
# line, which the module zip cannot know, is left out of `consul version`.
cd "$root/tools/consul"
GOWORK=off CGO_ENABLED=0 go build -trimpath -o "$BIN/consul" github.com/hashicorp/consul
"$BIN/consul" version >&2
