#!/usr/bin/env bash
# Runs the mesh as three local processes on 127.0.0.1: adapter (:9091),
# healthmon (:9092), router (REST :8080, gRPC :9090, admin :9190). Nodes come from
# $NODES (a YAML nodes file), else OPENAI_BASE_URL / OPENAI_API_KEY, else
# the local Ollama at http://127.0.0.1:11434. Ctrl-C stops all three; if
# one exits, the others are stopped too.
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
nodes_flag=()
if [[ -n "${NODES:-}" ]]; then
	nodes_flag=(-nodes "$NODES")
fi

pids=()
stop() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait
}
trap stop INT TERM EXIT

# The adapter reads the nodes file too: the variables its nodes name are
# the only ones (with -secret-env and OPENAI_API_KEY for OPENAI_BASE_URL's
# host) it sends, each only to its node's host.
"$BIN/adapter" "${nodes_flag[@]}" & pids+=($!)
"$BIN/healthmon" "${nodes_flag[@]}" & pids+=($!)
admin=${LLMESH_ROUTER_ADMIN_ADDR:-127.0.0.1:9190}
"$BIN/router" -admin-addr "$admin" & pids+=($!)
echo "llmesh: REST http://127.0.0.1:8080/v1  gRPC 127.0.0.1:9090  node view http://$admin/debug/nodes  (Ctrl-C to stop)" >&2
wait -n
