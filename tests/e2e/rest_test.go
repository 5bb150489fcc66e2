package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/loopport"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func post(t *testing.T, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeError(t *testing.T, resp *http.Response) errorBody {
	t.Helper()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e errorBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	require.NotEmpty(t, e.Error.Message)
	return e
}

// events reads SSE events ("data: ..." payloads) until the body ends.
func events(t *testing.T, body io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(body)
	var blankAfterData = true
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: "):
			require.True(t, blankAfterData, "events must be separated by a blank line")
			out = append(out, strings.TrimPrefix(line, "data: "))
			blankAfterData = false
		case line == "":
			blankAfterData = true
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return out
}

func TestRESTEdge(t *testing.T) {
	m, alpha, _ := twoNodes(t)
	chat := m.RESTURL + "/v1/chat/completions"

	t.Run("stream framing", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, chat, `{"model":"alpha-only","stream":true,"stream_options":{"include_usage":true},
			"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stop":"zzz","some_new_field":{"x":1}}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		evs := events(t, resp.Body)
		require.Len(t, evs, 8, "5 content chunks, finish, usage, [DONE]")
		assert.Equal(t, "[DONE]", evs[7])

		var first struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct {
					Role    string `json:"role"`
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal([]byte(evs[0]), &first))
		assert.Equal(t, "chat.completion.chunk", first.Object)
		assert.Equal(t, "assistant", first.Choices[0].Delta.Role)
		assert.Equal(t, "t0 ", first.Choices[0].Delta.Content)
		assert.Nil(t, first.Choices[0].FinishReason, "finish_reason is null until the end")

		var usage struct {
			Choices []json.RawMessage `json:"choices"`
			Usage   *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		require.NoError(t, json.Unmarshal([]byte(evs[6]), &usage))
		assert.NotNil(t, usage.Choices, "the usage chunk has choices: []")
		assert.Empty(t, usage.Choices)
		require.NotNil(t, usage.Usage)
		assert.Equal(t, 5, usage.Usage.CompletionTokens)
		assert.Contains(t, evs[6], `"choices":[]`)
	})

	t.Run("stream without usage", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, chat, `{"model":"alpha-only","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		evs := events(t, resp.Body)
		require.Len(t, evs, 7)
		for _, e := range evs[:6] {
			assert.NotContains(t, e, `"usage":{`)
		}
	})

	t.Run("stream of an unknown model is a plain 404", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, chat, `{"model":"nope","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		e := decodeError(t, resp)
		assert.Contains(t, e.Error.Message, "nope")
	})

	bad := []struct {
		name, body, param string
	}{
		{"malformed json", `{"model": "shared", "messages": [`, ""},
		{"missing model", `{"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"missing messages", `{"model":"shared"}`, "messages"},
		{"empty messages", `{"model":"shared","messages":[]}`, "messages"},
		{"content of the wrong type", `{"model":"shared","messages":[{"role":"user","content":42}]}`, ""},
		{"bad role", `{"model":"shared","messages":[{"role":"wizard","content":"hi"}]}`, "messages[0].role"},
		{"empty body", ``, ""},
	}
	for _, tc := range bad {
		t.Run("400 "+tc.name, func(t *testing.T) {
			ctx := meshtest.Context(t, 10*time.Second)
			resp := post(t, ctx, chat, tc.body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			e := decodeError(t, resp)
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			if tc.param != "" {
				require.NotNil(t, e.Error.Param)
				assert.Equal(t, tc.param, *e.Error.Param)
			}
		})
	}

	t.Run("embeddings bad input", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, m.RESTURL+"/v1/embeddings", `{"model":"shared","input":{"not":"valid"}}`)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		decodeError(t, resp)
	})

	t.Run("unknown path", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, m.RESTURL+"/v1/nothing-here", `{}`)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		decodeError(t, resp)
	})

	t.Run("upstream 4xx keeps its meaning", func(t *testing.T) {
		alpha.SetFaults(simnode.Faults{Status: http.StatusUnprocessableEntity, Message: "prompt too long for this node"})
		t.Cleanup(func() { alpha.SetFaults(simnode.Faults{}) })
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, chat, `{"model":"alpha-only","messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		e := decodeError(t, resp)
		assert.Contains(t, e.Error.Message, "prompt too long for this node")
		assert.Equal(t, "invalid_request_error", e.Error.Type)
	})

	t.Run("a node's Retry-After reaches the client", func(t *testing.T) {
		alpha.SetFaults(simnode.Faults{Status: http.StatusTooManyRequests, Message: "Rate limit reached", RetryAfter: 30})
		t.Cleanup(func() { alpha.SetFaults(simnode.Faults{}) })
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, chat, `{"model":"alpha-only","messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.Equal(t, "30", resp.Header.Get("Retry-After"), "the node's wait, not the mesh's default")
		assert.Contains(t, decodeError(t, resp).Error.Message, "Rate limit reached")

		resp = post(t, ctx, m.RESTURL+"/api/chat", `{"model":"alpha-only","stream":false,"messages":[{"role":"user","content":"hi"}]}`)
		resp.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.Equal(t, "30", resp.Header.Get("Retry-After"), "the Ollama edge too")

		_, err := routerv1.NewInferenceServiceClient(dial(t, m.GRPCAddr)).CreateChatCompletion(ctx,
			&routerv1.CreateChatCompletionRequest{Request: userChat("alpha-only")})
		require.Equal(t, codes.ResourceExhausted, status.Code(err))
		var wait *errdetails.RetryInfo
		for _, d := range status.Convert(err).Details() {
			if r, ok := d.(*errdetails.RetryInfo); ok {
				wait = r
			}
		}
		require.NotNil(t, wait, "gRPC clients get the wait as RetryInfo")
		assert.Equal(t, 30*time.Second, wait.GetRetryDelay().AsDuration())
	})

	t.Run("busy node fails over to the other", func(t *testing.T) {
		alpha.SetFaults(simnode.Faults{Status: http.StatusServiceUnavailable})
		t.Cleanup(func() { alpha.SetFaults(simnode.Faults{}) })
		for range 4 { // both nodes get to go first at least once
			ctx := meshtest.Context(t, 10*time.Second)
			resp := post(t, ctx, chat, `{"model":"shared","messages":[{"role":"user","content":"hi"}]}`)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "beta", answeredBy(t, resp))
		}
	})
}

