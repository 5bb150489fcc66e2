package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// scripted is an InferenceService that streams the given chunks, then
// fails with err (nil: ends normally).
type scripted struct {
	routerv1.UnimplementedInferenceServiceServer
	chunks []string
	err    error
}

func (s scripted) StreamChatCompletion(_ *routerv1.StreamChatCompletionRequest, stream grpc.ServerStreamingServer[routerv1.StreamChatCompletionResponse]) error {
	for _, c := range s.chunks {
		content := c
		if err := stream.Send(&routerv1.StreamChatCompletionResponse{Chunk: &openaiv1.ChatCompletionChunk{
			Id: "c1", Model: "m", Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: &content}}},
		}}); err != nil {
			return err
		}
	}
	return s.err
}

func serve(t *testing.T, srv routerv1.InferenceServiceServer) *httptest.Server {
	t.Helper()
	h, err := New(context.Background(), srv, Options{Log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

const streamBody = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`

func TestStreamFraming(t *testing.T) {
	cases := []struct {
		name       string
		srv        scripted
		wantStatus int
		wantBody   string
	}{
		{
			name:       "success ends with DONE",
			srv:        scripted{chunks: []string{"a", "b"}},
			wantStatus: http.StatusOK,
			wantBody: `data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
				`data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"b"},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
				"data: [DONE]\n\n",
		},
		{
			name: "failure after the first chunk is one error event, no DONE",
			srv: scripted{chunks: []string{"a", "b"}, err: &apierror.Error{Code: codes.Unavailable, Node: "n1",
				Message: "answer broken off: unexpected EOF"}},
			wantStatus: http.StatusOK,
			wantBody: `data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
				`data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"b"},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
				`data: {"error":{"message":"node n1: answer broken off: unexpected EOF","type":"service_unavailable_error","param":null,"code":null}}` + "\n\n",
		},
		{
			name:       "failure before the first chunk is a plain JSON error",
			srv:        scripted{err: &apierror.Error{Code: codes.NotFound, Param: "model", ErrCode: "model_not_found", Message: "The model `m` does not exist."}},
			wantStatus: http.StatusNotFound,
			wantBody:   `{"error":{"message":"The model ` + "`m`" + ` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
		},
		{
			name:       "empty answer is just DONE",
			srv:        scripted{},
			wantStatus: http.StatusOK,
			wantBody:   "data: [DONE]\n\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := serve(t, tc.srv)
			resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(streamBody))
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.wantStatus, resp.StatusCode)
			assert.Equal(t, tc.wantBody, string(body))
			if tc.wantStatus == http.StatusOK {
				assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
			}
		})
	}
}

// The OpenAI SDKs send their timeout in seconds (Node truncates to whole
// seconds, Python may send "600.0"); anything else is no timeout.
func TestClientTimeoutHeader(t *testing.T) {
	cases := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"600", 10 * time.Minute, true},
		{"600.0", 10 * time.Minute, true},
		{" 2.5 ", 2500 * time.Millisecond, true},
		{"1e300", 24 * time.Hour, true},
		{"", 0, false},
		{"0", 0, false},
		{"-3", 0, false},
		{"NaN", 0, false},
		{"soon", 0, false},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.value != "" {
			h.Set("x-stainless-timeout", tc.value)
		}
		got, ok := ClientTimeout(h)
		assert.Equal(t, tc.ok, ok, "%q", tc.value)
		assert.Equal(t, tc.want, got, "%q", tc.value)
	}
}
