#!/usr/bin/env bash
# Builds a real Ollama (CPU backend, cgo) into $BIN from the Go module proxy,
# for the real-Ollama test suite. Idempotent: does nothing when $BIN/ollama
# already reports $OLLAMA_VERSION.
#
# The module zip leaves out a few headers llama.cpp includes, so they come
# from Debian (nlohmann-json3-dev, libstb-dev) and, for miniaudio.h, from the
# Go module github.com/gen2brain/malgo, which ships it. The first build is
# several minutes of C++ on 2 cores; Go's build cache keeps it.
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
OLLAMA_VERSION=${OLLAMA_VERSION:-0.17.4}
MALGO_VERSION=${MALGO_VERSION:-v0.11.24}

if [[ -x "$BIN/ollama" ]] && "$BIN/ollama" --version 2>/dev/null | grep -q "$OLLAMA_VERSION"; then
	exit 0
fi

missing=()
for pkg in nlohmann-json3-dev libstb-dev; do
	dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
	echo "build-ollama: installing ${missing[*]}" >&2
	sudo_cmd=()
	[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
	"${sudo_cmd[@]}" apt-get update -qq
	"${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

include="$BIN/ollama-include"
if [[ ! -f "$include/miniaudio/miniaudio.h" ]]; then
	malgo_dir=$(cd "$(mktemp -d)" && go mod download -json "github.com/gen2brain/malgo@$MALGO_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
	mkdir -p "$include/miniaudio"
	cp "$malgo_dir/miniaudio.h" "$include/miniaudio/miniaudio.h"
fi

echo "build-ollama: building ollama $OLLAMA_VERSION (the first time takes several minutes)" >&2
mkdir -p "$BIN"
GOWORK=off GOBIN="$BIN" CGO_ENABLED=1 CGO_CPPFLAGS="-I$include" \
	go install -ldflags "-X github.com/ollama/ollama/version.Version=$OLLAMA_VERSION" \
	"github.com/ollama/ollama@v$OLLAMA_VERSION"
"$BIN/ollama" --version >&2 || true
