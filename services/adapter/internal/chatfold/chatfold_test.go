package chatfold

import (
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func s(v string) *string { return &v }

func TestFoldsAnOllamaStyleStream(t *testing.T) {
	chunks := []*openaiv1.ChatCompletionChunk{
		{Id: "c1", Created: 7, Model: "m", SystemFingerprint: "fp", Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Role: "assistant", Content: s("Hel")}}}},
		{Id: "c1", Created: 7, Model: "m", Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Role: "assistant", Content: s("lo")}}}},
		{Id: "c1", Created: 7, Model: "m", Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: s("")}, FinishReason: "length"}}},
		{Id: "c1", Created: 7, Model: "m", Usage: &openaiv1.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}},
	}
	c := New()
	for _, ch := range chunks {
		c.Add(ch)
	}
	want := &openaiv1.ChatCompletion{Id: "c1", Object: "chat.completion", Created: 7, Model: "m", SystemFingerprint: "fp",
		Choices: []*openaiv1.ChatCompletionChoice{{Index: 0, FinishReason: "length",
			Message: &openaiv1.ResponseMessage{Role: "assistant", Content: s("Hello")}}},
		Usage: &openaiv1.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}}
	assert.True(t, proto.Equal(want, c.Result()), "got %v", c.Result())
}

func TestFoldsToolCallsAndChoices(t *testing.T) {
	c := New()
	c.Add(&openaiv1.ChatCompletionChunk{Id: "x", Choices: []*openaiv1.ChunkChoice{
		{Index: 0, Delta: &openaiv1.ChunkDelta{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{Index: 0, Id: "call_1", Type: "function", Function: &openaiv1.FunctionCall{Name: "get", Arguments: `{"ci`}}}}},
		{Index: 1, Delta: &openaiv1.ChunkDelta{Content: s("other")}},
	}})
	c.Add(&openaiv1.ChatCompletionChunk{Id: "x", Choices: []*openaiv1.ChunkChoice{
		{Index: 0, Delta: &openaiv1.ChunkDelta{ToolCalls: []*openaiv1.ToolCall{{Index: 0, Function: &openaiv1.FunctionCall{Arguments: `ty":"Oslo"}`}}}}, FinishReason: "tool_calls"},
	}})
	r := c.Result()
	require.Len(t, r.GetChoices(), 2)
	call := r.GetChoices()[0].GetMessage().GetToolCalls()
	require.Len(t, call, 1)
	assert.Equal(t, "call_1", call[0].GetId())
	assert.Equal(t, "get", call[0].GetFunction().GetName())
	assert.Equal(t, `{"city":"Oslo"}`, call[0].GetFunction().GetArguments())
	assert.Nil(t, r.GetChoices()[0].GetMessage().Content, "a pure tool call has null content")
	assert.Equal(t, "tool_calls", r.GetChoices()[0].GetFinishReason())
	assert.Equal(t, "assistant", r.GetChoices()[1].GetMessage().GetRole(), "a choice without a role gets the assistant's")
	assert.Equal(t, "other", r.GetChoices()[1].GetMessage().GetContent())
}

func TestEmptyStream(t *testing.T) {
	r := New().Result()
	assert.Equal(t, "chat.completion", r.GetObject())
	assert.Empty(t, r.GetChoices())
}

// A thinking model streams its reasoning before the answer; the folded
// message keeps both, and usage with its details.
func TestFoldsReasoning(t *testing.T) {
	c := New()
	for _, d := range []*openaiv1.ChunkDelta{
		{Role: "assistant", ReasoningContent: s("Two plus")},
		{ReasoningContent: s(" two.")},
		{Content: s("4")},
	} {
		c.Add(&openaiv1.ChatCompletionChunk{Id: "r", Choices: []*openaiv1.ChunkChoice{{Delta: d}}})
	}
	usage := &openaiv1.Usage{PromptTokens: 5, CompletionTokens: 9, TotalTokens: 14,
		PromptTokensDetails:     &openaiv1.PromptTokensDetails{CachedTokens: 4},
		CompletionTokensDetails: &openaiv1.CompletionTokensDetails{ReasoningTokens: 8}}
	c.Add(&openaiv1.ChatCompletionChunk{Id: "r", Usage: usage})
	r := c.Result()
	m := r.GetChoices()[0].GetMessage()
	assert.Equal(t, "Two plus two.", m.GetReasoningContent())
	assert.Equal(t, "4", m.GetContent())
	assert.True(t, proto.Equal(usage, r.GetUsage()))
	assert.Nil(t, New().Result().GetChoices(), "no reasoning, no choices")
}

func TestChoicesInIndexOrder(t *testing.T) {
	c := New()
	for _, i := range []int32{2, 0, 1, 0} {
		c.Add(&openaiv1.ChatCompletionChunk{Choices: []*openaiv1.ChunkChoice{{Index: i, Delta: &openaiv1.ChunkDelta{Content: s("x")}}}})
	}
	var got []int32
	for _, ch := range c.Result().GetChoices() {
		got = append(got, ch.GetIndex())
	}
	assert.Equal(t, []int32{0, 1, 2}, got)
	assert.Equal(t, "xx", c.Result().GetChoices()[0].GetMessage().GetContent())
}
