package anthropic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/simnode/anthropicsim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const key = "sk-ant-test-secret"

// start serves a simulated Anthropic API on loopback and returns a client
// for it and the simulation.
func start(t *testing.T, cfg anthropicsim.Config) (*Client, *anthropicsim.Server) {
	t.Helper()
	if cfg.Models == nil {
		cfg.Models = []string{"claude-sonnet-4-5"}
	}
	cfg.APIKey = key
	sim, err := anthropicsim.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	pool := nodeconn.NewPool(nodeconn.Options{LookupEnv: func(k string) (string, bool) { return key, k == "ANTHROPIC_API_KEY" }, Trust: localSecrets(t)})
	t.Cleanup(pool.Close)
	conn, err := pool.Client(&nodev1.Node{Id: "claude", Kind: nodev1.Kind_KIND_ANTHROPIC, BaseUrl: srv.URL, ApiKeyEnv: "ANTHROPIC_API_KEY"})
	require.NoError(t, err)
	return New(conn), sim
}

func textContent(s string) *openaiv1.MessageContent {
	return &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: s}}
}

func msg(role, content string) *openaiv1.ChatMessage {
	return &openaiv1.ChatMessage{Role: role, Content: textContent(content)}
}

func ptr[T any](v T) *T { return &v }

func TestChat(t *testing.T) {
	c, sim := start(t, anthropicsim.Config{Tokens: 4})
	cc, err := c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{
		Model: "claude-sonnet-4-5",
		Messages: []*openaiv1.ChatMessage{msg("system", "be brief"), msg("developer", "use English"),
			msg("user", "hello there"), msg("user", "and again")},
		Temperature: ptr(0.5), TopP: ptr(0.9), Stop: []string{"###"}, User: "u-1",
	})
	require.NoError(t, err)
	require.Len(t, cc.GetChoices(), 1)
	assert.Equal(t, "chat.completion", cc.GetObject())
	assert.Equal(t, "claude-sonnet-4-5", cc.GetModel())
	assert.True(t, strings.HasPrefix(cc.GetId(), "msg_"))
	assert.Equal(t, "assistant", cc.GetChoices()[0].GetMessage().GetRole())
	assert.Equal(t, "t0 t1 t2 t3 ", cc.GetChoices()[0].GetMessage().GetContent())
	assert.Equal(t, "stop", cc.GetChoices()[0].GetFinishReason())
	assert.EqualValues(t, 2+2+2+2, cc.GetUsage().GetPromptTokens(), "words of the system prompt and messages")
	assert.Equal(t, cc.GetUsage().GetPromptTokens()+cc.GetUsage().GetCompletionTokens(), cc.GetUsage().GetTotalTokens())
	assert.EqualValues(t, 4, cc.GetUsage().GetCompletionTokens())

	got := sim.LastRequest()
	require.NotNil(t, got)
	assert.Equal(t, key, got.Header.Get("x-api-key"))
	assert.Empty(t, got.Header.Get("Authorization"))
	assert.Equal(t, Version, got.Header.Get("anthropic-version"))
	assert.Equal(t, "be brief\n\nuse English", got.Body["system"])
	assert.EqualValues(t, DefaultMaxTokens, got.Body["max_tokens"])
	assert.Equal(t, []any{"###"}, got.Body["stop_sequences"])
	assert.EqualValues(t, 0.5, got.Body["temperature"])
	assert.NotContains(t, got.Body, "top_p", "newer Claude models refuse temperature and top_p together: temperature wins")
	assert.Equal(t, map[string]any{"user_id": "u-1"}, got.Body["metadata"])
	msgs := got.Body["messages"].([]any)
	require.Len(t, msgs, 1, "consecutive user turns are merged")
	assert.Len(t, msgs[0].(map[string]any)["content"], 2)
}

