# llmesh — run `make help` for the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
export GOBIN := $(BIN)
export PATH := $(BIN):$(PATH)

# Pinned code generators (installed into bin/ by `make tools`).
BUF_VERSION                  := v1.75.0
PROTOC_GEN_GO_VERSION        := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION   := v1.6.0
PROTOC_GEN_GRPC_GATEWAY_VERSION := v2.33.0
GOLANGCI_LINT_VERSION        := v2.15.0

# Every Go module of the workspace (go.work).
MODULES := gen/go services/meshkit services/router services/adapter services/healthmon services/llmesh services/simnode tests
PKGS := $(addsuffix /...,$(addprefix ./,$(MODULES)))
SERVICES := router adapter healthmon simnode

FUZZTIME ?= 10s
NODES ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/.tools-$(BUF_VERSION)-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_GO_GRPC_VERSION)-$(PROTOC_GEN_GRPC_GATEWAY_VERSION):
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(PROTOC_GEN_GRPC_GATEWAY_VERSION)
	rm -f $(BIN)/.tools-* && touch $@

$(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION):
	go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	rm -f $(BIN)/.golangci-lint-* && touch $@

.PHONY: tools
tools: $(BIN)/.tools-$(BUF_VERSION)-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_GO_GRPC_VERSION)-$(PROTOC_GEN_GRPC_GATEWAY_VERSION) $(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION) ## install the pinned code generators and golangci-lint into bin/

.PHONY: generate
generate: tools ## regenerate gen/ from proto/
	buf lint
	find gen/go -name '*.pb.go' -o -name '*.pb.gw.go' | xargs rm -f
	buf generate

.PHONY: checkgenerate
checkgenerate: generate ## fail when the committed gen/ is stale
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
		git status --porcelain -- gen; git --no-pager diff --stat -- gen; \
		echo "gen/ is stale: run 'make generate' and commit the result"; exit 1; fi

.PHONY: lint
lint: tools ## buf lint and buf breaking, gofmt, go vet and golangci-lint (.golangci.yml)
	buf lint
	BUF=$(BIN)/buf scripts/buf-breaking.sh
	@bad="$$(gofmt -l $(MODULES))"; if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	go vet $(PKGS)
	go vet -tags ollama ./tests/ollama/...
	go vet -tags compose ./tests/compose/...
	golangci-lint run $(PKGS)
	golangci-lint run --build-tags ollama ./tests/ollama/...
	golangci-lint run --build-tags compose ./tests/compose/...

.PHONY: build
build: ## build the services and the llmesh CLI into bin/
	go build -o $(BIN)/ $(foreach s,$(SERVICES),./services/$(s)/cmd/$(s)) ./services/llmesh/cmd/llmesh

.PHONY: test
test: checkgenerate lint test-go fuzz ## everything CI runs: generated code, lint, unit + end-to-end tests, short fuzzing

.PHONY: test-go
test-go: consul ollamajs ## unit and end-to-end tests (race detector on)
	go test -race -count=1 -timeout 10m $(PKGS)

.PHONY: ollamajs
ollamajs: tests/ollamajs/node_modules/ollama/package.json ## install the ollama npm client the e2e suite drives (npm ci, from the lock file)

tests/ollamajs/node_modules/ollama/package.json: tests/ollamajs/package-lock.json
	npm ci --prefix tests/ollamajs --no-audit --no-fund
	touch $@

.PHONY: fuzz
fuzz: ## fuzz the edge request decoder and the node URL parser for FUZZTIME each (default 10s)
	go test -run='^$$' -fuzz=FuzzUnmarshalChatRequest -fuzztime=$(FUZZTIME) ./services/meshkit/openaijson
	go test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./services/meshkit/nodeurl

.PHONY: ollama
ollama: ## build a real Ollama into bin/ (installs its build headers; several minutes the first time)
	BIN="$(BIN)" scripts/build-ollama.sh

.PHONY: consul
consul: ## build a real Consul agent into bin/ (several minutes the first time)
	BIN="$(BIN)" scripts/build-consul.sh

.PHONY: test-ollama
test-ollama: ollama ## the end-to-end suite against real Ollama servers serving tiny generated models
	go test -tags ollama -count=1 -timeout 20m ./tests/ollama/...

.PHONY: docker
docker: ## install Docker Engine (Debian docker.io) and build the compose plugin if missing, and start dockerd
	scripts/docker.sh

.PHONY: images
images: ## build the llmesh images FROM scratch from host-built static binaries (no registry needed)
	BIN="$(BIN)" scripts/images.sh

.PHONY: up
up: images ## docker compose up the local stack with the images just built (docker compose up alone builds them from source)
	docker compose up -d --no-build --wait

.PHONY: down
down: ## stop the local compose stack and remove its containers, networks and volumes
	docker compose down -v --remove-orphans

.PHONY: test-compose
test-compose: consul docker ## the compose stack for real: images, up --wait, SDK + gRPC, a node killed, Consul away, a second router
	go test -tags compose -count=1 -timeout 20m ./tests/compose/...

.PHONY: run
run: build ## run router, adapter and healthmon on 127.0.0.1 (NODES=file.yaml to choose nodes)
	NODES="$(NODES)" BIN="$(BIN)" scripts/run-local.sh

.PHONY: bench
bench: ## latency of direct vs through-the-mesh requests against a simulated node
	go test -run='^$$' -bench=. -benchtime=1x -timeout 10m ./tests/bench

.PHONY: clean
clean: ## remove bin/
	rm -rf $(BIN)
