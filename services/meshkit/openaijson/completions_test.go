package openaijson

import (
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func TestCompletionRequestRoundTrip(t *testing.T) {
	cases := []struct {
		name, in, out string
		prompts       []string
	}{
		{"string prompt", `{"model":"m","prompt":"hi","max_tokens":3,"stop":"x","echo":true,"logprobs":2}`,
			`{"model":"m","prompt":"hi","max_tokens":3,"stop":["x"],"echo":true,"logprobs":2}`, []string{"hi"}},
		{"array prompt", `{"model":"m","prompt":["a","b"],"stream":true,"stream_options":{"include_usage":true},"suffix":"s","unknown":{"x":1}}`,
			`{"model":"m","prompt":["a","b"],"stream":true,"stream_options":{"include_usage":true},"suffix":"s"}`, []string{"a", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req openaiv1.CompletionRequest
			require.NoError(t, Unmarshal([]byte(tc.in), &req))
			assert.Equal(t, tc.prompts, req.GetPrompt())
			b, err := Marshal(&req)
			require.NoError(t, err)
			assert.Equal(t, tc.out, string(b))
		})
	}
}

func TestCompletionPromptErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"prompt":[1,2]}`:   "token ids",
		`{"prompt":[[1]]}`:   "token ids",
		`{"prompt":7}`:       "prompt",
		`{"prompt":["a",1]}`: "prompt[1]",
	} {
		var req openaiv1.CompletionRequest
		err := Unmarshal([]byte(body), &req)
		require.Error(t, err, body)
		assert.Contains(t, err.Error(), want, body)
	}
}

func TestCompletionEncoding(t *testing.T) {
	c := &openaiv1.Completion{Id: "cmpl-1", Created: 5, Model: "m", Choices: []*openaiv1.CompletionChoice{
		{Index: 0, Text: "hi"}, {Index: 1, Text: "", FinishReason: "stop"},
	}, Usage: &openaiv1.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}}
	b, err := Marshal(c)
	require.NoError(t, err)
	assert.Equal(t, `{"id":"cmpl-1","object":"text_completion","created":5,"model":"m","choices":[`+
		`{"text":"hi","index":0,"logprobs":null,"finish_reason":null},{"text":"","index":1,"logprobs":null,"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, string(b))
	var back openaiv1.Completion
	require.NoError(t, Unmarshal(b, &back))
	back.Object = ""
	assert.True(t, proto.Equal(c, &back), "%v", &back)

	var lp openaiv1.Completion
	require.NoError(t, Unmarshal([]byte(`{"choices":[{"text":"a","logprobs":{"tokens":["a"],"token_logprobs":[-0.5]}}]}`), &lp))
	b, err = Marshal(&lp)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"logprobs":{"token_logprobs":[-0.5],"tokens":["a"]}`)
}
