package probe

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// answer is a canned HTTP answer.
type answer struct {
	status int
	body   string
}

func ok(body string) answer               { return answer{http.StatusOK, body} }
func fail(status int, body string) answer { return answer{status, body} }

// routes is a test node answering canned bodies by "METHOD /path"; any
// other path is a 404.
type routes map[string]answer

func (rs routes) serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, found := rs[r.Method+" "+r.URL.Path]
		if !found {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

const (
	version = `{"version":"0.17.4"}`
	tags    = `{"models":[
		{"name":"llama3:8b","model":"llama3:8b","modified_at":"2026-05-06T10:19:05.160446238-07:00","size":4661224676,"digest":"365c0bd3c000","details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"8.0B","quantization_level":"Q4_0"}},
		{"name":"nomic-embed-text:latest","model":"nomic-embed-text:latest","modified_at":"2026-01-02T03:04:05Z","size":274302450},
		{"name":"jmorgan/tiny:q4","model":"jmorgan/tiny:q4","modified_at":"2026-01-02T03:04:05Z","size":1000}]}`
	ps = `{"models":[{"name":"llama3:8b","model":"llama3:8b","size":5137025024,"size_vram":5137025024,"expires_at":"2026-06-04T14:38:31.83753-07:00","context_length":8192}]}`
)

func newProber(t *testing.T, timeout time.Duration, env map[string]string) *Prober {
	t.Helper()
	pool := nodeconn.NewPool(nodeconn.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Trust: localSecrets(t)})
	t.Cleanup(pool.Close)
	return New(pool, timeout)
}

func refusedURL(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return "http://" + addr
}

func TestOllamaUp(t *testing.T) {
	url := routes{"GET /api/version": ok(version), "GET /api/tags": ok(tags), "GET /api/ps": ok(ps)}.serve(t)
	before := time.Now()
	res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "o", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: url})
	require.NoError(t, err)
	assert.True(t, res.GetUp())
	assert.Equal(t, "ollama 0.17.4: 3 models, 1 loaded", res.GetReason())
	assert.Equal(t, "0.17.4", res.GetVersion())
	require.Len(t, res.GetModels(), 3)
	m := res.GetModels()[0]
	assert.Equal(t, "llama3:8b", m.GetId())
	assert.True(t, m.GetLoaded())
	assert.EqualValues(t, 8192, m.GetContextLength())
	assert.EqualValues(t, 4661224676, m.GetSizeBytes(), "the size on disk, from /api/tags")
	assert.EqualValues(t, 5137025024, m.GetLoadedSizeBytes(), "the size in memory, from /api/ps")
	assert.Equal(t, "gguf", m.GetFormat())
	assert.Equal(t, "llama", m.GetFamily())
	assert.Equal(t, []string{"llama"}, m.GetFamilies())
	assert.Equal(t, "8.0B", m.GetParameterSize())
	assert.Equal(t, "Q4_0", m.GetQuantizationLevel())
	assert.Zero(t, res.GetModels()[1].GetLoadedSizeBytes(), "not loaded")
	assert.Empty(t, res.GetModels()[1].GetFormat(), "no details reported")
	assert.Equal(t, time.Date(2026, 5, 6, 17, 19, 5, 0, time.UTC).Unix(), m.GetCreated())
	assert.Equal(t, "library", m.GetOwnedBy())
	assert.False(t, res.GetModels()[1].GetLoaded())
	assert.Empty(t, m.GetAliases(), "a tagged name has no alias")
	assert.Equal(t, "nomic-embed-text:latest", res.GetModels()[1].GetId())
	assert.Equal(t, []string{"nomic-embed-text"}, res.GetModels()[1].GetAliases(), ":latest may be left out")
	assert.Equal(t, "jmorgan", res.GetModels()[2].GetOwnedBy())

	probedAt := res.GetProbedAt().AsTime()
	assert.False(t, probedAt.Before(before.Truncate(time.Microsecond)), "probed_at %v before %v", probedAt, before)
	assert.False(t, probedAt.After(time.Now()))
	assert.Positive(t, res.GetLatencyMicros())
}

