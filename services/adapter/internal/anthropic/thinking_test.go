package anthropic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
)

// thinkingNode answers like Claude with extended thinking on: a thinking
// block before the text, streamed as thinking_delta and signature_delta
// events. (The simulated Anthropic API does not think; this handler is the
// Messages API's documented wire form.)
func thinkingNode(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Stream bool `json:"stream"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	usage := `{"input_tokens":5,"output_tokens":7,"cache_read_input_tokens":3,"cache_creation_input_tokens":0}`
	if !body.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude","stop_reason":"end_turn","usage":%s,"content":[`+
			`{"type":"thinking","thinking":"Two twos.","signature":"sig"},{"type":"redacted_thinking","data":"xx"},{"type":"text","text":"4"}]}`, usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, ev := range []string{
		`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"usage":` + usage + `}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Two"}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" twos."}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"4"}}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}`,
		`{"type":"message_stop"}`,
	} {
		var typ struct{ Type string }
		_ = json.Unmarshal([]byte(ev), &typ)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ.Type, ev)
	}
}

func TestThinkingIsReasoning(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(thinkingNode))
	t.Cleanup(srv.Close)
	pool := nodeconn.NewPool(nodeconn.Options{LookupEnv: func(k string) (string, bool) { return key, k == "ANTHROPIC_API_KEY" }, Trust: localSecrets(t)})
	t.Cleanup(pool.Close)
	conn, err := pool.Client(&nodev1.Node{Id: "claude", Kind: nodev1.Kind_KIND_ANTHROPIC, BaseUrl: srv.URL, ApiKeyEnv: "ANTHROPIC_API_KEY"})
	require.NoError(t, err)
	c := New(conn)
	req := &openaiv1.ChatCompletionRequest{Model: "claude", Messages: []*openaiv1.ChatMessage{msg("user", "2+2?")},
		StreamOptions: &openaiv1.StreamOptions{IncludeUsage: true}}

	cc, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	m := cc.GetChoices()[0].GetMessage()
	assert.Equal(t, "Two twos.", m.GetReasoningContent())
	assert.Equal(t, "4", m.GetContent())
	assert.EqualValues(t, 3, cc.GetUsage().GetPromptTokensDetails().GetCachedTokens(), "cache reads are OpenAI's cached_tokens")
	assert.EqualValues(t, 8, cc.GetUsage().GetPromptTokens())

	chunks, err := collect(t, c, req)
	require.NoError(t, err)
	var reasoning, content string
	for _, ch := range chunks {
		for _, choice := range ch.GetChoices() {
			reasoning += choice.GetDelta().GetReasoningContent()
			content += choice.GetDelta().GetContent()
		}
	}
	assert.Equal(t, "Two twos.", reasoning)
	assert.Equal(t, "4", content)
	assert.EqualValues(t, 3, chunks[len(chunks)-1].GetUsage().GetPromptTokensDetails().GetCachedTokens())
}
