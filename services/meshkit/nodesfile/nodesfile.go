// Package nodesfile is the static source of LLM nodes: a YAML nodes file,
// or, when there is none, the OPENAI_BASE_URL / OPENAI_API_KEY convention,
// or else the local Ollama on its default port. healthmon loads it; the
// llmesh CLI checks the node it registers with the same rules (Entry).
package nodesfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
	"gopkg.in/yaml.v3"
)

// DefaultOllamaURL is where Ollama listens by default.
const DefaultOllamaURL = "http://127.0.0.1:11434"

// File is the YAML document:
//
//	nodes:
//	  - id: gpu-1
//	    kind: ollama          # ollama | openai | vllm | llamacpp | lmstudio | anthropic | auto (the default)
//	    url: http://10.0.0.5:11434   # any form meshkit/nodeurl accepts
//	    api_key_env: GPU1_KEY # optional: the adapter's env var with the key
//	    tls_server_name: ""   # optional, https only
//	    tls_ca_file: /etc/llmesh/ca.pem        # optional: CA bundle (PEM) on the adapter's machine
//	    tls_cert_file: /etc/llmesh/client.pem  # optional: client certificate (mutual TLS) ...
//	    tls_key_file: /etc/llmesh/client.key   # ... and its key
//	    tls_insecure_skip_verify: false        # optional: no verification (logs a warning)
//	    headers:              # optional: sent with every request
//	      X-Org: foo          # a value that is not secret
//	      X-Api-Org: {env: ORG_KEY}  # a secret: the adapter's env var holding it
//	    max_in_flight: 8      # optional: cap on requests at once (default: the kind's)
//	    num_parallel: 2       # optional: OLLAMA_NUM_PARALLEL / llama-server --parallel
//	    group: gpu            # optional: node group for model aliases (NAME=MODEL@GROUP)
type File struct {
	Nodes []Entry `yaml:"nodes"`
}

// Entry is one node in the file.
type Entry struct {
	ID                    string                 `yaml:"id"`
	Kind                  string                 `yaml:"kind"`
	URL                   string                 `yaml:"url"`
	APIKeyEnv             string                 `yaml:"api_key_env"`
	TLSServerName         string                 `yaml:"tls_server_name"`
	TLSCAFile             string                 `yaml:"tls_ca_file"`
	TLSCertFile           string                 `yaml:"tls_cert_file"`
	TLSKeyFile            string                 `yaml:"tls_key_file"`
	TLSInsecureSkipVerify bool                   `yaml:"tls_insecure_skip_verify"`
	Headers               map[string]HeaderValue `yaml:"headers"`
	MaxInFlight           int32                  `yaml:"max_in_flight"`
	NumParallel           int32                  `yaml:"num_parallel"`
	Group                 string                 `yaml:"group"`
}

// HeaderValue is a header's value in the file: a plain string, or
// {env: NAME} for a secret the adapter reads from its environment.
type HeaderValue struct {
	Value string
	Env   string
}

// UnmarshalYAML reads a string or an {env: NAME} mapping.
func (h *HeaderValue) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Decode(&h.Value)
	case yaml.MappingNode:
		if len(n.Content) != 2 || n.Content[0].Value != "env" {
			return fmt.Errorf("line %d: a header value is a string or {env: VARIABLE}", n.Line)
		}
		return n.Content[1].Decode(&h.Env)
	}
	return fmt.Errorf("line %d: a header value is a string or {env: VARIABLE}", n.Line)
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Load reads nodes from path. Every problem in the file is reported at once.
func Load(path string) ([]*nodev1.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nodes file: %w", err)
	}
	nodes, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("nodes file %s: %w", path, err)
	}
	return nodes, nil
}

// Parse decodes and validates a nodes file, reporting every problem at
// once. Unknown keys are errors: a typo in a node's settings must not
// silently drop them.
func Parse(data []byte) ([]*nodev1.Node, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var errs []error
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		// Unknown keys and wrongly typed values leave the rest decoded:
		// report them with everything else. Broken YAML does not.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err
		}
		for _, msg := range te.Errors {
			errs = append(errs, errors.New(msg))
		}
	}
	if len(f.Nodes) == 0 && len(errs) == 0 {
		return nil, errors.New("no nodes: the file must list at least one node under `nodes:`")
	}
	seen := map[string]bool{}
	var out []*nodev1.Node
	for i, e := range f.Nodes {
		dup := e.ID != "" && seen[e.ID]
		if dup {
			errs = append(errs, fmt.Errorf("nodes[%d]: duplicate id %q", i, e.ID))
		}
		seen[e.ID] = true
		n, err := e.Node()
		if err != nil {
			errs = append(errs, fmt.Errorf("nodes[%d]: %w", i, err))
			continue
		}
		if !dup {
			out = append(out, n)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Node validates e and returns the node it describes, its URL in
// canonical form for its kind (see nodeurl.ForKind).
func (e Entry) Node() (*nodev1.Node, error) {
	var errs []error
	if !idPattern.MatchString(e.ID) {
		errs = append(errs, fmt.Errorf("id %q: want 1-64 letters, digits, '.', '_' or '-'", e.ID))
	}
	kind, recognize, ok := nodespec.ParseKind(strings.ToLower(e.Kind)) // any case
	if !ok {
		errs = append(errs, fmt.Errorf("kind %q: want %s", e.Kind, nodespec.KindChoices))
	}
	n := &nodev1.Node{
		Id: e.ID, Kind: kind, RecognizeKind: recognize, BaseUrl: e.URL, ApiKeyEnv: e.APIKeyEnv, TlsServerName: e.TLSServerName,
		TlsCaFile: e.TLSCAFile, TlsCertFile: e.TLSCertFile, TlsKeyFile: e.TLSKeyFile, TlsInsecureSkipVerify: e.TLSInsecureSkipVerify,
		MaxInFlight: e.MaxInFlight, NumParallel: e.NumParallel, Group: e.Group,
	}
	for _, name := range slices.Sorted(maps.Keys(e.Headers)) {
		v := e.Headers[name]
		n.Headers = append(n.Headers, &nodev1.Header{Name: name, Value: v.Value, ValueEnv: v.Env})
	}
	norm, err := nodespec.Normalize(n)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return norm, nil
}

// Env is the part of the environment the fallbacks read.
type Env struct {
	OpenAIBaseURL  string // OPENAI_BASE_URL
	OpenAIKeyIsSet bool   // OPENAI_API_KEY is non-empty
}

// FromEnv reads Env from the process environment.
func FromEnv() Env {
	return Env{OpenAIBaseURL: os.Getenv("OPENAI_BASE_URL"), OpenAIKeyIsSet: os.Getenv("OPENAI_API_KEY") != ""}
}

// Resolve picks the node list: the nodes file when path is set; else one
// OpenAI-compatible node from OPENAI_BASE_URL (with OPENAI_API_KEY as its
// key when set), whose kind the probe recognises (Ollama's /v1, vLLM, …);
// else the local Ollama.
func Resolve(path string, env Env) ([]*nodev1.Node, error) {
	switch {
	case path != "":
		return Load(path)
	case env.OpenAIBaseURL != "":
		n := &nodev1.Node{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: env.OpenAIBaseURL}
		if env.OpenAIKeyIsSet {
			n.ApiKeyEnv = "OPENAI_API_KEY"
		}
		n, err := nodespec.Normalize(n)
		if err != nil {
			return nil, fmt.Errorf("OPENAI_BASE_URL: %w", err)
		}
		return []*nodev1.Node{n}, nil
	default:
		return []*nodev1.Node{{Id: "ollama", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: DefaultOllamaURL}}, nil
	}
}
