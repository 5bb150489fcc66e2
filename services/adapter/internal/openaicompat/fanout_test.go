package openaicompat

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// oneChoiceNode answers like Ollama's /v1: one choice whatever n says,
// its content naming the seed it was sent. It records what it was asked.
type oneChoiceNode struct {
	mu    sync.Mutex
	asked []map[string]json.RawMessage
	fail  string // a seed to answer 500 for
}

func (n *oneChoiceNode) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&body)
	n.mu.Lock()
	n.asked = append(n.asked, body)
	n.mu.Unlock()
	seed := string(body["seed"])
	if seed == n.fail {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"message":"boom","type":"server_error"}}`)
		return
	}
	usage := `{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1}}`
	if string(body["stream"]) != "true" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-%s","object":"chat.completion","created":9,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"seed %s"},"finish_reason":"stop"}],"usage":%s}`, seed, seed, usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"seed \"},\"finish_reason\":null}]}\n\n", seed)
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},\"finish_reason\":\"stop\"}]}\n\n", seed, seed)
	if string(body["stream_options"]) == `{"include_usage":true}` {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m\",\"choices\":[],\"usage\":%s}\n\n", seed, usage)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func (n *oneChoiceNode) seeds(t *testing.T) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, b := range n.asked {
		_, hasN := b["n"]
		assert.False(t, hasN, "a fanned-out request leaves n out")
		out = append(out, string(b["seed"]))
	}
	sort.Strings(out)
	return out
}

func nReq(n int32) *openaiv1.ChatCompletionRequest {
	req := chatReq()
	req.N, req.Seed = proto.Int32(n), proto.Int64(10)
	return req
}

var summed = &openaiv1.Usage{PromptTokens: 9, CompletionTokens: 6, TotalTokens: 15, PromptTokensDetails: &openaiv1.PromptTokensDetails{CachedTokens: 3}}

func TestFanOutChat(t *testing.T) {
	for _, kind := range []nodev1.Kind{nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_LLAMACPP, nodev1.Kind_KIND_LMSTUDIO} {
		node := &oneChoiceNode{}
		cc, err := client(t, kind, node.serve).Chat(t.Context(), nReq(3))
		require.NoError(t, err, "%s", kind)
		assert.Equal(t, []string{"10", "11", "12"}, node.seeds(t), "one request per choice, the seed moved by its index")
		require.Len(t, cc.GetChoices(), 3)
		for i, ch := range cc.GetChoices() {
			assert.EqualValues(t, i, ch.GetIndex())
			assert.Equal(t, fmt.Sprintf("seed %d", 10+i), ch.GetMessage().GetContent(), "choice i is request i's answer")
		}
		assert.True(t, proto.Equal(summed, cc.GetUsage()), "usage summed: %v", cc.GetUsage())
	}
}

func TestFanOutStream(t *testing.T) {
	node := &oneChoiceNode{}
	req := nReq(3)
	req.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	var chunks []*openaiv1.ChatCompletionChunk
	err := client(t, nodev1.Kind_KIND_OLLAMA, node.serve).ChatStream(t.Context(), req, func(c *openaiv1.ChatCompletionChunk) error {
		chunks = append(chunks, c)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"10", "11", "12"}, node.seeds(t))
	require.Len(t, chunks, 7, "two chunks per choice, one usage chunk")
	text := map[int32]string{}
	for _, c := range chunks[:6] {
		assert.Equal(t, chunks[0].GetId(), c.GetId(), "one id for the whole answer")
		assert.Nil(t, c.GetUsage(), "the streams' own usage chunks are withheld")
		require.Len(t, c.GetChoices(), 1)
		text[c.GetChoices()[0].GetIndex()] += c.GetChoices()[0].GetDelta().GetContent()
	}
	assert.Equal(t, map[int32]string{0: "seed 10", 1: "seed 11", 2: "seed 12"}, text)
	last := chunks[6]
	assert.Empty(t, last.GetChoices())
	assert.True(t, proto.Equal(summed, last.GetUsage()), "usage summed: %v", last.GetUsage())
}