func TestOllama(t *testing.T) {
	cases := []struct {
		name    string
		routes  routes
		up      bool
		reason  string
		version string
		models  int
	}{
		{"ps fails", routes{"GET /api/version": ok(version), "GET /api/tags": ok(tags), "GET /api/ps": fail(500, `{"error":"boom"}`)},
			true, "ollama 0.17.4: 3 models, loaded unknown (GET /api/ps: HTTP 500: boom)", "0.17.4", 3},
		{"no models", routes{"GET /api/version": ok(version), "GET /api/tags": ok(`{"models":[]}`), "GET /api/ps": ok(`{"models":[]}`)},
			true, "ollama 0.17.4: 0 models", "0.17.4", 0},
		{"no version endpoint", routes{"GET /api/tags": ok(tags), "GET /api/ps": ok(ps)},
			true, "ollama: 3 models, 1 loaded", "", 3},
		{"tags fails", routes{"GET /api/version": ok(version), "GET /api/tags": fail(500, "")},
			false, "GET /api/tags: HTTP 500", "0.17.4", 0},
		{"tags is not json", routes{"GET /api/version": ok(version), "GET /api/tags": ok("<html>")},
			false, "GET /api/tags: invalid answer: invalid character '<' looking for beginning of value", "0.17.4", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.routes.serve(t)
			res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "o", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: url})
			require.NoError(t, err)
			assert.Equal(t, tc.up, res.GetUp())
			assert.Equal(t, tc.reason, res.GetReason())
			assert.Equal(t, tc.version, res.GetVersion())
			assert.Len(t, res.GetModels(), tc.models)
			for _, m := range res.GetModels() {
				if tc.name == "ps fails" {
					assert.False(t, m.GetLoaded(), m.GetId())
				}
			}
			assert.NotNil(t, res.GetProbedAt())
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	for _, kind := range []nodev1.Kind{nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_VLLM} {
		res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "x", Kind: kind, BaseUrl: refusedURL(t)})
		require.NoError(t, err)
		assert.False(t, res.GetUp())
		assert.Equal(t, "connect: connection refused", res.GetReason(), kind)
		assert.NotNil(t, res.GetProbedAt())
	}
}

const models = `{"object":"list","data":[{"id":"gpt-x","object":"model","created":1700000000,"owned_by":"acme"},{"id":"emb","object":"model","created":0,"owned_by":"acme"}]}`

func TestOpenAICompatible(t *testing.T) {
	cases := []struct {
		kind   nodev1.Kind
		path   string // base path of the node's URL
		loaded bool
		reason string
	}{
		{nodev1.Kind_KIND_OPENAI, "/v1", true, "openai: 2 models"},
		// An LM Studio without /api/v0: its OpenAI list, loaded unknown.
		{nodev1.Kind_KIND_LMSTUDIO, "", false, "lmstudio: 2 models, loaded unknown (no /api/v0)"},
	}
	for _, tc := range cases {
		t.Run(tc.kind.String(), func(t *testing.T) {
			var auth string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/models" {
					http.NotFound(w, r)
					return
				}
				auth = r.Header.Get("Authorization")
				_, _ = io.WriteString(w, models)
			}))
			t.Cleanup(srv.Close)
			p := newProber(t, 0, map[string]string{"KEY": "sk-1"})
			res, err := p.Probe(t.Context(), &nodev1.Node{Id: "n", Kind: tc.kind, BaseUrl: srv.URL + tc.path, ApiKeyEnv: "KEY"})
			require.NoError(t, err)
			assert.True(t, res.GetUp(), res.GetReason())
			assert.Equal(t, tc.reason, res.GetReason())
			assert.Equal(t, "Bearer sk-1", auth)
			require.Len(t, res.GetModels(), 2)
			m := res.GetModels()[0]
			assert.Equal(t, "gpt-x", m.GetId())
			assert.Equal(t, tc.loaded, m.GetLoaded())
			assert.EqualValues(t, 1700000000, m.GetCreated())
			assert.Equal(t, "acme", m.GetOwnedBy())
		})
	}
}

