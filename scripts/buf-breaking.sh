#!/usr/bin/env bash
# Checks proto/ for changes that break the API (buf breaking, FILE rules)
# against the last commit of main that changed proto/:
# - on a branch whose proto/ differs from main's: against main's;
# - with uncommitted proto/ changes: against HEAD's;
# - otherwise (a clean checkout of main, as in CI): against the state
#   before the newest commit that changed proto/, so that change is checked.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-bin/buf}

if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "buf-breaking: not a git checkout; skipped" >&2
	exit 0
fi
last() { git log -1 --format=%H "$@" -- proto; }
if git rev-parse --verify -q main >/dev/null && [[ "$(git rev-parse HEAD:proto)" != "$(git rev-parse main:proto)" ]]; then
	base=$(last main)
elif ! git diff --quiet HEAD -- proto || [[ -n "$(git ls-files --others --exclude-standard -- proto)" ]]; then
	base=$(last HEAD)
else
	base=$(last HEAD)~1
fi
if ! git rev-parse --verify -q "$base^{commit}" >/dev/null; then
	echo "buf-breaking: $base is not in this clone (shallow?); skipped" >&2
	exit 0
fi
echo "buf breaking against $(git rev-parse --short "$base")" >&2
"$BUF" breaking --against ".git#ref=$(git rev-parse "$base")"
