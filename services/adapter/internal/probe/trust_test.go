package probe

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
)

// A node that names a variable the adapter may not send to its host, or
// that is at an address the allowlist refuses, is misconfigured with the
// reason, and the node is never contacted.
func TestProbeRefusesUntrusted(t *testing.T) {
	const secret = "planted-consul-token-0123456789"
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		assert.NotContains(t, r.Header, "Authorization")
		_, _ = w.Write([]byte(`{"object":"list","data":[]}`))
	}))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	trust, err := nodetrust.New(nodetrust.Config{SecretEnv: map[string][]string{"OPENAI_API_KEY": {"api.openai.com"}}})
	require.NoError(t, err)
	onlyTen, err := nodetrust.New(nodetrust.Config{Allow: []string{"10.0.0.0/8"}})
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		trust *nodetrust.Policy
		node  *nodev1.Node
		want  string
	}{
		{"variable that is no secret", trust,
			&nodev1.Node{Id: "rogue", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL + "/v1", ApiKeyEnv: "CONSUL_HTTP_TOKEN"},
			"api key variable CONSUL_HTTP_TOKEN is not a secret the adapter may send"},
		{"secret bound to another host, as a header", trust,
			&nodev1.Node{Id: "rogue", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL + "/v1", Headers: []*nodev1.Header{{Name: "x-steal", ValueEnv: "OPENAI_API_KEY"}}},
			"header X-Steal: variable secret OPENAI_API_KEY may only be sent to api.openai.com, not to 127.0.0.1"},
		{"cloud metadata address", trust,
			&nodev1.Node{Id: "meta", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "http://169.254.169.254/v1"},
			"address 169.254.169.254 refused by the adapter's node allowlist (-node-allow)"},
		{"name resolving to a refused address", onlyTen,
			&nodev1.Node{Id: "rebound", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "http://localhost" + port + "/v1"},
			"address localhost ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := nodeconn.NewPool(nodeconn.Options{Trust: tc.trust, LookupEnv: func(string) (string, bool) { return secret, true }})
			t.Cleanup(pool.Close)
			res, err := New(pool, 0).Probe(t.Context(), tc.node)
			require.NoError(t, err)
			assert.False(t, res.GetUp())
			assert.Equal(t, nodev1.Status_STATUS_MISCONFIGURED, res.GetStatus(), res.GetReason())
			assert.Contains(t, res.GetReason(), tc.want)
			assert.NotContains(t, res.GetReason(), secret)
			assert.Zero(t, calls.Load(), "the node was contacted")
		})
	}
}
