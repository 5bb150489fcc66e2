module github.com/llmesh/llmesh/services/adapter

go 1.26.0

require (
	github.com/llmesh/llmesh/gen/go v0.0.0
	github.com/llmesh/llmesh/services/meshkit v0.0.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261019180522-ce908d29299b // indirect
)

// The workspace (go.work) provides these; the replaces keep the module
// buildable on its own (GOWORK=off) and stop the go command from asking
// the proxy for v0.0.0, which does not exist.
replace (
	github.com/llmesh/llmesh/gen/go => ../../gen/go
	github.com/llmesh/llmesh/services/meshkit => ../meshkit
)
