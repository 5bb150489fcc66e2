package consul

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/tests/consultest"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a plain HTTP server on loopback that records what it was
// sent and answers like an OpenAI-compatible API with no models.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(req.Context()))
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"object":"list","data":[]}`))
}

func (r *recorder) requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

// Whoever can register a service in Consul gets none of the adapter's
// secrets: a registration naming CONSUL_HTTP_TOKEN as its key, or a
// secret bound to another host as a header, is misconfigured and sent
// nothing; one at the cloud metadata address is never contacted.
func TestRogueRegistrationsGetNoSecrets(t *testing.T) {
	token := fmt.Sprintf("planted-consul-token-%d", time.Now().UnixNano())
	openaiKey := fmt.Sprintf("sk-planted-openai-%d", time.Now().UnixNano())
	agent := consultest.Start(t)
	c := agent.Client(t)
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true, Env: []string{
		// The test agent has no ACLs: the token is only something to steal.
		"CONSUL_HTTP_TOKEN=" + token, "OPENAI_API_KEY=" + openaiKey,
		"LLMESH_ADAPTER_SECRET_ENV=OPENAI_API_KEY=api.openai.com",
	}})

	llmesh(t, agent, "node", "register", "-id", "rogue-key", "-url", srv.URL+"/rogue-key/v1", "-kind", "openai", "-api-key-env", "CONSUL_HTTP_TOKEN")
	llmesh(t, agent, "node", "register", "-id", "rogue-header", "-url", srv.URL+"/rogue-header/v1", "-kind", "openai", "-header-env", "X-Steal=OPENAI_API_KEY")
	llmesh(t, agent, "node", "register", "-id", "metadata", "-url", "http://169.254.169.254/v1", "-kind", "openai")
	// A registration with no secret at the same server: it is probed, so
	// the server is reachable and the silence above means something.
	llmesh(t, agent, "node", "register", "-id", "honest", "-url", srv.URL+"/honest/v1", "-kind", "openai")

	for id, want := range map[string]string{
		"rogue-key":    "misconfigured: api key variable CONSUL_HTTP_TOKEN is not a secret the adapter may send",
		"rogue-header": "misconfigured: header X-Steal: variable secret OPENAI_API_KEY may only be sent to api.openai.com, not to 127.0.0.1",
		"metadata":     "misconfigured: address 169.254.169.254 refused by the adapter's node allowlist (-node-allow)",
	} {
		require.Eventually(t, func() bool {
			st, out := check(t, c, id)
			return st == api.HealthCritical && strings.Contains(out, want)
		}, 10*time.Second, 20*time.Millisecond, id)
	}
	require.Eventually(t, func() bool {
		st, _ := check(t, c, "honest")
		return st == api.HealthPassing
	}, 10*time.Second, 20*time.Millisecond)

	reqs := rec.requests()
	require.NotEmpty(t, reqs, "the honest node was probed")
	for _, r := range reqs {
		assert.True(t, strings.HasPrefix(r.URL.Path, "/honest/"), "a rogue node was contacted: %s", r.URL.Path)
		for name, values := range r.Header {
			for _, v := range values {
				assert.NotContains(t, v, token, "header %s", name)
				assert.NotContains(t, v, openaiKey, "header %s", name)
			}
		}
	}
	for _, name := range []string{"adapter", "healthmon", "router"} {
		for _, l := range m.Logs(name) {
			assert.NotContains(t, l, token, "%s logged the token", name)
			assert.NotContains(t, l, openaiKey, "%s logged the key", name)
		}
	}
}