// answeredBy reads which node answered from system_fingerprint.
func answeredBy(t *testing.T, resp *http.Response) string {
	t.Helper()
	var c struct {
		SystemFingerprint string `json:"system_fingerprint"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&c))
	return strings.TrimPrefix(c.SystemFingerprint, "simnode-")
}

func TestMidStreamNodeFailureIsAnSSEErrorEvent(t *testing.T) {
	flaky := meshtest.StartNode(t, "flaky", simnode.Config{Models: []string{"m"}, Tokens: 6,
		Faults: simnode.Faults{FailAfterTokens: 2}})
	m := meshtest.Start(t, bins, []*meshtest.Node{flaky}, meshtest.Options{})

	ctx := meshtest.Context(t, 10*time.Second)
	resp := post(t, ctx, m.RESTURL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	evs := events(t, resp.Body)
	require.Len(t, evs, 3, "two chunks, then the error event, and no [DONE]: %q", evs)
	assert.Contains(t, evs[0], `"t0 "`)
	assert.Contains(t, evs[1], `"t1 "`)
	var e errorBody
	require.NoError(t, json.Unmarshal([]byte(evs[2]), &e))
	assert.NotEmpty(t, e.Error.Message)
	assert.Contains(t, e.Error.Message, "flaky")
	assert.NotEmpty(t, e.Error.Type)
}

func TestClientDisconnectCancelsTheNodeRequest(t *testing.T) {
	slow := meshtest.StartNode(t, "slow", simnode.Config{Models: []string{"m"}, Tokens: 1000, TokenDelay: 50 * time.Millisecond})
	m := meshtest.Start(t, bins, []*meshtest.Node{slow}, meshtest.Options{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := post(t, ctx, m.RESTURL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "data: "), line)
	require.Equal(t, int64(0), slow.Stats().Canceled)

	cancel() // the client goes away mid-stream
	require.Eventually(t, func() bool { return slow.Stats().Canceled == 1 }, 10*time.Second, 10*time.Millisecond,
		"the node's request was not cancelled")
	require.Eventually(t, func() bool { return slow.Stats().InFlight == 0 }, 10*time.Second, 10*time.Millisecond)
}

func TestRouterKeepsServingWhenHealthmonStops(t *testing.T) {
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{})
	m.Stop(t, "healthmon")
	for range 5 {
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, m.RESTURL+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	m.WaitModels(t, 1)
}

// A router follows a healthmon that comes back after a long outage within
// a few seconds: the mesh's own reconnect backoff is capped (gRPC's
// default grows to 120 s, and a router once took 16 s to pick the stream
// up again).
func TestRouterFollowsARestartedHealthmonSoon(t *testing.T) {
	ports, err := loopport.Pick(1)
	require.NoError(t, err)
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{
		HealthmonArgs: []string{"-grpc-addr", fmt.Sprintf("127.0.0.1:%d", ports[0])},
	})
	m.WaitRouterOnHealthmon(t)
	m.Kill(t, "healthmon")
	// Down long enough for gRPC's default backoff to have grown past 10 s;
	// the router keeps serving from its last view meanwhile.
	outage := time.Now().Add(20 * time.Second)
	for time.Now().Before(outage) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, m.RESTURL+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		time.Sleep(500 * time.Millisecond)
	}
	m.StartHealthmon(t)
	require.Eventually(t, func() bool {
		src, err := m.RouterSource()
		return err == nil && src == "healthmon"
	}, 5*time.Second, 20*time.Millisecond, "the router did not follow the restarted healthmon within 5s")
}

func TestSessionHeaderKeepsAConversationOnOneNode(t *testing.T) {
	m, _, _ := twoNodes(t)
	var first string
	for i := range 8 {
		ctx := meshtest.Context(t, 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.RESTURL+"/v1/chat/completions",
			strings.NewReader(`{"model":"shared","messages":[{"role":"user","content":"hi"}]}`))
		require.NoError(t, err)
		req.Header.Set("X-Session-ID", "conversation-1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		by := answeredBy(t, resp)
		resp.Body.Close()
		if i == 0 {
			first = by
		}
		assert.Equal(t, first, by, "request %d", i)
	}
}

// A node killed in the middle of a steady 200 req/s costs no non-streamed
// request: the attempts it refuses move to another node, and the node is
// out of rotation at once.
func TestNodeKilledUnderSteadyLoad(t *testing.T) {
	var nodes []*meshtest.Node
	for _, id := range []string{"k1", "k2", "k3"} {
		nodes = append(nodes, meshtest.StartNode(t, id, simnode.Config{Models: []string{"m"}, Tokens: 4, TokenDelay: time.Millisecond}))
	}
	m := meshtest.Start(t, bins, nodes, meshtest.Options{})
	load := meshtest.StartRateLoad(t, 200, m.RESTURL+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	load.WaitOK(t, 600, 20*time.Second) // ~3 s
	nodes[0].Kill()
	load.WaitOK(t, 1400, 30*time.Second) // ~7 s more
	load.Stop()
	assert.Zero(t, load.Failed(), "first failure: %s", load.FirstFailure())
	assert.GreaterOrEqual(t, load.OK(), int64(2000))
}

// A node that accepts streams and never answers costs one request its
// first-token timeout; that request and the next ones are answered by the
// other node.
func TestHungNodeCostsOneFirstTokenTimeout(t *testing.T) {
	hung := meshtest.StartNode(t, "hung", simnode.Config{Models: []string{"m"}, Faults: simnode.Faults{Hang: true}})
	good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"m"}, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{hung, good}, meshtest.Options{
		RouterArgs: []string{"-policy", "round-robin", "-node-limits", "first-token=300ms", "-breaker-cooldown", "1h"}})
	for range 4 {
		ctx := meshtest.Context(t, 10*time.Second)
		resp := post(t, ctx, m.RESTURL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		evs := events(t, resp.Body)
		require.NotEmpty(t, evs)
		assert.Equal(t, "[DONE]", evs[len(evs)-1])
		assert.Contains(t, evs[0], "simnode-good")
	}
	require.Eventually(t, func() bool { return hung.Stats().Canceled == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(1), hung.Stats().Requests["POST /v1/chat/completions"], "the hung node got one request")
}

// The same for non-streamed requests: the router streams from the node
// and folds the answer, so the first-token timeout guards them too.
func TestHungNodeCostsOneUnaryRequestItsFirstTokenTimeout(t *testing.T) {
	hung := meshtest.StartNode(t, "hung", simnode.Config{Models: []string{"m"}, Faults: simnode.Faults{Hang: true}})
	good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"m"}, Tokens: 3})
	m := meshtest.Start(t, bins, []*meshtest.Node{hung, good}, meshtest.Options{
		RouterArgs: []string{"-policy", "round-robin", "-node-limits", "first-token=300ms", "-breaker-cooldown", "1h"}})
	client := sdk(m)
	for range 4 {
		resp, err := client.Chat.Completions.New(meshtest.Context(t, 5*time.Second), openai.ChatCompletionNewParams{
			Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		require.NoError(t, err)
		assert.Equal(t, simnode.Content(3), resp.Choices[0].Message.Content)
		assert.Equal(t, int64(3), resp.Usage.CompletionTokens, "usage survives the folding")
	}
	assert.Equal(t, int64(1), hung.Stats().Requests["POST /v1/chat/completions"], "the hung node got one request")
}
