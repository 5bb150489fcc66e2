package nodeconn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newPool(t *testing.T, opts Options) *Pool {
	t.Helper()
	if opts.Trust == nil {
		opts.Trust = localSecrets(t)
	}
	p := NewPool(opts)
	t.Cleanup(p.Close)
	return p
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// refusedURL is the URL of a port nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return "http://" + addr
}

func TestPoolRejectsInvalidNodes(t *testing.T) {
	p := newPool(t, Options{})
	for _, n := range []*nodev1.Node{
		{Id: "b", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "ftp://h"},
		{Id: "b", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "http://user:sk-secret@h"},
		{Id: "b", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "http://h:1", TlsCaFile: "/ca.pem"},
		{Id: "b", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "http://h:1", Headers: []*nodev1.Header{{Name: "Host", Value: "x"}}},
	} {
		_, err := p.Client(n)
		e, ok := apierror.FromError(err)
		require.True(t, ok, "%v", n)
		assert.Equal(t, codes.InvalidArgument, e.Code)
		assert.Equal(t, "b", e.Node)
		assert.Contains(t, e.Message, "node b: ")
		assert.NotContains(t, e.Message, "sk-secret")
	}
}

func TestPoolCachesPerNodeDescription(t *testing.T) {
	var lookups atomic.Int32
	p := newPool(t, Options{LookupEnv: func(k string) (string, bool) {
		lookups.Add(1)
		return "sk-" + k, true
	}})
	n := &nodev1.Node{Id: "a", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "http://h:1", ApiKeyEnv: "KEY_A"}
	c1, err := p.Client(n)
	require.NoError(t, err)
	c2, err := p.Client(n)
	require.NoError(t, err)
	assert.Same(t, c1, c2)
	assert.EqualValues(t, 1, lookups.Load(), "the key is read once per client")

	moved := &nodev1.Node{Id: "a", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "http://h:2", ApiKeyEnv: "KEY_A"}
	c3, err := p.Client(moved)
	require.NoError(t, err)
	assert.NotSame(t, c1, c3)
	assert.Len(t, p.clients, 1, "a changed node replaces its old client")

	_, err = p.Client(&nodev1.Node{Id: "b", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "ftp://h"})
	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.InvalidArgument, e.Code)
	assert.Equal(t, "b", e.Node)
}

func TestPoolTransports(t *testing.T) {
	p := newPool(t, Options{})
	get := func(url, serverName string) http.RoundTripper {
		c, err := p.Client(&nodev1.Node{Id: url + serverName, Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url, TlsServerName: serverName})
		require.NoError(t, err)
		return c.transport
	}
	shared := get("http://a:1", "")
	assert.Same(t, shared, get("https://b:1", ""), "https without a server name shares the transport")
	_, err := p.Client(&nodev1.Node{Id: "c", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "http://c:1", TlsServerName: "x.example"})
	assert.ErrorContains(t, err, "tls settings need an https url")
	custom := get("https://d:1", "gpu.example")
	assert.NotSame(t, shared, custom)
	assert.Same(t, custom, get("https://e:1", "gpu.example"), "one transport per server name")

	tr := shared.(*http.Transport)
	assert.Equal(t, DefaultMaxIdleConnsPerHost, tr.MaxIdleConnsPerHost)
	assert.Equal(t, DefaultIdleConnTimeout, tr.IdleConnTimeout)
	assert.True(t, tr.ForceAttemptHTTP2)
}

func TestTLSServerName(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate()) // valid for example.com and 127.0.0.1
	p := newPool(t, Options{RootCAs: roots})

	get := func(serverName string) error {
		c, err := p.Client(&nodev1.Node{Id: "tls-" + serverName, Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL, TlsServerName: serverName})
		require.NoError(t, err)
		req, err := c.NewRequest(t.Context(), http.MethodGet, "/", nil)
		require.NoError(t, err)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	assert.NoError(t, get("example.com"))
	err := get("wrong.example")
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, apierror.ReasonUnreachable, e.Reason)
	assert.Contains(t, e.Message, "wrong.example")
	assert.NotContains(t, e.Message, srv.URL, "no URL in the cause")
}

