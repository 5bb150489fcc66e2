package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/llmesh/llmesh/tests/otlptest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// usage is the usage block of an OpenAI answer.
type usage struct {
	Prompt     int64 `json:"prompt_tokens"`
	Completion int64 `json:"completion_tokens"`
}

// tracedChat posts a chat carrying its own W3C traceparent and returns
// the trace id, the usage the client got and the node that answered.
func tracedChat(t *testing.T, url string) (traceID string, u usage, node string) {
	t.Helper()
	id, span := make([]byte, 16), make([]byte, 8)
	_, _ = rand.Read(id)
	_, _ = rand.Read(span)
	traceID = hex.EncodeToString(id)
	req, err := http.NewRequestWithContext(meshtest.Context(t, 10*time.Second), http.MethodPost, url+"/v1/chat/completions", strings.NewReader(chatM))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+hex.EncodeToString(span)+"-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		Usage             usage  `json:"usage"`
		SystemFingerprint string `json:"system_fingerprint"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return traceID, body.Usage, strings.TrimPrefix(body.SystemFingerprint, "simnode-")
}

// One chat that fails over from a dead node to a live one is one trace
// across router and adapter, with a span per attempt, and the live node
// is sent that trace's traceparent.
func TestTraceAcrossFailover(t *testing.T) {
	recv := otlptest.Start(t)
	a := meshtest.StartNode(t, "a", simnode.Config{Models: []string{"m"}, Tokens: 3})
	b := meshtest.StartNode(t, "b", simnode.Config{Models: []string{"m"}, Tokens: 3})
	m := meshtest.Start(t, bins, []*meshtest.Node{a, b}, meshtest.Options{Env: recv.Env(),
		HealthmonArgs: []string{"-probe-interval", "1h"}, RouterArgs: []string{"-policy", "round-robin"}})
	a.Kill()
	type sent struct {
		usage       usage
		traceparent string
	}
	requests := map[string]sent{}
	for range 2 { // round robin: one of them starts on a and fails over to b
		id, u, node := tracedChat(t, m.RESTURL)
		require.Equal(t, "b", node)
		requests[id] = sent{usage: u, traceparent: b.LastHeader(http.MethodPost, "/v1/chat/completions").Get("traceparent")}
	}

	var attempts []otlptest.Span
	var traceID string
	require.Eventually(t, func() bool {
		for id := range requests {
			attempts = attempts[:0]
			for _, s := range recv.Spans() {
				if _, ok := s.Attr("llmesh.attempt"); ok && hex.EncodeToString(s.GetTraceId()) == id {
					attempts = append(attempts, s)
				}
			}
			if len(attempts) == 2 {
				traceID = id
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "no trace with two attempt spans")
	slices.SortFunc(attempts, func(x, y otlptest.Span) int {
		nx, _ := x.Attr("llmesh.attempt")
		ny, _ := y.Attr("llmesh.attempt")
		return int(nx.GetIntValue() - ny.GetIntValue())
	})
	str := func(s otlptest.Span, k string) string { v, _ := s.Attr(k); return v.GetStringValue() }
	assert.Equal(t, "llmesh-router", attempts[0].Service)
	assert.Equal(t, "chat m", attempts[0].GetName())
	assert.Equal(t, "a", str(attempts[0], "llmesh.node.id"))
	assert.Equal(t, "NODE_UNREACHABLE", str(attempts[0], "llmesh.attempt.outcome"))
	assert.Equal(t, "ollama", str(attempts[0], "gen_ai.provider.name"))
	assert.Equal(t, "b", str(attempts[1], "llmesh.node.id"))
	assert.Equal(t, "ok", str(attempts[1], "llmesh.attempt.outcome"))
	assert.Equal(t, "NODE_UNREACHABLE", str(attempts[1], "llmesh.failover.reason"))

	// The node got the trace's traceparent.
	assert.Contains(t, requests[traceID].traceparent, "-"+traceID+"-", "traceparent the live node got")

	// The adapter's spans are in the same trace, and the request span
	// carries the usage the client got.
	require.Eventually(t, func() bool {
		for _, s := range recv.Spans() {
			if s.Service == "llmesh-adapter" && hex.EncodeToString(s.GetTraceId()) == traceID {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "no adapter span in the failover's trace")
	var op *otlptest.Span
	for _, s := range recv.Spans() {
		_, attempt := s.Attr("llmesh.attempt")
		if _, isOp := s.Attr("llmesh.attempts"); isOp && !attempt && hex.EncodeToString(s.GetTraceId()) == traceID {
			op = &s
		}
	}
	require.NotNil(t, op, "no request span")
	in, _ := op.Attr("gen_ai.usage.input_tokens")
	out, _ := op.Attr("gen_ai.usage.output_tokens")
	want := requests[traceID].usage
	require.NotZero(t, want.Completion)
	assert.Equal(t, want.Prompt, in.GetIntValue())
	assert.Equal(t, want.Completion, out.GetIntValue())
	assert.Equal(t, "chat", str(*op, "gen_ai.operation.name"))
	assert.Equal(t, "m", str(*op, "gen_ai.request.model"))

	// Metrics go over OTLP too.
	require.Eventually(t, func() bool {
		return slices.Contains(recv.MetricServices("gen_ai.server.time_to_first_token"), "llmesh-router")
	}, 10*time.Second, 50*time.Millisecond, "no TTFT metric over OTLP")
}

// scrape parses the Prometheus text at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequestWithContext(meshtest.Context(t, 5*time.Second), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sum adds a family's values (a histogram's count, or its sum when
// sumOf) over the series whose labels include want.
func sum(fams map[string]*dto.MetricFamily, name string, sumOf bool, want map[string]string) float64 {
	var total float64
	for _, m := range fams[name].GetMetric() {
		match := true
		for k, v := range want {
			match = match && label(m, k) == v
		}
		switch {
		case !match:
		case m.GetHistogram() != nil && sumOf:
			total += m.GetHistogram().GetSampleSum()
		case m.GetHistogram() != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		}
	}
	return total
}

// The router's /metrics: GenAI histograms count every request and its
// tokens, the failover is counted once, the node status follows a kill,
// and a model no node reports never becomes a label.
func TestPrometheusMetrics(t *testing.T) {
	a := meshtest.StartNode(t, "a", simnode.Config{Models: []string{"m"}, Tokens: 3})
	b := meshtest.StartNode(t, "b", simnode.Config{Models: []string{"m"}, Tokens: 3})
	m := meshtest.Start(t, bins, []*meshtest.Node{a, b}, meshtest.Options{
		HealthmonArgs: []string{"-probe-interval", "1h"}, RouterArgs: []string{"-policy", "round-robin"}})
	metrics := m.RouterAdminURL + "/metrics"
	const ttft, tokens, failovers, status = "gen_ai_server_time_to_first_token_seconds", "gen_ai_client_token_usage", "llmesh_router_failovers_total", "llmesh_node_status"
	before := scrape(t, metrics)
	assert.Equal(t, 1.0, sum(before, status, false, map[string]string{"llmesh_node_id": "a", "state": "up"}), "a is up")

	a.Kill()
	var in, out int64
	const n = 3
	for range n {
		_, u, _ := tracedChat(t, m.RESTURL)
		in, out = in+u.Prompt, out+u.Completion
	}
	unknown := fmt.Sprintf("no-such-model-%d", time.Now().UnixNano())
	resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions",
		`{"model":"`+unknown+`","messages":[{"role":"user","content":"hi"}]}`)
	resp.Body.Close()
	require.NotEqual(t, http.StatusOK, resp.StatusCode)

	after := scrape(t, metrics)
	chat := map[string]string{"gen_ai_operation_name": "chat", "gen_ai_request_model": "m"}
	assert.Equal(t, float64(n), sum(after, ttft, false, chat)-sum(before, ttft, false, chat), "TTFT count rose by the requests")
	assert.Equal(t, float64(in), sum(after, tokens, true, map[string]string{"gen_ai_token_type": "input"}), "input tokens")
	assert.Equal(t, float64(out), sum(after, tokens, true, map[string]string{"gen_ai_token_type": "output"}), "output tokens")
	assert.Equal(t, 1.0, sum(after, failovers, false, map[string]string{"llmesh_reason": "NODE_UNREACHABLE"}), "failovers")
	assert.Equal(t, 1.0, sum(after, failovers, false, nil), "failovers")
	for _, f := range after {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				assert.NotContains(t, l.GetValue(), unknown, "%s has the client's model name as a label", f.GetName())
			}
		}
	}
	assert.Equal(t, 1.0, sum(after, "llmesh_router_requests_total", false, map[string]string{"gen_ai_request_model": "other", "llmesh_edge": "openai"}),
		"the unknown model's request is counted as other")

	// The router told healthmon of the refusal; the gauge follows.
	require.Eventually(t, func() bool {
		f := scrape(t, metrics)
		return sum(f, status, false, map[string]string{"llmesh_node_id": "a", "state": "down"}) == 1 &&
			sum(f, status, false, map[string]string{"llmesh_node_id": "a", "state": "up"}) == 0
	}, 10*time.Second, 50*time.Millisecond, "node a's status gauge never went down")
}
