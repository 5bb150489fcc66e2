package nodecli

import (
	"io"

	"github.com/llmesh/llmesh/services/meshkit/config"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
	"github.com/llmesh/llmesh/services/meshkit/nodesfile"
)

// The flags of `llmesh node …` describe one node for one invocation, so
// they read no environment variable by the rule (an exported LLMESH_NODE_ID
// would silently pick the node a later command acts on); only -service,
// the mesh-wide Consul service name, reads LLMESH_CONSUL_SERVICE as the
// services do.

func serviceFlag(s *config.Set, p *string) {
	s.String(p, "service", consulnodes.DefaultService, "Consul service name of LLM nodes").Env(config.EnvConsulService)
}

func registerFlags(e *nodesfile.Entry, service *string, lookup func(string) (string, bool), stderr io.Writer) *config.Set {
	s := config.NewCommand("llmesh node register", lookup, stderr)
	s.String(&e.ID, "id", "", "node id, unique in the mesh (e.g. gpu-1)")
	s.String(&e.URL, "url", "", "node URL (e.g. http://10.0.0.5:11434; for kind openai the API base with /v1)")
	s.String(&e.Kind, "kind", "", "ollama, openai, vllm, llamacpp, lmstudio, anthropic, or auto (the default: recognised from its answers)")
	s.String(&e.APIKeyEnv, "api-key-env", "", "the adapter's environment variable holding the node's API key (sent only if the adapter binds it to the node's host: adapter -secret-env)")
	s.String(&e.TLSServerName, "tls-server-name", "", "TLS server name override")
	s.Func("max-in-flight", "cap on requests the mesh sends the node at once (0: the kind's default)", int32Flag(&e.MaxInFlight))
	s.Func("num-parallel", "requests the node works on at once (OLLAMA_NUM_PARALLEL, llama-server --parallel), when known", int32Flag(&e.NumParallel))
	s.String(&e.Group, "group", "", "node group, for model aliases NAME=MODEL@GROUP")
	s.String(&e.TLSCAFile, "tls-ca-file", "", "CA bundle (PEM path on the adapter's machine) that verifies the node")
	s.String(&e.TLSCertFile, "tls-cert-file", "", "client certificate (PEM path on the adapter's machine) for mutual TLS")
	s.String(&e.TLSKeyFile, "tls-key-file", "", "the client certificate's key (PEM path on the adapter's machine)")
	s.Bool(&e.TLSInsecureSkipVerify, "tls-insecure-skip-verify", false, "do not verify the node's certificate (the adapter logs a warning)")
	e.Headers = map[string]nodesfile.HeaderValue{}
	s.List("header", "extra header 'Name: value' sent to the node (repeatable; not for secrets)", headerFlag(e.Headers, false))
	s.List("header-env", "extra header 'Name=VAR' whose value the adapter reads from its env var VAR (repeatable; bound like -api-key-env)", headerFlag(e.Headers, true))
	serviceFlag(s, service)
	return s
}

func deregisterFlags(id, service *string, lookup func(string) (string, bool), stderr io.Writer) *config.Set {
	s := config.NewCommand("llmesh node deregister", lookup, stderr)
	s.String(id, "id", "", "node id")
	serviceFlag(s, service)
	return s
}

func listFlags(service *string, lookup func(string) (string, bool), stderr io.Writer) *config.Set {
	s := config.NewCommand("llmesh node list", lookup, stderr)
	serviceFlag(s, service)
	return s
}
