package ollamaedge

import (
	"bufio"
	"fmt"
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

// JSON text must be UTF-8: the Ollama edge, which passes bodies on
// verbatim, refuses other bytes naming the field instead of letting them
// through (or replacing them, as encoding/json would).
func TestInvalidUTF8IsRefused(t *testing.T) {
	for _, tc := range []struct {
		path, body, field string
	}{
		{"/api/chat", `{"model":"qwen","messages":[{"role":"user","content":"a` + "\xff" + `b"}]}`, "messages[0].content"},
		{"/api/generate", `{"model":"qwen","prompt":"a` + "\xff" + `b"}`, "prompt"},
		{"/api/embed", `{"model":"nomic","input":["ok","a` + "\xff" + `b"]}`, "input[1]"},
		{"/api/embeddings", `{"model":"nomic","prompt":"a` + "\xff" + `b"}`, "prompt"},
		{"/api/show", `{"model":"mock-` + "\xc3(" + `"}`, "model"},
		{"/api/chat", `{"model":"qwen","options":{"stop":["` + "\xff" + `"]}}`, "options.stop[0]"},
	} {
		t.Run(tc.path+" "+tc.field, func(t *testing.T) {
			fake := &fakeAdapter{}
			srv := edge(t, fake, 1<<20)
			resp, body := do(t, srv, "POST", tc.path, tc.body)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			msg := errorOf(t, body)
			assert.Contains(t, msg, tc.field+": string is not valid UTF-8")
			assert.Empty(t, fake.Calls(), "a refused request reached the adapter")
		})
	}
}

// An error quotes at most a short prefix of what the client sent.
func TestErrorsDoNotEchoLongValues(t *testing.T) {
	huge := strings.Repeat("z", 1<<20)
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"unknown model", "POST", "/api/chat", `{"model":"` + huge + `"}`},
		{"model of the wrong type", "POST", "/api/chat", `{"model":1` + strings.Repeat("0", 1<<20) + `}`},
		{"model admin path", "POST", "/api/blobs/" + huge[:512<<10], ``},
		{"wrong method", "PUT", "/api/tags" + "", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := edge(t, &fakeAdapter{}, 4<<20)
			resp, body := do(t, srv, tc.method, tc.path, tc.body)
			assert.GreaterOrEqual(t, resp.StatusCode, 400)
			assert.Less(t, len(body), 1024, "answer: %.300s", body)
		})
	}
	srv := edge(t, &fakeAdapter{}, 4<<20)
	_, body := do(t, srv, "POST", "/api/chat", `{"model":"`+huge+`"}`)
	assert.Equal(t, "model '"+strings.Repeat("z", 64)+"…' not found", errorOf(t, body))
}

// A body that does not arrive in time is a 408 with Ollama's error body.
func TestBodyThatDoesNotArriveIs408(t *testing.T) {
	fake := &fakeAdapter{}
	inner := edge(t, fake, 1<<20) // for its handler's routing; served again below with the timeout
	ts := httptest.NewServer(reqbody.WithTimeout(inner.Config.Handler, 100*time.Millisecond))
	t.Cleanup(ts.Close)
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second))) // the test's bound, not the subject
	_, err = fmt.Fprintf(conn, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"+`{"model":"qwen",`)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer")
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	var raw strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&raw)
	assert.Equal(t, "request body not received within 100ms", errorOf(t, raw.String()))
	assert.Empty(t, fake.Calls())
}
