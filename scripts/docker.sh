#!/usr/bin/env bash
# Makes a Docker Engine and the compose plugin available, for the compose
# test (make test-compose) and `make images`. Idempotent: every step is
# skipped when what it makes is already there.
#
# - The Engine comes from Debian (docker.io); when `docker info` does not
#   answer, dockerd is started in the background (as root).
# - The compose plugin is not packaged in Debian; it is built from the Go
#   module proxy (github.com/docker/compose/v5). Its go.mod has exclude
#   directives, so `go install …@version` refuses it: the module is
#   downloaded and its ./cmd built in a writable copy.
set -euo pipefail
COMPOSE_VERSION=${COMPOSE_VERSION:-v5.6.0}
plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

if ! command -v dockerd >/dev/null 2>&1; then
	echo "docker.sh: installing docker.io" >&2
	"${sudo_cmd[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
	echo "docker.sh: starting dockerd" >&2
	"${sudo_cmd[@]}" setsid dockerd >/tmp/dockerd.log 2>&1 < /dev/null &
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && break
		sleep 1
	done
	docker info >/dev/null 2>&1 || { echo "docker.sh: dockerd did not start; see /tmp/dockerd.log" >&2; tail -20 /tmp/dockerd.log >&2; exit 1; }
fi

if ! docker compose version 2>/dev/null | grep -q "${COMPOSE_VERSION#v}"; then
	echo "docker.sh: building the compose plugin $COMPOSE_VERSION" >&2
	src=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v5@$COMPOSE_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
	work=$(mktemp -d)
	cp -r "$src/." "$work"
	chmod -R u+w "$work"
	mkdir -p "$plugins"
	(cd "$work" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-w -X github.com/docker/compose/v5/internal.Version=$COMPOSE_VERSION" -o "$plugins/docker-compose" ./cmd)
	rm -rf "$work"
	docker compose version >&2
fi
