package edge

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorBody(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
	}{
		{
			name:       "bad request keeps param",
			err:        &apierror.Error{Code: codes.InvalidArgument, Param: "model", Message: "you must provide a model parameter"},
			wantStatus: 400,
			wantBody:   `{"error":{"message":"you must provide a model parameter","type":"invalid_request_error","param":"model","code":null}}`,
		},
		{
			name:       "unknown model",
			err:        &apierror.Error{Code: codes.NotFound, Param: "model", ErrCode: "model_not_found", Type: "invalid_request_error", Message: "The model `x` does not exist."},
			wantStatus: 404,
			wantBody:   `{"error":{"message":"The model ` + "`x`" + ` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
		},
		{
			name:       "node 422 keeps its status and message, named after the node",
			err:        &apierror.Error{Code: codes.InvalidArgument, HTTPStatus: 422, Type: "invalid_request_error", Message: "prompt too long", Node: "gpu-1"},
			wantStatus: 422,
			wantBody:   `{"error":{"message":"prompt too long","type":"invalid_request_error","param":null,"code":null}}`,
		},
		{
			name:       "node 429 is a rate limit",
			err:        &apierror.Error{Code: codes.ResourceExhausted, HTTPStatus: 429, Message: "slow down", Node: "gpu-1"},
			wantStatus: 429,
			wantBody:   `{"error":{"message":"node gpu-1: slow down","type":"rate_limit_error","param":null,"code":null}}`,
		},
		{
			name:       "no reachable node",
			err:        &apierror.Error{Code: codes.Unavailable, Message: `no reachable node for model "m"; tried a: connect: connection refused`},
			wantStatus: 503,
			wantBody:   `{"error":{"message":"no reachable node for model \"m\"; tried a: connect: connection refused","type":"service_unavailable_error","param":null,"code":null}}`,
		},
		{
			name:       "a plain gRPC status",
			err:        status.Error(codes.DeadlineExceeded, "deadline exceeded"),
			wantStatus: 504,
			wantBody:   `{"error":{"message":"deadline exceeded","type":"server_error","param":null,"code":null}}`,
		},
		{
			name:       "internal details are masked",
			err:        status.Error(codes.Internal, "nil pointer somewhere secret"),
			wantStatus: 500,
			wantBody:   `{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`,
		},
		{
			name:       "a node's 500 keeps its message",
			err:        &apierror.Error{Code: codes.Internal, HTTPStatus: 500, Message: "CUDA out of memory", Node: "gpu-1"},
			wantStatus: 500,
			wantBody:   `{"error":{"message":"node gpu-1: CUDA out of memory","type":"server_error","param":null,"code":null}}`,
		},
		{
			name:       "a client that went away",
			err:        context.Canceled,
			wantStatus: 499,
			wantBody:   `{"error":{"message":"context canceled","type":"invalid_request_error","param":null,"code":null}}`,
		},
	}
	ew := &errorWriter{log: slog.New(slog.DiscardHandler)}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := ew.body(context.Background(), tc.err)
			assert.Equal(t, tc.wantStatus, code)
			assert.JSONEq(t, tc.wantBody, string(body))
			assert.Equal(t, tc.wantBody, string(body), "field order and nulls as OpenAI sends them")
		})
	}
}

func TestUnknownRoutesAreOpenAIErrors(t *testing.T) {
	ts := serve(t, scripted{})
	cases := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v1/nope", http.StatusNotFound},
		{http.MethodDelete, "/v1/models", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v1/chat/completions:stream", http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(`{}`))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
			var e struct {
				Error struct {
					Message, Type string
				}
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			assert.Contains(t, e.Error.Message, tc.path)
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	h, err := New(context.Background(), scripted{}, Options{Log: slog.New(slog.DiscardHandler), MaxBodyBytes: 64})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"`+strings.Repeat("x", 100)+`"}]}`))
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Contains(t, rec.Body.String(), "larger than 64 bytes")
}

func TestRetryAfterOnOverload(t *testing.T) {
	ew := &errorWriter{log: slog.New(slog.DiscardHandler)}
	cases := map[error]string{
		&apierror.Error{Code: codes.Unavailable, Message: "busy"}:                        "1",
		&apierror.Error{Code: codes.ResourceExhausted, HTTPStatus: 429, Message: "slow"}: "1",
		&apierror.Error{Code: codes.NotFound, Message: "no such model"}:                  "",
	}
	for err, want := range cases {
		rec := httptest.NewRecorder()
		ew.write(context.Background(), rec, err)
		assert.Equal(t, want, rec.Header().Get("Retry-After"), err.Error())
	}
}