func TestAPIKey(t *testing.T) {
	var gotAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	p := newPool(t, Options{LookupEnv: envMap(map[string]string{"NODE_KEY": "sk-secret", "EMPTY_KEY": ""})})

	c, err := p.Client(&nodev1.Node{Id: "k", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL, ApiKeyEnv: "NODE_KEY"})
	require.NoError(t, err)
	req, err := c.NewRequest(t.Context(), http.MethodGet, "/models", nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, "Bearer sk-secret", gotAuth.Load())

	// Anthropic's scheme: x-api-key, no Authorization.
	var gotKey atomic.Value
	asrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey.Store(r.Header.Get("x-api-key") + "|" + r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid key sk-secret"}}`)
	}))
	t.Cleanup(asrv.Close)
	ac, err := p.Client(&nodev1.Node{Id: "a", Kind: nodev1.Kind_KIND_ANTHROPIC, BaseUrl: asrv.URL, ApiKeyEnv: "NODE_KEY"})
	require.NoError(t, err)
	req, err = ac.NewRequest(t.Context(), http.MethodGet, "/v1/models", nil)
	require.NoError(t, err)
	_, err = ac.Do(req)
	assert.Equal(t, "sk-secret|", gotKey.Load())
	e, _ := apierror.FromError(err)
	assert.Equal(t, "invalid key [redacted]", e.Message, "a key the node echoes never leaves the adapter")
	assert.Equal(t, asrv.URL+"/v1/models", ac.URL("/v1/models"))
	assert.Equal(t, "NODE_KEY", ac.APIKeyEnv())

	for _, env := range []string{"EMPTY_KEY", "UNSET_KEY"} {
		c, err := p.Client(&nodev1.Node{Id: env, Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL, ApiKeyEnv: env})
		require.NoError(t, err, "a missing key is reported per request, not per client")
		_, err = c.NewRequest(t.Context(), http.MethodGet, "/models", nil)
		e, ok := apierror.FromError(err)
		require.True(t, ok)
		assert.Equal(t, codes.FailedPrecondition, e.Code)
		assert.Contains(t, e.Message, env)
	}
}

