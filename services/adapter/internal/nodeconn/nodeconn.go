// Package nodeconn gives each LLM node a ready HTTP client: its description
// validated once, its base URL parsed once (meshkit/nodeurl), its API key
// and secret header values read once from the adapter's environment, its
// TLS files read once, and a tuned, keep-alive connection pool shared by
// every node with the same TLS configuration (tlsconfig.go). Every node is
// checked against the adapter's nodetrust.Policy: a variable it may not
// send to the node's host, or an address it may not connect to (checked
// when dialling), and nothing is sent.
//
// It also turns what an HTTP exchange with a node can go wrong into an
// *apierror.Error with the gRPC code the cause deserves (errors.go), with
// the node's secrets redacted from whatever the node sent back
// (redact.go).
package nodeconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
	"github.com/llmesh/llmesh/services/meshkit/nodeurl"
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
	// LookupEnv reads the adapter's environment for API keys and secret
	// header values; default os.LookupEnv. Tests pass a map.
	LookupEnv func(string) (string, bool)
	// ReadFile reads a node's TLS files; default os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Log receives the warning about nodes whose certificate is not
	// verified; default: discarded.
	Log *slog.Logger
	// ConnectTimeout bounds a TCP connect (default 5s).
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a node's response headers.
	// Zero (the default) leaves it to the caller's deadline: a cold model
	// load can legitimately take minutes before the first byte.
	ResponseHeaderTimeout time.Duration
	// RootCAs verifies https nodes that name no tls_ca_file; nil means the
	// system roots.
	RootCAs *x509.CertPool
	// TLSRecheck is how often a node's TLS files are read again to notice
	// a rotation (default DefaultTLSRecheck).
	TLSRecheck time.Duration
	// Trust says which variables may be sent to which hosts and which
	// addresses may be connected to; nil means nodetrust's defaults (no
	// secrets; loopback and private addresses).
	Trust *nodetrust.Policy
}

// Pool hands out one Client per node description and shares transports
// between them: one for every node with default TLS, one per distinct
// custom TLS configuration. It is safe for concurrent use.
type Pool struct {
	opts Options
	base *http.Transport // every node with default TLS

	mu      sync.Mutex
	clients map[string]*Client       // by node description (clientKey)
	byID    map[string]string        // node id -> its current description
	tls     map[tlsKey]*tlsTransport // per custom TLS configuration
	warned  map[string]bool          // node ids warned about skipped verification
}

// NewPool returns a pool whose clients share one tuned transport.
func NewPool(opts Options) *Pool {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.TLSRecheck <= 0 {
		opts.TLSRecheck = DefaultTLSRecheck
	}
	if opts.Trust == nil {
		opts.Trust, _ = nodetrust.New(nodetrust.Config{}) // the defaults are valid
	}
	return &Pool{
		opts:    opts,
		base:    newTransport(opts, &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}),
		clients: map[string]*Client{},
		byID:    map[string]string{},
		tls:     map[tlsKey]*tlsTransport{},
		warned:  map[string]bool{},
	}
}

type (
	connectTimeoutKey  struct{}
	responseTimeoutKey struct{}
)

// WithResponseTimeout bounds the wait for the node's response headers,
// for requests made under ctx, to d: for calls the node answers in one
// piece when done (embeddings, a model's description), where no first
// token shows the node at work. A node that runs out of it is hung:
// UNAVAILABLE with reason NODE_ANSWER_FAILED. d ≤ 0 leaves the wait to
// the caller's deadline.
func WithResponseTimeout(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	return context.WithValue(ctx, responseTimeoutKey{}, d)
}

// errNoResponse cancels a request whose response did not come within its
// WithResponseTimeout.
var errNoResponse = errors.New("no response in time")

// WithConnectTimeout makes connections opened for requests made under ctx
// give up connecting after d instead of the pool's ConnectTimeout.
func WithConnectTimeout(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	return context.WithValue(ctx, connectTimeoutKey{}, d)
}