func TestMaxTokens(t *testing.T) {
	c, sim := start(t, anthropicsim.Config{Tokens: 8})
	cc, err := c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5",
		Messages: []*openaiv1.ChatMessage{msg("user", "hi")}, MaxTokens: ptr[int32](2)})
	require.NoError(t, err)
	assert.Equal(t, "length", cc.GetChoices()[0].GetFinishReason())
	assert.Equal(t, "t0 t1 ", cc.GetChoices()[0].GetMessage().GetContent())
	assert.EqualValues(t, 2, sim.LastRequest().Body["max_tokens"])

	_, err = c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5",
		Messages: []*openaiv1.ChatMessage{msg("user", "hi")}, MaxTokens: ptr[int32](9), MaxCompletionTokens: ptr[int32](3)})
	require.NoError(t, err)
	assert.EqualValues(t, 3, sim.LastRequest().Body["max_tokens"], "max_completion_tokens wins")
}

func collect(t *testing.T, c *Client, req *openaiv1.ChatCompletionRequest) ([]*openaiv1.ChatCompletionChunk, error) {
	t.Helper()
	var chunks []*openaiv1.ChatCompletionChunk
	err := c.ChatStream(t.Context(), req, func(ch *openaiv1.ChatCompletionChunk) error {
		chunks = append(chunks, ch)
		return nil
	})
	return chunks, err
}

func TestChatStream(t *testing.T) {
	c, _ := start(t, anthropicsim.Config{Tokens: 3})
	chunks, err := collect(t, c, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Stream: true,
		Messages: []*openaiv1.ChatMessage{msg("user", "one two three")}, StreamOptions: &openaiv1.StreamOptions{IncludeUsage: true}})
	require.NoError(t, err)
	// role, three deltas, finish, usage
	require.Len(t, chunks, 6)
	assert.Equal(t, "assistant", chunks[0].GetChoices()[0].GetDelta().GetRole())
	var sb strings.Builder
	for _, ch := range chunks {
		assert.Equal(t, "chat.completion.chunk", ch.GetObject())
		assert.Equal(t, chunks[0].GetId(), ch.GetId())
		assert.Equal(t, "claude-sonnet-4-5", ch.GetModel())
		for _, choice := range ch.GetChoices() {
			sb.WriteString(choice.GetDelta().GetContent())
		}
	}
	assert.Equal(t, "t0 t1 t2 ", sb.String())
	assert.Equal(t, "stop", chunks[4].GetChoices()[0].GetFinishReason())
	last := chunks[5]
	assert.Empty(t, last.GetChoices())
	assert.EqualValues(t, 3, last.GetUsage().GetPromptTokens())
	assert.EqualValues(t, 3, last.GetUsage().GetCompletionTokens())
	assert.EqualValues(t, 6, last.GetUsage().GetTotalTokens())

	// Without include_usage there is no usage chunk.
	chunks, err = collect(t, c, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: []*openaiv1.ChatMessage{msg("user", "x")}})
	require.NoError(t, err)
	require.Len(t, chunks, 5)
	assert.Nil(t, chunks[4].GetUsage())
}

func TestChatFolded(t *testing.T) {
	c, _ := start(t, anthropicsim.Config{Tokens: 3})
	cc, err := c.ChatFolded(t.Context(), &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5",
		Messages: []*openaiv1.ChatMessage{msg("user", "hi")}}, time.Minute, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "t0 t1 t2 ", cc.GetChoices()[0].GetMessage().GetContent())
	assert.Equal(t, "stop", cc.GetChoices()[0].GetFinishReason())
	assert.EqualValues(t, 3, cc.GetUsage().GetCompletionTokens())
}

func weatherTool(t *testing.T) *openaiv1.Tool {
	t.Helper()
	return &openaiv1.Tool{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "search", Description: "search the web",
		ParametersJson: `{"type":"object","properties":{"query":{"type":"string"}}}`}}
}

