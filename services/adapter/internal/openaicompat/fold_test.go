package openaicompat

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func chatReq() *openaiv1.ChatCompletionRequest {
	return &openaiv1.ChatCompletionRequest{Model: "m", Messages: []*openaiv1.ChatMessage{{Role: "user"}}}
}

func TestChatFoldedStreamsAndFolds(t *testing.T) {
	var asked struct {
		Stream        bool `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	c := client(t, nodev1.Kind_KIND_OLLAMA, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&asked)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range []string{
			`{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}`,
			`{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`,
			`{"id":"c","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}`,
			`[DONE]`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", ev)
		}
	})
	cc, err := c.ChatFolded(t.Context(), chatReq(), time.Second, time.Second)
	require.NoError(t, err)
	assert.True(t, asked.Stream)
	assert.True(t, asked.StreamOptions.IncludeUsage, "usage is asked for, so the folded answer has it")
	assert.Equal(t, "Hello", cc.GetChoices()[0].GetMessage().GetContent())
	assert.Equal(t, "stop", cc.GetChoices()[0].GetFinishReason())
	assert.Equal(t, int64(4), cc.GetUsage().GetTotalTokens())
}

func TestChatFoldedHungNode(t *testing.T) {
	c := client(t, nodev1.Kind_KIND_OLLAMA, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client leaving
		<-r.Context().Done()               // accepts, never answers
	})
	_, err := c.ChatFolded(t.Context(), chatReq(), 50*time.Millisecond, time.Minute)
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, apierror.ReasonAnswerFailed, e.Reason, "a hung node fails its answer: out of rotation until a trial succeeds")
	assert.Contains(t, e.Message, "no first token within 50ms", "the first-token bound ended it, not the caller's deadline")
}

func TestChatFoldedNodeSilentMidAnswer(t *testing.T) {
	c := client(t, nodev1.Kind_KIND_OLLAMA, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for range 3 { // a few quick chunks, each within the idle limit
			fmt.Fprint(w, `data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}`+"\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
		<-r.Context().Done() // then silence
	})
	_, err := c.ChatFolded(t.Context(), chatReq(), time.Minute, 200*time.Millisecond)
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, apierror.ReasonAnswerFailed, e.Reason)
	assert.Contains(t, e.Message, "silent for 200ms in the middle of an answer")
}

// Ollama, llama.cpp and LM Studio ignore max_completion_tokens: they are
// sent the smaller limit as max_tokens. OpenAI-API nodes get both as sent.
func TestMaxCompletionTokensForNodesThatOnlyKnowMaxTokens(t *testing.T) {
	for _, tt := range []struct {
		kind      nodev1.Kind
		want      string
		wantCompl bool
	}{
		{nodev1.Kind_KIND_OLLAMA, "5", false},
		{nodev1.Kind_KIND_LLAMACPP, "5", false},
		{nodev1.Kind_KIND_OPENAI, "9", true},
	} {
		var got map[string]json.RawMessage
		c := client(t, tt.kind, func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewDecoder(r.Body).Decode(&got)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}]}`)
		})
		req := chatReq()
		req.MaxTokens, req.MaxCompletionTokens = proto.Int32(9), proto.Int32(5)
		_, err := c.Chat(t.Context(), req)
		require.NoError(t, err)
		assert.Equal(t, tt.want, string(got["max_tokens"]), "%s", tt.kind)
		_, has := got["max_completion_tokens"]
		assert.Equal(t, tt.wantCompl, has, "%s", tt.kind)
		assert.Equal(t, int32(5), req.GetMaxCompletionTokens(), "the caller's request is not changed")
	}
}

// Ollama ignores tool_choice: the tools it is sent are narrowed to what
// the choice allows.
func TestToolChoiceForOllama(t *testing.T) {
	tools := []*openaiv1.Tool{
		{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "a"}},
		{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "b"}},
	}
	for _, tt := range []struct {
		choice *openaiv1.ToolChoice
		want   string
	}{
		{&openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: "none"}}, ""},
		{&openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: "b"}}, "b"},
		{&openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: "auto"}}, "a,b"},
	} {
		var got struct {
			Tools []struct{ Function struct{ Name string } }
		}
		c := client(t, nodev1.Kind_KIND_OLLAMA, func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewDecoder(r.Body).Decode(&got)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}]}`)
		})
		req := chatReq()
		req.Tools, req.ToolChoice = tools, tt.choice
		_, err := c.Chat(t.Context(), req)
		require.NoError(t, err)
		var names []string
		for _, tl := range got.Tools {
			names = append(names, tl.Function.Name)
		}
		assert.Equal(t, tt.want, strings.Join(names, ","), "%v", tt.choice)
	}
}