func newTransport(opts Options, tlsConf *tls.Config) *http.Transport {
	dialer := opts.Trust.Dialer(net.Dialer{KeepAlive: 30 * time.Second})
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		limit, ok := ctx.Value(connectTimeoutKey{}).(time.Duration)
		if !ok {
			limit = opts.ConnectTimeout
		}
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		return dialer(ctx, network, addr)
	}
	return &http.Transport{
		Proxy:                 opts.Trust.Proxy(http.ProxyFromEnvironment),
		DialContext:           dial,
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

// clientKey is everything about a node that changes how it is reached, in
// a deterministic encoding.
func clientKey(n *nodev1.Node) string {
	conn := &nodev1.Node{
		Id: n.GetId(), Kind: n.GetKind(), BaseUrl: n.GetBaseUrl(), ApiKeyEnv: n.GetApiKeyEnv(),
		TlsServerName: n.GetTlsServerName(), TlsCaFile: n.GetTlsCaFile(), TlsCertFile: n.GetTlsCertFile(),
		TlsKeyFile: n.GetTlsKeyFile(), TlsInsecureSkipVerify: n.GetTlsInsecureSkipVerify(), Headers: n.GetHeaders(),
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(conn)
	return string(b)
}

// Client returns the client for n, creating it on first use. The node's
// description is checked here (INVALID_ARGUMENT) and its TLS files read
// (FAILED_PRECONDITION naming the node and the file when one is unreadable
// or invalid; a failure is not cached, so a fixed file is picked up by the
// next call). A missing API key or header variable is not an error here:
// every request reports it (see Client.NewRequest), so a probe says so too.
//
// Every call checks the node against the pool's Trust: a variable the
// adapter may not send to the node's host, or an IP address the allowlist
// refuses, is FAILED_PRECONDITION naming the variable and the host
// (nodetrust.IsRefusal), and no client is made, so nothing is sent.
func (p *Pool) Client(n *nodev1.Node) (*Client, error) {
	key := clientKey(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		if err := p.trusted(n, c.host); err != nil {
			return nil, err
		}
		return c, nil
	}
	if err := nodespec.Validate(n); err != nil {
		return nil, apierror.New(codes.InvalidArgument, "node %s: %s", n.GetId(), OneLine(err)).WithNode(n.GetId())
	}
	base, err := nodeurl.Parse(n.GetBaseUrl())
	if err != nil { // Validate has checked it already
		return nil, apierror.Wrap(codes.InvalidArgument, err).WithNode(n.GetId())
	}
	if err := p.trusted(n, base.Host); err != nil {
		return nil, err
	}
	transport, err := p.transportLocked(n, base.Scheme)
	if err != nil {
		return nil, apierror.New(codes.FailedPrecondition, "node %s: %w", n.GetId(), err).WithNode(n.GetId())
	}
	c := &Client{id: n.GetId(), kind: n.GetKind(), base: base.StdURL(), host: base.Host, http: &http.Client{Transport: traced(transport)}, transport: transport, keyEnv: n.GetApiKeyEnv()}
	c.readSecrets(n, p.opts.LookupEnv)
	if n.GetTlsInsecureSkipVerify() && !p.warned[n.GetId()] {
		p.warned[n.GetId()] = true
		p.opts.Log.Warn("TLS certificate verification is OFF for this node (tls_insecure_skip_verify): anyone on the path can read and change its traffic, its API key included",
			"node", n.GetId(), "url", c.base.String())
	}
	// A node whose description changed replaces its old client, so the
	// cache holds one entry per node id.
	if old, ok := p.byID[n.GetId()]; ok {
		delete(p.clients, old)
	}
	p.clients[key] = c
	p.byID[n.GetId()] = key
	return c, nil
}

// trusted checks that every variable n names may be sent to host and, for
// an IP address, that it is allowed (a name is checked when dialled).
func (p *Pool) trusted(n *nodev1.Node, host string) error {
	refuse := func(what string, err error) error {
		return apierror.New(codes.FailedPrecondition, "%s%w", what, err).WithNode(n.GetId())
	}
	if err := p.opts.Trust.Host(host); err != nil {
		return refuse("", err)
	}
	if env := n.GetApiKeyEnv(); env != "" {
		if err := p.opts.Trust.Secret(env, host); err != nil {
			return refuse("api key variable ", err)
		}
	}
	for _, h := range n.GetHeaders() {
		if env := h.GetValueEnv(); env != "" {
			if err := p.opts.Trust.Secret(env, host); err != nil {
				return refuse("header "+http.CanonicalHeaderKey(h.GetName())+": variable ", err)
			}
		}
	}
	return nil
}

// readSecrets reads the node's API key and secret header values from the
// environment. A variable that is unset becomes the error of every
// request.
func (c *Client) readSecrets(n *nodev1.Node, lookupEnv func(string) (string, bool)) {
	fail := func(msg string) {
		if c.setupErr == nil {
			c.setupErr = apierror.New(codes.FailedPrecondition, "%s", msg).WithNode(c.id)
		}
	}
	if env := n.GetApiKeyEnv(); env != "" {
		if v, _ := lookupEnv(env); strings.TrimSpace(v) != "" {
			c.apiKey = strings.TrimSpace(v)
			c.secrets = append(c.secrets, c.apiKey)
		} else {
			fail(fmt.Sprintf("api key variable %s is not set in the adapter's environment", env))
		}
	}
	for _, h := range n.GetHeaders() {
		hv := header{name: http.CanonicalHeaderKey(h.GetName()), value: h.GetValue()}
		if env := h.GetValueEnv(); env != "" {
			v, _ := lookupEnv(env)
			v = strings.TrimSpace(v)
			if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
				fail(fmt.Sprintf("header %s: variable %s is not set in the adapter's environment (or holds a control character)", hv.name, env))
				continue
			}
			hv.value = v
			c.secrets = append(c.secrets, v)
		}
		c.headers = append(c.headers, hv)
	}
}

// Close drops idle connections of every transport.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base.CloseIdleConnections()
	for _, t := range p.tls {
		t.closeIdle()
	}
}

