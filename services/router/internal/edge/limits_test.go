package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/router/internal/reqbody"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
	} `json:"error"`
}

func decodeError(t *testing.T, r io.Reader) openAIError {
	t.Helper()
	var e openAIError
	require.NoError(t, json.NewDecoder(r).Decode(&e))
	return e
}

// JSON text must be UTF-8: a request with other bytes in a string is a
// 400 naming the field on every route, never passed on with the bytes
// replaced.
func TestInvalidUTF8IsRefused(t *testing.T) {
	ts := serve(t, scripted{})
	for _, tc := range []struct {
		method, path, body, param string
	}{
		{"POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"a` + "\xff" + `b"}]}`, "messages[0].content"},
		{"POST", "/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"a` + "\xff" + `b"}]}`, "messages[0].content"},
		{"POST", "/v1/chat/completions", `{"model":"mock-` + "\xc3(" + `","messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"POST", "/v1/completions", `{"model":"m","prompt":"a` + "\xff" + `b"}`, "prompt"},
		{"POST", "/v1/completions", `{"model":"m","stream":true,"prompt":"a` + "\xff" + `b"}`, "prompt"},
		{"POST", "/v1/embeddings", `{"model":"m","input":"a` + "\xff" + `b"}`, "input"},
		{"GET", "/v1/models/mock-%C3(", ``, "model"},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.param, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			e := decodeError(t, resp.Body)
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			assert.Contains(t, e.Error.Message, "not valid UTF-8")
			if assert.NotNil(t, e.Error.Param) {
				assert.Equal(t, tc.param, *e.Error.Param)
			}
		})
	}
}

// An error quotes at most a short prefix of what the client sent.
func TestErrorsDoNotEchoLongValues(t *testing.T) {
	ts := serve(t, scripted{})
	huge := strings.Repeat("z", 1<<20)
	for name, do := range map[string]func() (*http.Response, error){
		"unknown path": func() (*http.Response, error) { return http.Get(ts.URL + "/v1/" + huge[:512<<10]) },
		"content part type": func() (*http.Response, error) {
			return http.Post(ts.URL+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"m","messages":[{"role":"user","content":[{"type":"`+huge+`"}]}]}`))
		},
		"number literal": func() (*http.Response, error) {
			return http.Post(ts.URL+"/v1/embeddings", "application/json", strings.NewReader(`{"model":"m","input":"x","dimensions":1`+strings.Repeat("0", 1<<20)+`}`))
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := do()
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.GreaterOrEqual(t, resp.StatusCode, 400)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Less(t, len(b), 1024, "answer: %.300s", b)
			assert.Contains(t, string(b), "…")
		})
	}
}

// A client that declares more body than it sends gets 408 with an OpenAI
// error body, instead of holding the connection open.
func TestBodyThatDoesNotArriveIs408(t *testing.T) {
	h, err := New(context.Background(), scripted{}, Options{Log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ts := httptest.NewServer(reqbody.WithTimeout(h, 100*time.Millisecond))
	t.Cleanup(ts.Close)
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second))) // the test's bound, not the subject
	_, err = fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"+`{"model":"m",`)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer")
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	e := decodeError(t, resp.Body)
	assert.Equal(t, "invalid_request_error", e.Error.Type)
	assert.Equal(t, "request body not received within 100ms", e.Error.Message)
	assert.Nil(t, e.Error.Param)
}
