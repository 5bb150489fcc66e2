package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatewayNode is an OpenAI-compatible node behind a gateway, on TLS with
// its own CA, that wants an API key and two extra headers — and that
// echoes the credentials it got in its errors, as some gateways do.
type gatewayNode struct {
	key, org string
	authOK   atomic.Int64 // requests that came with the right key and headers
}

func (g *gatewayNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	echo := fmt.Sprintf("Incorrect API key provided: %s (org %s)", r.Header.Get("Authorization"), r.Header.Get("X-Api-Org"))
	if r.Header.Get("Authorization") == "Bearer "+g.key && r.Header.Get("X-Api-Org") == g.org && r.Header.Get("X-Org") == "foo" {
		g.authOK.Add(1)
	}
	fail := func(status int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"message": echo, "type": "invalid_request_error", "param": r.Header.Get("X-Api-Org"), "code": "invalid_api_key"}})
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"echo-401","object":"model","created":0,"owned_by":"gw"},{"id":"echo-stream","object":"model","created":0,"owned_by":"gw"}]}`)
	case r.Method == http.MethodGet: // the misconfigured node's model list
		fail(http.StatusUnauthorized)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"echo-stream"`) {
			fail(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"echo-stream","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}`+"\n\n")
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": "key revoked mid-stream: " + echo, "type": "server_error"}})
		_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
	default:
		http.NotFound(w, r)
	}
}

// Keys never appear in any log of any service nor in any answer, even
// when a node echoes them back; meanwhile the node gets them, with its
// extra headers, over TLS verified with the node's own CA.
func TestSecretsNeverLeave(t *testing.T) {
	key := fmt.Sprintf("sk-llmesh-planted-%d", time.Now().UnixNano())
	org := fmt.Sprintf("org-planted-%d", time.Now().UnixNano())
	gw := &gatewayNode{key: key, org: org}
	srv := httptest.NewUnstartedServer(gw)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "gw-ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	extra := "    api_key_env: GW_KEY\n    tls_ca_file: " + caFile + "\n    headers:\n      X-Org: foo\n      X-Api-Org: {env: GW_ORG}\n"
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{
		{ID: "gw", Kind: "openai", URL: srv.URL + "/v1", Models: []string{"echo-401", "echo-stream"}, Extra: extra},
		{ID: "gw-misconfigured", Kind: "openai", URL: srv.URL + "/bad/v1", Extra: extra},
		{ID: "gw-insecure", Kind: "openai", URL: srv.URL + "/v1", Models: []string{"echo-401"},
			Extra: "    api_key_env: GW_KEY\n    tls_insecure_skip_verify: true\n"},
	}, meshtest.Options{Env: []string{
		"GW_KEY=" + key, "GW_ORG=" + org,
		"LLMESH_LOG_LEVEL=debug", "LLMESH_ADAPTER_LOG_LEVEL=debug",
	}})
	// gw-insecure serves the same models from the same server, so the mesh
	// may list them before gw itself has been probed.
	m.WaitRouterView(t, func(nodes map[string]meshtest.RouterNode) bool { return nodes["gw"].Status == "up" })
	assert.Positive(t, gw.authOK.Load(), "the node got the key and both headers over TLS")

	ctx := meshtest.Context(t, 30*time.Second)
	var answers []string
	read := func(resp *http.Response) string {
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		answers = append(answers, string(b))
		return string(b)
	}
	chat := func(model string, stream bool) *http.Response {
		return post(t, ctx, m.RESTURL+"/v1/chat/completions",
			fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`, model, stream))
	}

	resp := chat("echo-401", false)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, read(resp), "Incorrect API key provided: Bearer [redacted] (org [redacted])", "the node's message passes, its secrets do not")

	resp = chat("echo-401", true)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, read(resp), "Bearer [redacted]")

	resp = chat("echo-stream", true)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, read(resp), `data: {"error":`, "the mid-stream error event (its text masked by the router as internal)")

	resp = chat("echo-stream", false)
	assert.GreaterOrEqual(t, resp.StatusCode, 400)
	read(resp)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.RESTURL+"/v1/models", nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	read(resp)

	// The node refusing the key is misconfigured, and healthmon has logged
	// why — with the echoed secrets redacted.
	require.Eventually(t, func() bool {
		return strings.Contains(strings.Join(m.Logs("healthmon"), ""), `/bad/v1/models: invalid API key (Incorrect API key provided: Bearer [redacted] (org [redacted])) — check GW_KEY`)
	}, 10*time.Second, 50*time.Millisecond)

	// Unverified TLS works and is warned about once, however often the node
	// is probed.
	require.Eventually(t, func() bool {
		return strings.Count(strings.Join(m.Logs("adapter"), ""), "node=gw-insecure up=true") >= 3
	}, 10*time.Second, 50*time.Millisecond)
	adapterLog := strings.Join(m.Logs("adapter"), "")
	assert.Equal(t, 1, strings.Count(adapterLog, "verification is OFF"), adapterLog)
	assert.Contains(t, adapterLog, `level=WARN msg="TLS certificate verification is OFF for this node`)

	for _, a := range answers {
		assert.NotContains(t, a, key)
		assert.NotContains(t, a, org)
	}
	for _, name := range []string{"adapter", "healthmon", "router"} {
		logs := m.Logs(name)
		require.NotEmpty(t, logs, name)
		for _, l := range logs {
			assert.NotEmpty(t, l)
			assert.NotContains(t, l, key, "%s logged the key", name)
			assert.NotContains(t, l, org, "%s logged a secret header value", name)
		}
	}
	assert.Contains(t, strings.Join(m.Logs("adapter"), ""), `err="key revoked mid-stream: Incorrect API key provided: Bearer [redacted] (org [redacted])"`,
		"the adapter logged the node's mid-stream failure, redacted")
	assert.Contains(t, strings.Join(m.Logs("router"), ""), "Bearer [redacted]", "so did the router")
}
