// Package nodesfile is the static source of LLM nodes: a YAML nodes file,
// or, when there is none, the OPENAI_BASE_URL / OPENAI_API_KEY convention,
// or else the local Ollama on its default port.
package nodesfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"gopkg.in/yaml.v3"
)

// DefaultOllamaURL is where Ollama listens by default.
const DefaultOllamaURL = "http://127.0.0.1:11434"

// File is the YAML document:
//
//	nodes:
//	  - id: gpu-1
//	    kind: ollama          # ollama | openai | vllm | llamacpp | lmstudio | anthropic
//	    url: http://10.0.0.5:11434
//	    api_key_env: GPU1_KEY # optional: the adapter's env var with the key
//	    tls_server_name: ""   # optional
type File struct {
	Nodes []Entry `yaml:"nodes"`
}

// Entry is one node in the file.
type Entry struct {
	ID            string `yaml:"id"`
	Kind          string `yaml:"kind"`
	URL           string `yaml:"url"`
	APIKeyEnv     string `yaml:"api_key_env"`
	TLSServerName string `yaml:"tls_server_name"`
}

var kinds = map[string]nodev1.Kind{
	"ollama":    nodev1.Kind_KIND_OLLAMA,
	"openai":    nodev1.Kind_KIND_OPENAI,
	"vllm":      nodev1.Kind_KIND_VLLM,
	"llamacpp":  nodev1.Kind_KIND_LLAMACPP,
	"lmstudio":  nodev1.Kind_KIND_LMSTUDIO,
	"anthropic": nodev1.Kind_KIND_ANTHROPIC,
}

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	envPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

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

// Parse decodes and validates a nodes file. Unknown keys are errors: a
// typo in a node's settings must not silently drop them.
func Parse(data []byte) ([]*nodev1.Node, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(f.Nodes) == 0 {
		return nil, errors.New("no nodes: the file must list at least one node under `nodes:`")
	}
	var errs []error
	seen := map[string]bool{}
	var out []*nodev1.Node
	for i, e := range f.Nodes {
		n, err := e.Node()
		if err != nil {
			errs = append(errs, fmt.Errorf("nodes[%d]: %w", i, err))
			continue
		}
		if seen[n.GetId()] {
			errs = append(errs, fmt.Errorf("nodes[%d]: duplicate id %q", i, n.GetId()))
			continue
		}
		seen[n.GetId()] = true
		out = append(out, n)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Node validates e and returns the node it describes.
func (e Entry) Node() (*nodev1.Node, error) {
	var errs []error
	if !idPattern.MatchString(e.ID) {
		errs = append(errs, fmt.Errorf("id %q: want 1-64 letters, digits, '.', '_' or '-'", e.ID))
	}
	kind, ok := kinds[strings.ToLower(e.Kind)]
	if !ok {
		errs = append(errs, fmt.Errorf("kind %q: want ollama, openai, vllm, llamacpp, lmstudio or anthropic", e.Kind))
	}
	if err := checkURL(e.URL); err != nil {
		errs = append(errs, err)
	}
	if e.APIKeyEnv != "" && !envPattern.MatchString(e.APIKeyEnv) {
		// The value is not echoed: it may be a key pasted by mistake.
		errs = append(errs, errors.New("api_key_env: not an environment variable name (give the variable's name, never the key)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &nodev1.Node{Id: e.ID, Kind: kind, BaseUrl: strings.TrimRight(e.URL, "/"), ApiKeyEnv: e.APIKeyEnv, TlsServerName: e.TLSServerName}, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("url is required")
	case err != nil:
		return fmt.Errorf("url %q: %w", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url %q: scheme must be http or https", raw)
	case u.Host == "":
		return fmt.Errorf("url %q: host is required", raw)
	case u.User != nil:
		return fmt.Errorf("url %q: credentials do not belong in the url; use api_key_env", u.Redacted())
	}
	return nil
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
// key when set); else the local Ollama.
func Resolve(path string, env Env) ([]*nodev1.Node, error) {
	switch {
	case path != "":
		return Load(path)
	case env.OpenAIBaseURL != "":
		if err := checkURL(env.OpenAIBaseURL); err != nil {
			return nil, fmt.Errorf("OPENAI_BASE_URL: %w", err)
		}
		n := &nodev1.Node{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: strings.TrimRight(env.OpenAIBaseURL, "/")}
		if env.OpenAIKeyIsSet {
			n.ApiKeyEnv = "OPENAI_API_KEY"
		}
		return []*nodev1.Node{n}, nil
	default:
		return []*nodev1.Node{{Id: "ollama", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: DefaultOllamaURL}}, nil
	}
}
