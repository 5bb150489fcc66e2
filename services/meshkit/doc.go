// Package meshkit is the root of what every llmesh service shares: the
// node-error model (apierror), the OpenAI JSON codec (openaijson), gRPC
// server bootstrap (grpcserver) and logging set-up (logging).
package meshkit
