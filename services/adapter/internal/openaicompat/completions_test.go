package openaicompat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// onePromptNode answers /v1/completions like Ollama: a prompt array is
// refused with Ollama's 400, n is ignored (one choice), and the text
// names the prompt and seed it was sent. It records what it was asked.
type onePromptNode struct {
	mu    sync.Mutex
	asked []map[string]json.RawMessage
}

func (n *onePromptNode) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&body)
	n.mu.Lock()
	n.asked = append(n.asked, body)
	n.mu.Unlock()
	var prompt string
	if err := json.Unmarshal(body["prompt"], &prompt); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type string","type":"invalid_request_error"}}`)
		return
	}
	text := fmt.Sprintf("%s/%s", prompt, body["seed"])
	usage := `{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}`
	if string(body["stream"]) != "true" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"cmpl-%s","object":"text_completion","created":9,"model":"m","choices":[{"index":0,"text":%q,"finish_reason":"stop"}],"usage":%s}`, body["seed"], text, usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, "data: {\"id\":\"cmpl-%s\",\"object\":\"text_completion\",\"created\":9,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":%q,\"finish_reason\":null}]}\n\n", body["seed"], prompt)
	fmt.Fprintf(w, "data: {\"id\":\"cmpl-%s\",\"object\":\"text_completion\",\"created\":9,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":%q,\"finish_reason\":\"stop\"}]}\n\n", body["seed"], fmt.Sprintf("/%s", body["seed"]))
	if string(body["stream_options"]) == `{"include_usage":true}` {
		fmt.Fprintf(w, "data: {\"id\":\"cmpl-%s\",\"object\":\"text_completion\",\"created\":9,\"model\":\"m\",\"choices\":[],\"usage\":%s}\n\n", body["seed"], usage)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// sent is what the node was asked, as "prompt/seed", sorted.
func (n *onePromptNode) sent(t *testing.T) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, b := range n.asked {
		_, hasN := b["n"]
		assert.False(t, hasN, "a fanned-out request leaves n out")
		var p string
		require.NoError(t, json.Unmarshal(b["prompt"], &p), "one prompt per request: %s", b["prompt"])
		out = append(out, p+"/"+string(b["seed"]))
	}
	sort.Strings(out)
	return out
}

func completionReq(n int32, prompts ...string) *openaiv1.CompletionRequest {
	return &openaiv1.CompletionRequest{Model: "m", Prompt: prompts, N: proto.Int32(n), Seed: proto.Int64(10)}
}

// OpenAI's order: prompt p's choice i is choice p*n+i, its seed moved by i.
var wantTexts = []string{"a/10", "a/11", "b/10", "b/11", "c/10", "c/11"}

func TestCompletionFanOut(t *testing.T) {
	for _, kind := range []nodev1.Kind{nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_LLAMACPP, nodev1.Kind_KIND_LMSTUDIO} {
		node := &onePromptNode{}
		out, err := client(t, kind, node.serve).Complete(t.Context(), completionReq(2, "a", "b", "c"))
		require.NoError(t, err, "%s", kind)
		assert.Equal(t, wantTexts, node.sent(t), "one request per prompt and choice")
		require.Len(t, out.GetChoices(), 6)
		for k, ch := range out.GetChoices() {
			assert.EqualValues(t, k, ch.GetIndex())
			assert.Equal(t, wantTexts[k], ch.GetText())
		}
		assert.True(t, proto.Equal(&openaiv1.Usage{PromptTokens: 18, CompletionTokens: 12, TotalTokens: 30}, out.GetUsage()), "usage summed: %v", out.GetUsage())
	}
}

func TestCompletionFanOutStream(t *testing.T) {
	node := &onePromptNode{}
	req := completionReq(2, "a", "b", "c")
	req.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	var chunks []*openaiv1.Completion
	err := client(t, nodev1.Kind_KIND_OLLAMA, node.serve).CompleteStream(t.Context(), req, func(c *openaiv1.Completion) error {
		chunks = append(chunks, c)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, wantTexts, node.sent(t))
	require.Len(t, chunks, 13, "two chunks per choice, one usage chunk")
	text := map[int32]string{}
	for _, c := range chunks[:12] {
		assert.Equal(t, chunks[0].GetId(), c.GetId(), "one id for the whole answer")
		assert.Nil(t, c.GetUsage(), "the streams' own usage chunks are withheld")
		require.Len(t, c.GetChoices(), 1)
		text[c.GetChoices()[0].GetIndex()] += c.GetChoices()[0].GetText()
	}
	for k, want := range wantTexts {
		assert.Equal(t, want, text[int32(k)], "choice %d", k)
	}
	last := chunks[12]
	assert.Equal(t, chunks[0].GetId(), last.GetId())
	assert.Empty(t, last.GetChoices())
	assert.EqualValues(t, 30, last.GetUsage().GetTotalTokens(), "usage summed")

	// Without include_usage no usage chunk.
	node = &onePromptNode{}
	chunks = nil
	err = client(t, nodev1.Kind_KIND_OLLAMA, node.serve).CompleteStream(t.Context(), completionReq(1, "a", "b"), func(c *openaiv1.Completion) error {
		chunks = append(chunks, c)
		return nil
	})
	require.NoError(t, err)
	assert.Len(t, chunks, 4)
}

// A non-streamed completion with a first-token bound is folded from the
// fanned-out stream, choices in index order.
func TestCompletionFanOutFolded(t *testing.T) {
	node := &onePromptNode{}
	out, err := client(t, nodev1.Kind_KIND_OLLAMA, node.serve).CompleteFolded(t.Context(), completionReq(2, "a", "b", "c"), time.Minute, time.Minute)
	require.NoError(t, err)
	require.Len(t, out.GetChoices(), 6)
	for k, ch := range out.GetChoices() {
		assert.EqualValues(t, k, ch.GetIndex())
		assert.Equal(t, wantTexts[k], ch.GetText())
		assert.Equal(t, "stop", ch.GetFinishReason())
	}
	assert.EqualValues(t, 30, out.GetUsage().GetTotalTokens())
}

func TestCompletionNoFanOut(t *testing.T) {
	// vLLM takes prompt arrays and n: one request, as sent.
	var got map[string]json.RawMessage
	c := client(t, nodev1.Kind_KIND_VLLM, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"text_completion","choices":[{"index":0,"text":"x"},{"index":1,"text":"y"},{"index":2,"text":"z"},{"index":3,"text":"w"}]}`)
	})
	out, err := c.Complete(t.Context(), completionReq(2, "a", "b"))
	require.NoError(t, err)
	assert.Len(t, out.GetChoices(), 4)
	assert.JSONEq(t, `["a","b"]`, string(got["prompt"]))
	assert.Equal(t, "2", string(got["n"]))
	assert.Equal(t, "10", string(got["seed"]))

	// One prompt without n on Ollama is sent as is.
	node := &onePromptNode{}
	out, err = client(t, nodev1.Kind_KIND_OLLAMA, node.serve).Complete(t.Context(), &openaiv1.CompletionRequest{Model: "m", Prompt: []string{"a"}})
	require.NoError(t, err)
	assert.Len(t, node.asked, 1)
	assert.Equal(t, "a/", out.GetChoices()[0].GetText())

	// Out of range n, or too many choices, is refused before any request.
	node = &onePromptNode{}
	ollama := client(t, nodev1.Kind_KIND_OLLAMA, node.serve)
	_, err = ollama.Complete(t.Context(), completionReq(MaxChoices+1, "a"))
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.InvalidArgument, e.Code)
	assert.Equal(t, "n", e.Param)
	many := make([]string, MaxFanOut/4+1)
	for i := range many {
		many[i] = "p"
	}
	err = ollama.CompleteStream(t.Context(), completionReq(4, many...), func(*openaiv1.Completion) error { return nil })
	e, ok = apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.InvalidArgument, e.Code)
	assert.Equal(t, "prompt", e.Param)
	assert.Contains(t, e.Message, "ollama")
	assert.Empty(t, node.asked)
}