// OneLine is a (joined) error's message on one line, parts separated by
// "; ".
func OneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// Client is one node's HTTP client. It is safe for concurrent use.
type Client struct {
	id   string
	kind nodev1.Kind
	base *url.URL
	host string // base's host, as meshkit/nodeurl parses it
	http *http.Client
	// transport is the pool's transport under http's tracing one.
	transport http.RoundTripper
	apiKey    string
	headers   []header
	keyEnv    string
	secrets   []string // values never to be shown: the key, secret header values
	setupErr  error    // a variable the node names is unset: every request fails with it
}

// header is one extra header with its value resolved.
type header struct{ name, value string }

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

// Redact replaces the node's secrets (its API key, secret header values)
// in s, so that a node echoing them in a message cannot leak them.
func (c *Client) Redact(s string) string { return c.redact(s) }

// BasePath is the path of the node's base URL, without a trailing slash.
func (c *Client) BasePath() string { return c.base.Path }

// NewRequest builds a request for path (relative to the base URL, starting
// with "/") bound to ctx, with the node's extra headers and its API key as
// a Bearer token. It fails with FAILED_PRECONDITION when a variable the
// node names (its API key, a header value) is unset.
func (c *Client) NewRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if c.setupErr != nil {
		return nil, c.setupErr
	}
	u := *c.base
	u.Path = c.base.Path + path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, apierror.New(codes.Internal, "%s %s: %w", method, path, err).WithNode(c.id)
	}
	req.Header.Set("User-Agent", "llmesh-adapter")
	for _, h := range c.headers {
		req.Header.Set(h.name, h.value)
	}
	if c.apiKey != "" {
		if c.kind == nodev1.Kind_KIND_ANTHROPIC {
			req.Header.Set("x-api-key", c.apiKey) // Anthropic's scheme
		} else {
			req.Header.Set("Authorization", "Bearer "+c.apiKey)
		}
	}
	return req, nil
}

// Do sends req. It returns the response only for a 2xx status; any other
// status is read, closed and returned as an *apierror.Error (see
// StatusError), and a failure to get an answer is mapped by TransportError
// — with reason NODE_ANSWER_FAILED when the node had taken the whole
// request (it closed or reset the connection instead of answering, or
// sent no response within the context's WithResponseTimeout).
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	caller := req.Context()
	var wrote atomic.Bool
	ctx := httptrace.WithClientTrace(caller, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { wrote.Store(info.Err == nil) },
	})
	limit, bounded := caller.Value(responseTimeoutKey{}).(time.Duration)
	cancel := context.CancelCauseFunc(func(error) {})
	var timer *time.Timer
	if bounded {
		ctx, cancel = context.WithCancelCause(ctx)
		timer = time.AfterFunc(limit, func() { cancel(errNoResponse) })
	}
	resp, err := c.http.Do(req.WithContext(ctx))
	if bounded && !timer.Stop() && caller.Err() == nil {
		// The wait ran out, even if the headers came just after.
		if err == nil {
			resp.Body.Close()
		}
		cancel(nil)
		return nil, apierror.AnswerFailed(c.id, "no response within %s", limit)
	}
	if err != nil {
		cancel(nil)
		if re := (*nodetrust.RefusedError)(nil); errors.As(err, &re) {
			// The allowlist refused the address the host resolved to:
			// nothing was sent, and probing again will not help.
			return nil, apierror.New(codes.FailedPrecondition, "%w", re).WithNode(c.id)
		}
		if wrote.Load() {
			return nil, c.droppedError(caller, err)
		}
		return nil, c.TransportError(caller, err)
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, c.StatusError(resp)
	}
	return resp, nil
}

// cancelOnClose releases a response's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// traced sends the W3C trace context to the node (so vLLM and others
// join the request's trace) and makes a client span per node request.
func traced(t http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(t, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + r.URL.Path
	}))
}
