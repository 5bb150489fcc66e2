package edge

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A body that does not decode is a 400 naming the field, on every route
// that decodes OpenAI JSON, streamed or not.
func TestDecodeErrorsNameTheParam(t *testing.T) {
	ts := serve(t, scripted{})
	for _, tc := range []struct {
		path, body, param, msg string
	}{
		{"/v1/chat/completions", `{"model":"m","messages":[],"temperature":"hot"}`, "temperature", "temperature: expected a number, got string"},
		{"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":5}]}`, "messages[0].content", "expected a string or an array"},
		{"/v1/chat/completions", `{"model":"m","messages":[],"functions":[{"name":"f"}]}`, "functions", "use tools"},
		{"/v1/chat/completions", `{"model":"m","messages":[],"function_call":"auto"}`, "function_call", "use tools"},
		{"/v1/embeddings", `{"model":"m","input":true}`, "input", "input:"},
		{"/v1/completions", `{"model":"m","prompt":"x","max_tokens":"5"}`, "max_tokens", "max_tokens:"},
		{"/v1/chat/completions", `{"model":"m",`, "", "unexpected end of JSON input"},
	} {
		t.Run(tc.path+" "+tc.param, func(t *testing.T) {
			resp, err := http.Post(ts.URL+tc.path, "application/json", strings.NewReader(tc.body))
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			var got struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
			assert.Equal(t, "invalid_request_error", got.Error.Type)
			assert.Contains(t, got.Error.Message, tc.msg)
			if tc.param == "" {
				assert.Nil(t, got.Error.Param, "malformed JSON names no field")
			} else if assert.NotNil(t, got.Error.Param) {
				assert.Equal(t, tc.param, *got.Error.Param)
			}
		})
	}
}