func TestToolCalls(t *testing.T) {
	c, sim := start(t, anthropicsim.Config{Tokens: 2})
	req := &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: []*openaiv1.ChatMessage{msg("user", "find it")},
		Tools: []*openaiv1.Tool{weatherTool(t)}, ToolChoice: &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: "required"}},
		ParallelToolCalls: ptr(false)}
	cc, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	choice := cc.GetChoices()[0]
	assert.Equal(t, "tool_calls", choice.GetFinishReason())
	require.Len(t, choice.GetMessage().GetToolCalls(), 1)
	call := choice.GetMessage().GetToolCalls()[0]
	assert.Equal(t, "search", call.GetFunction().GetName())
	assert.JSONEq(t, `{"query":"t0"}`, call.GetFunction().GetArguments())
	assert.Equal(t, "function", call.GetType())
	body := sim.LastRequest().Body
	assert.Equal(t, map[string]any{"type": "any", "disable_parallel_tool_use": true}, body["tool_choice"])
	tools := body["tools"].([]any)
	assert.Equal(t, "search", tools[0].(map[string]any)["name"])
	assert.Equal(t, "object", tools[0].(map[string]any)["input_schema"].(map[string]any)["type"])

	// Streamed: the call's id and name first, then its arguments in parts.
	chunks, err := collect(t, c, req)
	require.NoError(t, err)
	var args strings.Builder
	var id, name, finish string
	for _, ch := range chunks {
		for _, choice := range ch.GetChoices() {
			for _, tc := range choice.GetDelta().GetToolCalls() {
				assert.EqualValues(t, 0, tc.GetIndex())
				id += tc.GetId()
				name += tc.GetFunction().GetName()
				args.WriteString(tc.GetFunction().GetArguments())
			}
			if choice.GetFinishReason() != "" {
				finish = choice.GetFinishReason()
			}
		}
	}
	assert.Equal(t, call.GetId()[:len("toolu_sim")], id[:len("toolu_sim")])
	assert.Equal(t, "search", name)
	assert.JSONEq(t, `{"query":"t0"}`, args.String())
	assert.Equal(t, "tool_calls", finish)

	// The tool's result goes back as a tool_result block; the model answers.
	req.Messages = append(req.Messages,
		&openaiv1.ChatMessage{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{call}},
		&openaiv1.ChatMessage{Role: "tool", ToolCallId: call.GetId(), Content: textContent("sunny")})
	req.ToolChoice = nil
	cc, err = c.Chat(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "t0 t1 ", cc.GetChoices()[0].GetMessage().GetContent())
	msgs := sim.LastRequest().Body["messages"].([]any)
	require.Len(t, msgs, 3)
	use := msgs[1].(map[string]any)["content"].([]any)[0].(map[string]any)
	assert.Equal(t, map[string]any{"type": "tool_use", "id": call.GetId(), "name": "search", "input": map[string]any{"query": "t0"}}, use)
	result := msgs[2].(map[string]any)
	assert.Equal(t, "user", result["role"])
	assert.Equal(t, call.GetId(), result["content"].([]any)[0].(map[string]any)["tool_use_id"])
}

func TestErrors(t *testing.T) {
	user := []*openaiv1.ChatMessage{msg("user", "hi")}
	cases := []struct {
		name   string
		faults anthropicsim.Faults
		req    *openaiv1.ChatCompletionRequest
		code   codes.Code
		status int
	}{
		{"overloaded 529 is a busy node", anthropicsim.Faults{Status: 529}, nil, codes.Unavailable, 503},
		{"rate limit", anthropicsim.Faults{Status: 429}, nil, codes.ResourceExhausted, 429},
		{"server error", anthropicsim.Faults{Status: 500}, nil, codes.Internal, 500},
		{"unknown model", anthropicsim.Faults{}, &openaiv1.ChatCompletionRequest{Model: "claude-nope", Messages: user}, codes.NotFound, 404},
		{"the node refuses the request", anthropicsim.Faults{Status: 400}, nil, codes.InvalidArgument, 400},
		{"n > 1", anthropicsim.Faults{}, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: user, N: ptr[int32](2)}, codes.InvalidArgument, 0},
		{"a response format Claude cannot promise", anthropicsim.Faults{}, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: user,
			ResponseFormat: &openaiv1.ResponseFormat{Type: "json_object"}}, codes.InvalidArgument, 0},
		{"unknown role", anthropicsim.Faults{}, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: []*openaiv1.ChatMessage{msg("robot", "x")}}, codes.InvalidArgument, 0},
		{"only a system prompt", anthropicsim.Faults{}, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: []*openaiv1.ChatMessage{msg("system", "x")}}, codes.InvalidArgument, 0},
		{"tool parameters not an object", anthropicsim.Faults{}, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: user,
			Tools: []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "f", ParametersJson: `[1]`}}}}, codes.InvalidArgument, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := start(t, anthropicsim.Config{Faults: tc.faults})
			req := tc.req
			if req == nil {
				req = &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: user}
			}
			for _, stream := range []bool{false, true} {
				var err error
				if stream {
					_, err = collect(t, c, req)
				} else {
					_, err = c.Chat(t.Context(), req)
				}
				e, ok := apierror.FromError(err)
				require.True(t, ok, "stream=%v: %v", stream, err)
				assert.Equal(t, tc.code, e.Code, "stream=%v: %s", stream, e.Message)
				assert.Equal(t, tc.status, e.HTTPStatus, "stream=%v", stream)
				assert.NotEmpty(t, e.Message)
				assert.NotContains(t, e.Message, key)
			}
		})
	}
}

