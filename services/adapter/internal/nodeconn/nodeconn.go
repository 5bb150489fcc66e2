// Package nodeconn gives each LLM node a ready HTTP client: its base URL
// parsed and validated once, its API key read once from the adapter's
// environment, and a shared, tuned, keep-alive connection pool.
//
// It also turns what an HTTP exchange with a node can go wrong into an
// *apierror.Error with the gRPC code the cause deserves (see errors.go).
package nodeconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// Defaults of the shared transport.
const (
	DefaultConnectTimeout      = 5 * time.Second
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultIdleConnTimeout     = 90 * time.Second
	DefaultMaxIdleConnsPerHost = 256
	DefaultMaxIdleConns        = 1024
)

// Options tune a Pool. The zero value is usable: every field has a default.
type Options struct {
	// LookupEnv reads the adapter's environment for API keys; default
	// os.LookupEnv. Tests pass a map.
	LookupEnv func(string) (string, bool)
	// ConnectTimeout bounds a TCP connect (default 5s).
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a node's response headers.
	// Zero (the default) leaves it to the caller's deadline: a cold model
	// load can legitimately take minutes before the first byte.
	ResponseHeaderTimeout time.Duration
	// RootCAs verifies https nodes; nil means the system roots. Tests and
	// private CAs set it.
	RootCAs *x509.CertPool
}

// Pool hands out one Client per node description and shares transports
// between them. It is safe for concurrent use.
type Pool struct {
	opts Options
	base *http.Transport // every node without a custom TLS server name

	mu      sync.Mutex
	clients map[clientKey]*Client
	byID    map[string]clientKey       // the current description of a node id
	tls     map[string]*http.Transport // per custom TLS server name
}

// clientKey is everything about a node that changes how it is reached.
type clientKey struct {
	id, baseURL, apiKeyEnv, tlsServerName string
	kind                                  nodev1.Kind
}

// NewPool returns a pool whose clients share one tuned transport.
func NewPool(opts Options) *Pool {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	return &Pool{
		opts:    opts,
		base:    newTransport(opts, &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}),
		clients: map[clientKey]*Client{},
		byID:    map[string]clientKey{},
		tls:     map[string]*http.Transport{},
	}
}

func newTransport(opts Options, tlsConf *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          DefaultMaxIdleConns,
		MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		IdleConnTimeout:       DefaultIdleConnTimeout,
		TLSHandshakeTimeout:   DefaultTLSHandshakeTimeout,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		TLSClientConfig:       tlsConf,
	}
}

// Client returns the client for n, creating it on first use. The node's
// base URL is validated here; an invalid one is INVALID_ARGUMENT. A missing
// API key is not an error here: it is reported by every request (see
// Client.NewRequest), so a probe can say so too.
func (p *Pool) Client(n *nodev1.Node) (*Client, error) {
	key := clientKey{
		id: n.GetId(), baseURL: n.GetBaseUrl(), kind: n.GetKind(),
		apiKeyEnv: n.GetApiKeyEnv(), tlsServerName: n.GetTlsServerName(),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		return c, nil
	}
	base, err := ParseBaseURL(key.baseURL)
	if err != nil {
		return nil, &apierror.Error{Code: codes.InvalidArgument, Message: err.Error(), Node: key.id}
	}
	c := &Client{id: key.id, kind: key.kind, base: base, keyEnv: key.apiKeyEnv}
	if env := key.apiKeyEnv; env != "" {
		if v, _ := p.opts.LookupEnv(env); strings.TrimSpace(v) != "" {
			c.apiKey = strings.TrimSpace(v)
		} else {
			c.keyErr = &apierror.Error{
				Code:    codes.FailedPrecondition,
				Message: fmt.Sprintf("api key variable %s is not set in the adapter's environment", env),
				Node:    key.id,
			}
		}
	}
	c.http = &http.Client{Transport: p.transportLocked(base, key.tlsServerName)}
	// A node whose description changed replaces its old client, so the
	// cache holds one entry per node id.
	if old, ok := p.byID[key.id]; ok {
		delete(p.clients, old)
	}
	p.clients[key] = c
	p.byID[key.id] = key
	return c, nil
}

func (p *Pool) transportLocked(base *url.URL, serverName string) *http.Transport {
	if base.Scheme != "https" || serverName == "" {
		return p.base
	}
	if t, ok := p.tls[serverName]; ok {
		return t
	}
	t := newTransport(p.opts, &tls.Config{ServerName: serverName, RootCAs: p.opts.RootCAs, MinVersion: tls.VersionTLS12})
	p.tls[serverName] = t
	return t
}

// Close drops idle connections of every transport.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base.CloseIdleConnections()
	for _, t := range p.tls {
		t.CloseIdleConnections()
	}
}

// ParseBaseURL validates a node base URL: scheme http or https, a host, no
// credentials, query or fragment. The path is kept without a trailing slash.
func ParseBaseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("base_url is empty")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url.Error repeats the URL; the parse cause alone is enough.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("base_url is not a URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("base_url scheme %q: want http or https", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("base_url has no host")
	case u.User != nil:
		return nil, fmt.Errorf("base_url must not carry credentials; name an env var in api_key_env")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("base_url must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Client is one node's HTTP client. It is safe for concurrent use.
type Client struct {
	id     string
	kind   nodev1.Kind
	base   *url.URL
	http   *http.Client
	apiKey string
	keyEnv string
	keyErr error
}

// NodeID is the node's id.
func (c *Client) NodeID() string { return c.id }

// Kind is the node's kind.
func (c *Client) Kind() nodev1.Kind { return c.kind }

// URL is the address of path below the node's base URL, for messages
// (a base URL never carries credentials).
func (c *Client) URL(path string) string {
	u := *c.base
	u.Path = c.base.Path + path
	return u.String()
}

// APIKeyEnv names the adapter's variable holding the node's key ("" when
// the node has none), for messages that tell the operator what to check.
func (c *Client) APIKeyEnv() string { return c.keyEnv }

// Redact replaces the node's API key in s, so that a node echoing the key
// in an error message cannot leak it.
func (c *Client) Redact(s string) string {
	if c.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, c.apiKey, "[redacted]")
}

// BasePath is the path of the node's base URL, without a trailing slash.
func (c *Client) BasePath() string { return c.base.Path }

// NewRequest builds a request for path (relative to the base URL, starting
// with "/") bound to ctx, with the node's API key as a Bearer token. It
// fails with FAILED_PRECONDITION when the node's API key variable is unset.
func (c *Client) NewRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if c.keyErr != nil {
		return nil, c.keyErr
	}
	u := *c.base
	u.Path = c.base.Path + path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, &apierror.Error{Code: codes.Internal, Message: fmt.Sprintf("%s %s: %v", method, path, err), Node: c.id}
	}
	if c.apiKey != "" {
		if c.kind == nodev1.Kind_KIND_ANTHROPIC {
			req.Header.Set("x-api-key", c.apiKey) // Anthropic's scheme
		} else {
			req.Header.Set("Authorization", "Bearer "+c.apiKey)
		}
	}
	req.Header.Set("User-Agent", "llmesh-adapter")
	return req, nil
}

// Do sends req. It returns the response only for a 2xx status; any other
// status is read, closed and returned as an *apierror.Error (see
// StatusError), and a failure to get an answer is mapped by TransportError.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.TransportError(req.Context(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, c.StatusError(resp)
	}
	return resp, nil
}
