// Package meshkit is the root of what every llmesh service shares: the
// node-error model (apierror), the OpenAI JSON codec (openaijson), gRPC
// server bootstrap (grpcserver) and logging set-up (logging), and how a
// node is described: its kinds and checks (nodespec), the nodes file
// (nodesfile) and Consul's registrations (consulnodes).
package meshkit