// A non-streamed request with a first-token bound is folded from the
// fanned-out stream.
func TestFanOutFolded(t *testing.T) {
	node := &oneChoiceNode{}
	cc, err := client(t, nodev1.Kind_KIND_OLLAMA, node.serve).ChatFolded(t.Context(), nReq(2), time.Minute, time.Minute)
	require.NoError(t, err)
	require.Len(t, cc.GetChoices(), 2)
	got := map[int32]string{}
	for _, ch := range cc.GetChoices() {
		got[ch.GetIndex()] = ch.GetMessage().GetContent()
		assert.Equal(t, "stop", ch.GetFinishReason())
	}
	assert.Equal(t, map[int32]string{0: "seed 10", 1: "seed 11"}, got)
	assert.EqualValues(t, 10, cc.GetUsage().GetTotalTokens())
}

func TestFanOutFailure(t *testing.T) {
	node := &oneChoiceNode{fail: "11"}
	c := client(t, nodev1.Kind_KIND_OLLAMA, node.serve)
	_, err := c.Chat(t.Context(), nReq(3))
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "boom", e.Message, "the failed request's error, not the cancellation it caused")
	err = c.ChatStream(t.Context(), nReq(3), func(*openaiv1.ChatCompletionChunk) error { return nil })
	e, _ = apierror.FromError(err)
	assert.Equal(t, "boom", e.Message)
}

func TestNoFanOut(t *testing.T) {
	// vLLM honours n: one request carrying it.
	node := &oneChoiceNode{}
	_, err := client(t, nodev1.Kind_KIND_VLLM, node.serve).Chat(t.Context(), nReq(3))
	require.NoError(t, err)
	require.Len(t, node.asked, 1)
	assert.Equal(t, "3", string(node.asked[0]["n"]))
	// n:1 on Ollama is passed as is.
	node = &oneChoiceNode{}
	_, err = client(t, nodev1.Kind_KIND_OLLAMA, node.serve).Chat(t.Context(), nReq(1))
	require.NoError(t, err)
	require.Len(t, node.asked, 1)
	// An n out of range is refused before any request.
	_, err = client(t, nodev1.Kind_KIND_OLLAMA, node.serve).Chat(t.Context(), nReq(MaxChoices+1))
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.InvalidArgument, e.Code)
	assert.Equal(t, "n", e.Param)
}

// Ollama's /v1 sends a thinking model's reasoning as "reasoning"; it
// arrives as reasoning_content, whole or streamed.
func TestReasoningFromNode(t *testing.T) {
	c := client(t, nodev1.Kind_KIND_OLLAMA, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&body)
		if string(body["stream"]) == "true" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, `data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Two"},"finish_reason":null}]}`+"\n\n")
			fmt.Fprint(w, `data: {"id":"c","choices":[{"index":0,"delta":{"content":"","reasoning":" twos."},"finish_reason":null}]}`+"\n\n")
			fmt.Fprint(w, `data: {"id":"c","choices":[{"index":0,"delta":{"content":"4"},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"4","reasoning":"Two twos."},"finish_reason":"stop"}]}`)
	})
	cc, err := c.Chat(t.Context(), chatReq())
	require.NoError(t, err)
	assert.Equal(t, "Two twos.", cc.GetChoices()[0].GetMessage().GetReasoningContent())
	cc, err = c.ChatFolded(t.Context(), chatReq(), time.Minute, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "Two twos.", cc.GetChoices()[0].GetMessage().GetReasoningContent())
	assert.Equal(t, "4", cc.GetChoices()[0].GetMessage().GetContent())
	chunks := CompletionChunks(&openaiv1.ChatCompletion{Choices: []*openaiv1.ChatCompletionChoice{{Message: cc.GetChoices()[0].GetMessage()}}}, false)
	assert.Equal(t, "Two twos.", chunks[0].GetChoices()[0].GetDelta().GetReasoningContent(), "a whole answer relayed as a stream keeps its reasoning")
}