func TestStatusError(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		body        string
		code        codes.Code
		msg, typ    string
		param, errc string
	}{
		{"openai 404", 404, `{"error":{"message":"The model 'x' does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
			codes.NotFound, "The model 'x' does not exist", "invalid_request_error", "model", "model_not_found"},
		{"ollama 404", 404, `{"error":"model 'x' not found"}`, codes.NotFound, "model 'x' not found", "invalid_request_error", "", ""},
		{"ollama busy", 503, `{"error":"server busy, please try again.  maximum pending requests exceeded"}`,
			codes.Unavailable, "server busy, please try again.  maximum pending requests exceeded", "service_unavailable_error", "", ""},
		{"rate limit", 429, `{"error":{"message":"slow down","type":"rate_limit_error"}}`, codes.ResourceExhausted, "slow down", "rate_limit_error", "", ""},
		{"html", 502, "<html>\n<body>Bad   gateway</body></html>", codes.Unavailable, "HTTP 502 Bad Gateway: <html> <body>Bad gateway</body></html>", "server_error", "", ""},
		{"empty", 500, "", codes.Internal, "HTTP 500 Internal Server Error", "server_error", "", ""},
		{"long", 500, strings.Repeat("x", 2000), codes.Internal, "HTTP 500 Internal Server Error: " + strings.Repeat("x", maxErrorSnippet), "server_error", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c, err := newPool(t, Options{}).Client(&nodev1.Node{Id: "n1", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: srv.URL})
			require.NoError(t, err)
			req, err := c.NewRequest(t.Context(), http.MethodGet, "/x", nil)
			require.NoError(t, err)
			_, err = c.Do(req)
			var e *apierror.Error
			require.True(t, errors.As(err, &e), "%v", err)
			assert.Equal(t, tc.code, e.Code)
			assert.Equal(t, tc.status, e.HTTPStatus)
			assert.Equal(t, tc.msg, e.Message)
			assert.Equal(t, tc.typ, e.Type)
			assert.Equal(t, tc.param, e.Param)
			assert.Equal(t, tc.errc, e.ErrCode)
			assert.Equal(t, "n1", e.Node)
			assert.Equal(t, apierror.ReasonUpstream, e.Reason)
		})
	}
}

func TestTransportErrors(t *testing.T) {
	p := newPool(t, Options{})
	c, err := p.Client(&nodev1.Node{Id: "gone", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: refusedURL(t)})
	require.NoError(t, err)

	req, err := c.NewRequest(t.Context(), http.MethodGet, "/api/tags", nil)
	require.NoError(t, err)
	_, err = c.Do(req)
	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, apierror.ReasonUnreachable, e.Reason)
	assert.Equal(t, "connect: connection refused", e.Message)
	assert.Equal(t, "node gone: connect: connection refused", e.Error())

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req, err = c.NewRequest(ctx, http.MethodGet, "/api/tags", nil)
	require.NoError(t, err)
	_, err = c.Do(req)
	e, _ = apierror.FromError(err)
	assert.Equal(t, codes.Canceled, e.Code)

	ctx, cancel = context.WithTimeout(t.Context(), 0)
	defer cancel()
	req, err = c.NewRequest(ctx, http.MethodGet, "/api/tags", nil)
	require.NoError(t, err)
	_, err = c.Do(req)
	e, _ = apierror.FromError(err)
	assert.Equal(t, codes.DeadlineExceeded, e.Code)
}

func TestCause(t *testing.T) {
	assert.Equal(t, "unexpected EOF", Cause(io.ErrUnexpectedEOF))
	assert.Equal(t, "connection closed by the node", Cause(io.EOF))
	assert.Equal(t, "lookup nope.invalid: no such host", Cause(&net.DNSError{Name: "nope.invalid", Err: "no such host", IsNotFound: true}))
	assert.Equal(t, "connect: timeout", Cause(&net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}))
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestDescribe(t *testing.T) {
	assert.Equal(t, "GET /api/tags: HTTP 500", Describe("GET", "/api/tags", &apierror.Error{HTTPStatus: 500, Message: "HTTP 500 Internal Server Error"}))
	assert.Equal(t, "GET /v1/models: HTTP 401: bad key", Describe("GET", "/v1/models", &apierror.Error{HTTPStatus: 401, Message: "bad key"}))
	assert.Equal(t, "connect: connection refused", Describe("GET", "/", &apierror.Error{Message: "connect: connection refused", Reason: apierror.ReasonUnreachable}))
	assert.Equal(t, "plain", Describe("GET", "/", errors.New("plain")))
}

// stalledURL is the URL of a loopback listener whose accept queue is full:
// further connects get no answer (the kernel drops their SYNs), so a
// connect hangs until its timeout.
func stalledURL(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0)) // never accepted
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 8 { // fill the queue; those connects succeed or time out
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return "http://" + addr
}

func TestConnectTimeoutPerRequest(t *testing.T) {
	p := newPool(t, Options{ConnectTimeout: time.Hour})
	c, err := p.Client(&nodev1.Node{Id: "stalled", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: stalledURL(t)})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := c.NewRequest(WithConnectTimeout(ctx, 50*time.Millisecond), http.MethodGet, "/api/tags", nil)
	require.NoError(t, err)
	_, err = c.Do(req)
	require.Error(t, err)
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Unavailable, e.Code, "%v", err)
	assert.Contains(t, e.Message, "connect: timeout", "the connect gave up, not the request's minute")
}

// localSecrets binds the variables this package's tests name to the test
// servers' hosts, as the operator's -secret-env would.
func localSecrets(t testing.TB) *nodetrust.Policy {
	t.Helper()
	bind := []string{"127.0.0.1", "h"}
	p, err := nodetrust.New(nodetrust.Config{SecretEnv: map[string][]string{
		"EMPTY_KEY": bind, "KEY_A": bind, "NODE_KEY": bind, "NOT_SET": bind, "ORG": bind, "ORG_KEY": bind, "UNSET_KEY": bind,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