func TestOpenAIDown(t *testing.T) {
	url := routes{"GET /v1/models": fail(500, `{"error":{"message":"engine dead","type":"server_error"}}`)}.serve(t)
	res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url + "/v1"})
	require.NoError(t, err)
	assert.False(t, res.GetUp())
	assert.Equal(t, "GET /v1/models: HTTP 500: engine dead", res.GetReason())

	res, err = newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url + "/v1", ApiKeyEnv: "NO_SUCH_KEY"})
	require.NoError(t, err)
	assert.False(t, res.GetUp())
	assert.Contains(t, res.GetReason(), "NO_SUCH_KEY")
	assert.Equal(t, nodev1.Status_STATUS_MISCONFIGURED, res.GetStatus(), "an unset key variable is the operator's to fix")
}

func TestTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // hangs until the adapter gives up
	}))
	t.Cleanup(srv.Close)
	res, err := newProber(t, 50*time.Millisecond, nil).Probe(t.Context(), &nodev1.Node{Id: "slow", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: srv.URL})
	require.NoError(t, err)
	assert.False(t, res.GetUp())
	assert.Equal(t, "no answer within 50ms", res.GetReason())
	assert.GreaterOrEqual(t, res.GetLatencyMicros(), int64(50000))
}

// A caller whose deadline comes before the prober's timeout still gets a
// verdict on a node that never answers: the probe ends AnswerMargin (or
// half the time left) before the caller gives up.
func TestHungNodeIsAVerdictWithinTheCallersDeadline(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })
	var conns []net.Conn // accepted, never answered
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = lis.Close(); <-done })

	for _, tc := range []struct {
		name     string
		deadline time.Duration
		want     string
	}{
		{"margin", 1500 * time.Millisecond, "no answer within 1s"},
		{"half the time left", 400 * time.Millisecond, "no answer within 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tc.deadline)
			defer cancel()
			res, err := newProber(t, 5*time.Second, nil).Probe(ctx, &nodev1.Node{Id: "hung", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://" + lis.Addr().String()})
			require.NoError(t, err, "the prober answers before the caller's deadline")
			assert.False(t, res.GetUp())
			assert.Equal(t, tc.want, res.GetReason())
		})
	}
}

func TestCallerGone(t *testing.T) {
	url := routes{"GET /api/tags": ok(tags)}.serve(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newProber(t, 0, nil).Probe(ctx, &nodev1.Node{Id: "o", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: url})
	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.Canceled, e.Code)
}

func TestInvalidNode(t *testing.T) {
	p := newProber(t, 0, nil)
	_, err := p.Probe(t.Context(), &nodev1.Node{Id: "bad", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "gopher://x"})
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.InvalidArgument, e.Code)
	_, err = p.Probe(t.Context(), &nodev1.Node{Id: "bad", Kind: nodev1.Kind(42), BaseUrl: "http://x"})
	e, _ = apierror.FromError(err)
	assert.Equal(t, codes.InvalidArgument, e.Code)
}

func TestUnreadableTLSFileIsTheReason(t *testing.T) {
	res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "gw", Kind: nodev1.Kind_KIND_VLLM,
		BaseUrl: "https://127.0.0.1:1", TlsCaFile: "/nonexistent/llmesh-ca.pem"})
	require.NoError(t, err, "a node that cannot be reached as described is down, not a bad request")
	assert.False(t, res.GetUp())
	assert.Equal(t, "node gw: tls_ca_file /nonexistent/llmesh-ca.pem: no such file or directory", res.GetReason())
}

func TestTLSFailureIsTheReason(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "self-signed", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: srv.URL})
	require.NoError(t, err)
	assert.False(t, res.GetUp())
	assert.Contains(t, res.GetReason(), "tls: the node's certificate is signed by an unknown authority")
}

// localSecrets binds the variables this package's tests name to the test
// servers' hosts, as the operator's -secret-env would.
func localSecrets(t testing.TB) *nodetrust.Policy {
	t.Helper()
	bind := []string{"127.0.0.1", "h"}
	p, err := nodetrust.New(nodetrust.Config{SecretEnv: map[string][]string{
		"ANTHROPIC_API_KEY": bind, "KEY": bind, "NO_SUCH_KEY": bind, "OLLAMA_KEY": bind, "OPENAI_API_KEY": bind,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