func TestBadKey(t *testing.T) {
	sim, err := anthropicsim.New(anthropicsim.Config{Models: []string{"m"}, APIKey: "the-right-key"})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	pool := nodeconn.NewPool(nodeconn.Options{LookupEnv: func(string) (string, bool) { return key, true }, Trust: localSecrets(t)})
	t.Cleanup(pool.Close)
	conn, err := pool.Client(&nodev1.Node{Id: "claude", Kind: nodev1.Kind_KIND_ANTHROPIC, BaseUrl: srv.URL, ApiKeyEnv: "K"})
	require.NoError(t, err)
	_, err = New(conn).Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "m", Messages: []*openaiv1.ChatMessage{msg("user", "x")}})
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Unauthenticated, e.Code)
	assert.Equal(t, "invalid x-api-key", e.Message)
}

func TestErrorMidStream(t *testing.T) {
	c, _ := start(t, anthropicsim.Config{Tokens: 5, Faults: anthropicsim.Faults{ErrorAfterTokens: 2}})
	chunks, err := collect(t, c, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: []*openaiv1.ChatMessage{msg("user", "x")}})
	require.Len(t, chunks, 3, "role and two deltas before the error")
	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, "overloaded_error", e.Type)
	assert.Equal(t, "Overloaded", e.Message)
}

func TestCancel(t *testing.T) {
	c, _ := start(t, anthropicsim.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Chat(ctx, &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: []*openaiv1.ChatMessage{msg("user", "x")}})
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Canceled, e.Code)
}

func TestImages(t *testing.T) {
	parts := &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Parts{Parts: &openaiv1.ContentParts{Parts: []*openaiv1.ContentPart{
		{Type: "text", Text: "what is this"},
		{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "data:image/png;base64,iVBORw0KGgo="}},
		{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "https://example.com/cat.jpg"}},
	}}}}
	m, err := toMessages(&openaiv1.ChatCompletionRequest{Model: "m", Messages: []*openaiv1.ChatMessage{{Role: "user", Content: parts}}}, false)
	require.NoError(t, err)
	bs := m.Messages[0].Content
	require.Len(t, bs, 3)
	assert.Equal(t, &imageSource{Type: "base64", MediaType: "image/png", Data: "iVBORw0KGgo="}, bs[1].Source)
	assert.Equal(t, &imageSource{Type: "url", URL: "https://example.com/cat.jpg"}, bs[2].Source)

	parts.GetParts().Parts[1].ImageUrl.Url = "data:image/png,notbase64"
	_, err = toMessages(&openaiv1.ChatCompletionRequest{Model: "m", Messages: []*openaiv1.ChatMessage{{Role: "user", Content: parts}}}, false)
	assert.ErrorContains(t, err, "data URL")
}

