//go:build tools

// Package tools pins the Consul agent that scripts/build-consul.sh builds
// (`go build github.com/hashicorp/consul`). The blank import keeps the
// requirement through `go mod tidy`; the build tag keeps this file out of
// every ordinary build, so the module itself compiles to nothing.
package tools

import _ "github.com/hashicorp/consul"
