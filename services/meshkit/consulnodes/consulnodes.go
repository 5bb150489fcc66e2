// Package consulnodes reads LLM nodes from Consul. An LLM node is one
// instance of a Consul service (default name "llm") whose Meta says what
// the adapter needs; credentials are named, never stored:
//
//	llmesh-kind                      ollama | openai | vllm | llamacpp | lmstudio | anthropic | auto (missing: auto); see nodespec.Kinds
//	llmesh-scheme                    http (default) | https
//	llmesh-base-path                 path prefix of the API, e.g. /v1 (optional; kind openai gets /v1 without it)
//	llmesh-api-key-env               name of the adapter's env var holding the key (optional)
//	llmesh-tls-server-name           TLS server name override for https (optional)
//	llmesh-tls-ca-file               CA bundle (PEM path on the adapter's machine) for https (optional)
//	llmesh-tls-cert-file             client certificate (PEM path) for mutual TLS (optional) ...
//	llmesh-tls-key-file              ... and its key (PEM path)
//	llmesh-tls-insecure-skip-verify  "true": no certificate verification (optional; the adapter warns)
//	llmesh-header-<Name>             an extra header and its (non-secret) value, e.g. llmesh-header-X-Org: foo
//	llmesh-env-header-<Name>         an extra header whose value the adapter reads from the env var named
//	llmesh-max-in-flight             cap on requests routers send it at once (optional; default: its kind's)
//	llmesh-num-parallel              requests it works on at once, when known (optional)
//	llmesh-group                     node group, for model aliases NAME=MODEL@GROUP (optional)
//
// A node of kind auto (or without llmesh-kind) is a node whose kind the
// adapter's probe recognises from its answers (Node.recognize_kind):
// until then an openai node, its base path the API base.
//
// The node's id is the service instance id, its address the service
// address (or the Consul node's address when the service has none) and
// its port the service port. Instances with bad Meta are returned as
// Invalid with the reason, never dropped silently.
package consulnodes

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
	"github.com/llmesh/llmesh/services/meshkit/nodeurl"
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
	MetaMaxInFlight   = "llmesh-max-in-flight"
	MetaNumParallel   = "llmesh-num-parallel"
	MetaGroup         = "llmesh-group"
	MetaTLSCAFile     = "llmesh-tls-ca-file"
	MetaTLSCertFile   = "llmesh-tls-cert-file"
	MetaTLSKeyFile    = "llmesh-tls-key-file"
	MetaTLSInsecure   = "llmesh-tls-insecure-skip-verify"
	// MetaHeaderPrefix + a header name: the header's value.
	MetaHeaderPrefix = "llmesh-header-"
	// MetaEnvHeaderPrefix + a header name: the env var with its value.
	MetaEnvHeaderPrefix = "llmesh-env-header-"
)

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
	kind, recognize, ok := nodespec.ParseKind(meta[MetaKind])
	if !ok {
		errs = append(errs, fmt.Errorf("meta %s %q: want %s", MetaKind, meta[MetaKind], nodespec.KindChoices))
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
	if v := meta[MetaAPIKeyEnv]; v != "" && !nodespec.ValidEnvName(v) {
		// The value is not quoted: it may be a key pasted by mistake.
		errs = append(errs, fmt.Errorf("meta %s: not an environment variable name (name the variable, never the key)", MetaAPIKeyEnv))
	}
	maxInFlight, err := count(meta, MetaMaxInFlight)
	errs = append(errs, err)
	numParallel, err := count(meta, MetaNumParallel)
	errs = append(errs, err)
	insecure := false
	switch v := meta[MetaTLSInsecure]; v {
	case "", "false":
	case "true":
		insecure = true
	default:
		errs = append(errs, fmt.Errorf("meta %s %q: want true or false", MetaTLSInsecure, v))
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
	n := &nodev1.Node{
		Id: s.ID, Kind: kind, RecognizeKind: recognize, BaseUrl: scheme + "://" + net.JoinHostPort(host, strconv.Itoa(s.Port)) + basePath,
		ApiKeyEnv: meta[MetaAPIKeyEnv], TlsServerName: meta[MetaTLSServerName], TlsCaFile: meta[MetaTLSCAFile],
		TlsCertFile: meta[MetaTLSCertFile], TlsKeyFile: meta[MetaTLSKeyFile], TlsInsecureSkipVerify: insecure,
		MaxInFlight: maxInFlight, NumParallel: numParallel, Group: meta[MetaGroup],
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		if name, ok := strings.CutPrefix(k, MetaHeaderPrefix); ok {
			n.Headers = append(n.Headers, &nodev1.Header{Name: name, Value: meta[k]})
		} else if name, ok := strings.CutPrefix(k, MetaEnvHeaderPrefix); ok {
			n.Headers = append(n.Headers, &nodev1.Header{Name: name, ValueEnv: meta[k]})
		}
	}
	return nodespec.Normalize(n)
}

// count reads an optional count from meta; nodespec checks its range.
func count(meta map[string]string, key string) (int32, error) {
	v, ok := meta[key]
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("meta %s %q: want a whole number", key, v)
	}
	return int32(n), nil
}

// Meta is the Meta to register for a node: the inverse of FromEntry.
func Meta(n *nodev1.Node) (map[string]string, error) {
	u, err := nodeurl.Parse(n.GetBaseUrl())
	if err != nil {
		return nil, err
	}
	m := map[string]string{MetaKind: nodespec.KindOf(n), MetaScheme: u.Scheme}
	set := func(key, v string) {
		if v != "" {
			m[key] = v
		}
	}
	set(MetaBasePath, u.Path)
	set(MetaTLSServerName, n.GetTlsServerName())
	set(MetaAPIKeyEnv, n.GetApiKeyEnv())
	set(MetaTLSCAFile, n.GetTlsCaFile())
	set(MetaTLSCertFile, n.GetTlsCertFile())
	set(MetaTLSKeyFile, n.GetTlsKeyFile())
	if n.GetTlsInsecureSkipVerify() {
		m[MetaTLSInsecure] = "true"
	}
	for _, h := range n.GetHeaders() {
		if h.GetValueEnv() != "" {
			m[MetaEnvHeaderPrefix+h.GetName()] = h.GetValueEnv()
		} else {
			m[MetaHeaderPrefix+h.GetName()] = h.GetValue()
		}
	}
	if v := n.GetMaxInFlight(); v > 0 {
		m[MetaMaxInFlight] = strconv.Itoa(int(v))
	}
	if v := n.GetNumParallel(); v > 0 {
		m[MetaNumParallel] = strconv.Itoa(int(v))
	}
	if v := n.GetGroup(); v != "" {
		m[MetaGroup] = v
	}
	return m, nil
}