func TestCompletionFanOutFailure(t *testing.T) {
	node := &onePromptNode{}
	c := client(t, nodev1.Kind_KIND_OLLAMA, func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		if bytes.Contains(data, []byte(`"prompt":"b"`)) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":{"message":"boom","type":"server_error"}}`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		node.serve(w, r)
	})
	_, err := c.Complete(t.Context(), completionReq(1, "a", "b", "c"))
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "boom", e.Message, "the failed request's error, not the cancellation it caused")
	err = c.CompleteStream(t.Context(), completionReq(1, "a", "b", "c"), func(*openaiv1.Completion) error { return nil })
	e, _ = apierror.FromError(err)
	assert.Equal(t, "boom", e.Message)
}

// A caller that has gone is an error, not an answer with holes.
func TestCompletionFanOutCanceled(t *testing.T) {
	node := &onePromptNode{}
	c := client(t, nodev1.Kind_KIND_OLLAMA, node.serve)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	many := make([]string, 2*maxParallel)
	for i := range many {
		many[i] = "p"
	}
	out, err := c.Complete(ctx, completionReq(1, many...))
	assert.Nil(t, out)
	assert.ErrorIs(t, err, context.Canceled)
	err = c.CompleteStream(ctx, completionReq(1, many...), func(*openaiv1.Completion) error { return nil })
	assert.ErrorIs(t, err, context.Canceled)
}
