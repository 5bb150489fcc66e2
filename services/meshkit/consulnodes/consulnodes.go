// Package consulnodes reads LLM nodes from Consul. An LLM node is one
// instance of a Consul service (default name "llm") whose Meta says what
// the adapter needs; credentials are named, never stored:
//
//	llmesh-kind             ollama | openai | vllm | llamacpp | lmstudio | anthropic (required)
//	llmesh-scheme           http (default) | https
//	llmesh-base-path        path prefix of the API, e.g. /v1 (optional; kind openai usually needs it)
//	llmesh-tls-server-name  TLS server name override for https (optional)
//	llmesh-api-key-env      name of the adapter's env var holding the key (optional)
//
// The node's id is the service instance id, its address the service
// address (or the Consul node's address when the service has none) and
// its port the service port. Instances with bad Meta are returned as
// Invalid with the reason, never dropped silently.
package consulnodes

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// DefaultService is the Consul service name of LLM nodes.
const DefaultService = "llm"

// Meta keys.
const (
	MetaKind          = "llmesh-kind"
	MetaScheme        = "llmesh-scheme"
	MetaBasePath      = "llmesh-base-path"
	MetaTLSServerName = "llmesh-tls-server-name"
	MetaAPIKeyEnv     = "llmesh-api-key-env"
)

// Kinds maps the llmesh-kind values to node kinds.
var Kinds = map[string]nodev1.Kind{
	"ollama":    nodev1.Kind_KIND_OLLAMA,
	"openai":    nodev1.Kind_KIND_OPENAI,
	"vllm":      nodev1.Kind_KIND_VLLM,
	"llamacpp":  nodev1.Kind_KIND_LLAMACPP,
	"lmstudio":  nodev1.Kind_KIND_LMSTUDIO,
	"anthropic": nodev1.Kind_KIND_ANTHROPIC,
}

// KindName is the llmesh-kind value of k ("" when unknown).
func KindName(k nodev1.Kind) string {
	for name, kind := range Kinds {
		if kind == k {
			return name
		}
	}
	return ""
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Invalid is a service instance that cannot be used as an LLM node.
type Invalid struct {
	ID     string // the service instance id
	Node   string // the Consul node it is registered on
	Reason string
}

// FromEntries turns a health query's entries into nodes, sorted by id.
// Duplicate ids (the same service id on two Consul nodes) after the first
// are invalid: a node id must name one node.
func FromEntries(entries []*api.ServiceEntry) ([]*nodev1.Node, []Invalid) {
	var nodes []*nodev1.Node
	var invalid []Invalid
	seen := map[string]string{}
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		consulNode := ""
		if e.Node != nil {
			consulNode = e.Node.Node
		}
		n, err := FromEntry(e)
		switch {
		case err != nil:
			invalid = append(invalid, Invalid{ID: e.Service.ID, Node: consulNode, Reason: err.Error()})
		case seen[n.GetId()] != "":
			invalid = append(invalid, Invalid{ID: e.Service.ID, Node: consulNode,
				Reason: fmt.Sprintf("service id %q is also registered on Consul node %q", n.GetId(), seen[n.GetId()])})
		default:
			seen[n.GetId()] = consulNode
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, func(a, b *nodev1.Node) int { return strings.Compare(a.GetId(), b.GetId()) })
	return nodes, invalid
}

// FromEntry turns one service instance into a node, or says what is wrong
// with its registration (every problem at once).
func FromEntry(e *api.ServiceEntry) (*nodev1.Node, error) {
	s := e.Service
	meta := s.Meta
	var errs []error
	kind, ok := Kinds[meta[MetaKind]]
	if !ok {
		errs = append(errs, fmt.Errorf("meta %s %q: want ollama, openai, vllm, llamacpp, lmstudio or anthropic", MetaKind, meta[MetaKind]))
	}
	scheme := meta[MetaScheme]
	if scheme == "" {
		scheme = "http"
	}
	if scheme != "http" && scheme != "https" {
		errs = append(errs, fmt.Errorf("meta %s %q: want http or https", MetaScheme, scheme))
	}
	basePath := meta[MetaBasePath]
	if basePath != "" && (!strings.HasPrefix(basePath, "/") || strings.ContainsAny(basePath, "?#")) {
		errs = append(errs, fmt.Errorf("meta %s %q: want a path such as /v1", MetaBasePath, basePath))
	}
	keyEnv := meta[MetaAPIKeyEnv]
	if keyEnv != "" && !envName.MatchString(keyEnv) {
		// The value is not quoted: it may be a key pasted by mistake.
		errs = append(errs, fmt.Errorf("meta %s: not an environment variable name (name the variable, never the key)", MetaAPIKeyEnv))
	}
	host := s.Address
	if host == "" && e.Node != nil {
		host = e.Node.Address
	}
	if host == "" {
		errs = append(errs, errors.New("no address: the service and its Consul node have none"))
	}
	if s.Port <= 0 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: the service must have a port", s.Port))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(s.Port)), Path: strings.TrimRight(basePath, "/")}
	return &nodev1.Node{Id: s.ID, Kind: kind, BaseUrl: u.String(), ApiKeyEnv: keyEnv, TlsServerName: meta[MetaTLSServerName]}, nil
}

// Meta is the Meta to register for a node: the inverse of FromEntry.
func Meta(n *nodev1.Node) (map[string]string, error) {
	u, err := url.Parse(n.GetBaseUrl())
	if err != nil {
		return nil, err
	}
	m := map[string]string{MetaKind: KindName(n.GetKind()), MetaScheme: u.Scheme}
	if p := strings.TrimRight(u.Path, "/"); p != "" {
		m[MetaBasePath] = p
	}
	if v := n.GetTlsServerName(); v != "" {
		m[MetaTLSServerName] = v
	}
	if v := n.GetApiKeyEnv(); v != "" {
		m[MetaAPIKeyEnv] = v
	}
	return m, nil
}