// A tool without parameters streams no input_json_delta at all; OpenAI's
// clients parse the arguments as JSON, so the call gets "{}".
func TestToolCallWithoutArgumentsGetsAnEmptyObject(t *testing.T) {
	tr := &translator{tools: map[int]int32{}, argued: map[int]bool{}}
	var args []string
	for _, ev := range []string{
		`{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":3}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"now","input":{}}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_2","name":"weather","input":{}}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Paris\"}"}}`,
		`{"type":"content_block_stop","index":1}`,
	} {
		var se streamEvent
		require.NoError(t, json.Unmarshal([]byte(ev), &se))
		chunks, _ := tr.translate(&se)
		for _, c := range chunks {
			for _, tc := range c.GetChoices()[0].GetDelta().GetToolCalls() {
				args = append(args, fmt.Sprintf("%d:%s", tc.GetIndex(), tc.GetFunction().GetArguments()))
			}
		}
	}
	assert.Equal(t, []string{"0:", "0:{}", "1:", `1:{"city":"Paris"}`}, args)
}

// What OpenAI accepts and the Messages API refuses is translated, not
// passed on to fail: temperature 0–2 is clamped to 0–1, top_p goes only
// without temperature, white-space-only stop sequences and texts are left
// out.
func TestSamplingThatClaudeRefuses(t *testing.T) {
	c, sim := start(t, anthropicsim.Config{Tokens: 2})
	_, err := c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5",
		Messages:    []*openaiv1.ChatMessage{msg("user", "hi"), msg("user", "\n ")},
		Temperature: ptr(1.5), Stop: []string{"\n", "END"}})
	require.NoError(t, err)
	got := sim.LastRequest().Body
	assert.EqualValues(t, 1, got["temperature"])
	assert.Equal(t, []any{"END"}, got["stop_sequences"])
	msgs := got["messages"].([]any)
	require.Len(t, msgs, 1)
	assert.Len(t, msgs[0].(map[string]any)["content"], 1, "the white-space-only text is left out")

	_, err = c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5",
		Messages: []*openaiv1.ChatMessage{msg("user", "hi")}, TopP: ptr(0.8)})
	require.NoError(t, err)
	assert.EqualValues(t, 0.8, sim.LastRequest().Body["top_p"], "top_p alone goes")
}

// OpenAI takes parameters {} for a tool without parameters; Anthropic's
// input_schema must say it is an object.
func TestToolWithoutParametersGetsAnObjectSchema(t *testing.T) {
	for _, tt := range []struct{ params, want string }{
		{`{}`, `{"type":"object"}`},
		{`{"properties":{"zone":{"type":"string"}}}`, `{"type":"object","properties":{"zone":{"type":"string"}}}`},
	} {
		c, sim := start(t, anthropicsim.Config{Tokens: 1})
		_, err := c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5",
			Messages: []*openaiv1.ChatMessage{msg("user", "what time is it?")},
			Tools:    []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "now", ParametersJson: tt.params}}}})
		require.NoError(t, err)
		assert.Contains(t, string(sim.LastRequest().Raw), `"input_schema":`+tt.want)
	}
}

// A tool's input_schema is the client's schema text: the order of its
// properties is the order the model fills the arguments in.
func TestInputSchemaKeepsKeyOrder(t *testing.T) {
	c, sim := start(t, anthropicsim.Config{Tokens: 1})
	params := `{"type":"object","properties":{"zeta":{"type":"integer","maximum":1E3},"alpha":{"type":"boolean"}},"required":["zeta","alpha"]}`
	_, err := c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "claude-sonnet-4-5",
		Messages: []*openaiv1.ChatMessage{msg("user", "go")},
		Tools:    []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "f", ParametersJson: params}}}})
	require.NoError(t, err)
	assert.Contains(t, string(sim.LastRequest().Raw), `"input_schema":`+params)
}

// localSecrets binds the variables this package's tests name to the test
// servers' hosts, as the operator's -secret-env would.
func localSecrets(t testing.TB) *nodetrust.Policy {
	t.Helper()
	bind := []string{"127.0.0.1", "h"}
	p, err := nodetrust.New(nodetrust.Config{SecretEnv: map[string][]string{
		"ANTHROPIC_API_KEY": bind, "K": bind,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
