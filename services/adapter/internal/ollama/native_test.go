package ollama

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ollamaNode is an Ollama node on loopback that records the request it
// got and answers with the given NDJSON lines (or with answer, when set).
type ollamaNode struct {
	lines  []string
	status int
	answer http.HandlerFunc

	mu   sync.Mutex
	path string
	body []byte
}

func (n *ollamaNode) got() (string, []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.path, n.body
}

func nativeClient(t *testing.T, n *ollamaNode) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n.mu.Lock()
		n.path, n.body = r.Method+" "+r.URL.Path, body
		n.mu.Unlock()
		if n.answer != nil {
			n.answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		if n.status != 0 {
			w.WriteHeader(n.status)
		}
		for _, l := range n.lines {
			io.WriteString(w, l+"\n")
		}
	}))
	t.Cleanup(srv.Close)
	pool := nodeconn.NewPool(nodeconn.Options{})
	t.Cleanup(pool.Close)
	conn, err := pool.Client(&nodev1.Node{Id: "ol", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: srv.URL})
	require.NoError(t, err)
	return New(conn)
}

func native(t *testing.T, c *Client, path, body string, firstToken time.Duration) ([]string, error) {
	t.Helper()
	var out []string
	err := c.Native(t.Context(), path, []byte(body), firstToken, 0, func(obj []byte) error {
		require.True(t, json.Valid(obj), "invalid JSON sent on: %s", obj)
		out = append(out, string(obj))
		return nil
	})
	return out, err
}

func fields(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), "%s", raw)
	return m
}

const (
	chat1    = `{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"Hel","thinking":"hmm"},"done":false}`
	chat2    = `{"model":"m","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant","content":"lo"},"done":false}`
	chatCall = `{"model":"m","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":false}`
	chatDone = `{"model":"m","created_at":"2025-01-01T00:00:02Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":9,"prompt_eval_count":4,"eval_count":2}`
	// chatDoneNoEval is a done object of a node that did not count.
	chatDoneNoEval = `{"model":"m","created_at":"2025-01-01T00:00:02Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":0}`
	gen1           = `{"model":"m","created_at":"t","response":"a","done":false}`
	gen2           = `{"model":"m","created_at":"t","response":"b","thinking":"t1","done":false}`
	genDone        = `{"model":"m","created_at":"t","response":"","done":true,"done_reason":"length","context":[1,2,3]}`
)

// TestPassthrough: the client's request reaches the node as it came, with
// only "stream" forced on for chat and generate.
func TestPassthrough(t *testing.T) {
	tests := []struct {
		name, path, body string
		wantStream       any // the node's "stream"; nil: left as it came
	}{
		{"chat default stream", PathChat, `{"model":"m","messages":[{"role":"user","content":"hi","images":["aW1n"]}],"keep_alive":"5m","think":true,"options":{"num_ctx":8192,"mirostat":2}}`, true},
		{"chat stream false", PathChat, `{"model":"m","stream":false,"messages":[],"format":{"type":"object"}}`, true},
		{"generate stream null", PathGenerate, `{"model":"m","stream":null,"prompt":"p","raw":true,"suffix":"s"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &ollamaNode{lines: []string{chatDone}}
			if tt.path == PathGenerate {
				n.lines = []string{genDone}
			}
			_, err := native(t, nativeClient(t, n), tt.path, tt.body, 0)
			require.NoError(t, err)
			path, body := n.got()
			assert.Equal(t, "POST "+tt.path, path)
			want := fields(t, []byte(tt.body))
			want["stream"] = tt.wantStream
			assert.Equal(t, want, fields(t, body))
		})
	}

	for _, path := range []string{PathEmbed, PathEmbeddings, PathShow} {
		t.Run("verbatim "+path, func(t *testing.T) {
			n := &ollamaNode{lines: []string{`  {"embeddings":[[0.5]],"model":"m"}  `}}
			body := `{"model":"m","input":"x","truncate":false,"keep_alive":0}`
			out, err := native(t, nativeClient(t, n), path, body, time.Minute)
			require.NoError(t, err)
			p, got := n.got()
			assert.Equal(t, "POST "+path, p)
			assert.Equal(t, body, string(got), "a non-streamed request is sent byte for byte")
			assert.Equal(t, []string{`{"embeddings":[[0.5]],"model":"m"}`}, out, "the answer trimmed, not rewritten")
		})
	}
}

func TestStreamRelay(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		lines    []string
		body     string
		wantLast map[string]any // fields of the last object sent on
	}{{
		name:     "chat objects relayed verbatim",
		path:     PathChat,
		lines:    []string{chat1, "", chat2, chatDone},
		body:     `{"model":"m"}`,
		wantLast: map[string]any{"eval_count": 2.0, "prompt_eval_count": 4.0, "done_reason": "stop"},
	}, {
		name:     "eval_count filled when the node left it 0",
		path:     PathChat,
		lines:    []string{chat1, chat2, chatCall, chatDoneNoEval},
		body:     `{"model":"m","stream":true}`,
		wantLast: map[string]any{"eval_count": 3.0, "done": true},
	}, {
		name:     "generate without eval_count",
		path:     PathGenerate,
		lines:    []string{gen1, gen2, genDone},
		body:     `{"model":"m","prompt":"p"}`,
		wantLast: map[string]any{"eval_count": 2.0, "context": []any{1.0, 2.0, 3.0}, "done_reason": "length"},
	}, {
		name:     "no output, eval_count stays 0",
		path:     PathChat,
		lines:    []string{chatDoneNoEval},
		body:     `{"model":"m"}`,
		wantLast: map[string]any{"eval_count": 0.0},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &ollamaNode{lines: tt.lines}
			out, err := native(t, nativeClient(t, n), tt.path, tt.body, time.Minute)
			require.NoError(t, err)
			var want []string
			for _, l := range tt.lines {
				if l != "" {
					want = append(want, l)
				}
			}
			require.Len(t, out, len(want))
			assert.Equal(t, want[:len(want)-1], out[:len(out)-1], "objects before done go on byte for byte")
			last := fields(t, []byte(out[len(out)-1]))
			for k, v := range tt.wantLast {
				assert.Equal(t, v, last[k], k)
			}
		})
	}
}

// TestStreamFalseFolds: "stream": false gets the node's stream folded
// into the one object Ollama sends.
func TestStreamFalseFolds(t *testing.T) {
	tests := []struct {
		name, path string
		lines      []string
		want       string
	}{{
		name:  "chat",
		path:  PathChat,
		lines: []string{chat1, chat2, chatCall, chatDone},
		want: `{"model":"m","created_at":"2025-01-01T00:00:02Z","done":true,"done_reason":"stop","total_duration":9,"prompt_eval_count":4,"eval_count":2,
			"message":{"role":"assistant","content":"Hello","thinking":"hmm","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]}}`,
	}, {
		name:  "chat without eval_count",
		path:  PathChat,
		lines: []string{chat2, chatDoneNoEval},
		want:  `{"model":"m","created_at":"2025-01-01T00:00:02Z","done":true,"done_reason":"stop","eval_count":1,"message":{"role":"assistant","content":"lo"}}`,
	}, {
		name:  "chat whose text is the word error",
		path:  PathChat,
		lines: []string{`{"model":"m","message":{"role":"assistant","content":"error"},"done":false}`, chatDoneNoEval},
		want:  `{"model":"m","created_at":"2025-01-01T00:00:02Z","done":true,"done_reason":"stop","eval_count":1,"message":{"role":"assistant","content":"error"}}`,
	}, {
		name: "chat with logprobs",
		path: PathChat,
		lines: []string{
			`{"model":"m","message":{"role":"assistant","content":"He"},"logprobs":[{"token":"He","logprob":-0.5,"bytes":[72,101]}],"done":false}`,
			`{"model":"m","message":{"role":"assistant","content":"y"},"logprobs":[{"token":"y","logprob":-1.25,"bytes":[121]}],"done":false}`,
			chatDoneNoEval},
		want: `{"model":"m","created_at":"2025-01-01T00:00:02Z","done":true,"done_reason":"stop","eval_count":2,"message":{"role":"assistant","content":"Hey"},
			"logprobs":[{"token":"He","logprob":-0.5,"bytes":[72,101]},{"token":"y","logprob":-1.25,"bytes":[121]}]}`,
	}, {
		name:  "generate",
		path:  PathGenerate,
		lines: []string{gen1, gen2, genDone},
		want:  `{"model":"m","created_at":"t","response":"ab","thinking":"t1","done":true,"done_reason":"length","context":[1,2,3],"eval_count":2}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &ollamaNode{lines: tt.lines}
			out, err := native(t, nativeClient(t, n), tt.path, `{"model":"m","stream":false}`, time.Minute)
			require.NoError(t, err)
			require.Len(t, out, 1)
			assert.JSONEq(t, tt.want, out[0])
		})
	}
}

func TestNativeErrors(t *testing.T) {
	tests := []struct {
		name       string
		path, body string
		node       *ollamaNode
		code       codes.Code
		httpStatus int
		msg        string
		sent       int // objects sent on before the error
	}{{
		name: "body not JSON", path: PathChat, body: `{"model":`,
		node: &ollamaNode{}, code: codes.InvalidArgument, msg: "invalid JSON body",
	}, {
		name: "stream not a boolean", path: PathGenerate, body: `{"model":"m","stream":"yes"}`,
		node: &ollamaNode{}, code: codes.InvalidArgument, msg: "stream must be a boolean",
	}, {
		name: "unknown model", path: PathChat, body: `{"model":"nope"}`,
		node: &ollamaNode{status: 404, lines: []string{`{"error":"model 'nope' not found"}`}},
		code: codes.NotFound, httpStatus: 404, msg: "model 'nope' not found",
	}, {
		name: "unknown model on show", path: PathShow, body: `{"model":"nope"}`,
		node: &ollamaNode{status: 404, lines: []string{`{"error":"model 'nope' not found"}`}},
		code: codes.NotFound, httpStatus: 404, msg: "model 'nope' not found",
	}, {
		name: "error object in a 200 answer", path: PathEmbed, body: `{"model":"m"}`,
		node: &ollamaNode{lines: []string{`{"error":"input too long"}`}},
		code: codes.Internal, msg: "input too long",
	}, {
		name: "error object mid-stream", path: PathChat, body: `{"model":"m"}`,
		node: &ollamaNode{lines: []string{chat1, `{"error":"out of memory"}`}},
		code: codes.Internal, msg: "out of memory", sent: 1,
	}, {
		name: "stream ends before done", path: PathChat, body: `{"model":"m"}`,
		node: &ollamaNode{lines: []string{chat1, chat2}},
		code: codes.Unavailable, msg: "ended before its done object", sent: 2,
	}, {
		name: "stream false ends before done", path: PathChat, body: `{"model":"m","stream":false}`,
		node: &ollamaNode{lines: []string{chat1}},
		code: codes.Unavailable, msg: "ended before its done object",
	}, {
		name: "invalid object", path: PathGenerate, body: `{"model":"m"}`,
		node: &ollamaNode{lines: []string{gen1, `{"response":`}},
		code: codes.Internal, msg: "invalid object", sent: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := native(t, nativeClient(t, tt.node), tt.path, tt.body, 0)
			e, ok := apierror.FromError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, tt.code, e.Code)
			assert.Equal(t, tt.httpStatus, e.HTTPStatus)
			assert.Contains(t, e.Message, tt.msg)
			assert.Len(t, out, tt.sent)
			if tt.code == codes.InvalidArgument {
				path, _ := tt.node.got()
				assert.Empty(t, path, "a bad request reached the node")
			} else {
				assert.Equal(t, "ol", e.Node)
			}
		})
	}
}

// TestFirstTokenTimeout: a node that takes the request and then says
// nothing is reported hung, for a stream and for stream false alike.
func TestFirstTokenTimeout(t *testing.T) {
	for _, body := range []string{`{"model":"m"}`, `{"model":"m","stream":false}`} {
		t.Run(body, func(t *testing.T) {
			n := &ollamaNode{answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.WriteHeader(http.StatusOK)
				http.NewResponseController(w).Flush()
				<-r.Context().Done()
			}}
			out, err := native(t, nativeClient(t, n), PathChat, body, 20*time.Millisecond)
			e, ok := apierror.FromError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, codes.Unavailable, e.Code)
			assert.Equal(t, apierror.ReasonAnswerFailed, e.Reason)
			assert.Equal(t, "ol", e.Node)
			assert.Equal(t, "no first token within 20ms", e.Message)
			assert.Empty(t, out)
		})
	}
}

// TestClientGoesAway: the caller's cancel is a cancel, not a hung node.
func TestClientGoesAway(t *testing.T) {
	entered := make(chan struct{})
	n := &ollamaNode{answer: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, chat1+"\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}}
	c := nativeClient(t, n)
	ctx, cancel := context.WithCancel(t.Context())
	var got []string
	err := c.Native(ctx, PathChat, []byte(`{"model":"m"}`), time.Hour, 0, func(obj []byte) error {
		got = append(got, string(obj))
		close(entered)
		cancel()
		return nil
	})
	<-entered
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.Canceled, e.Code)
	assert.Equal(t, []string{chat1}, got)
}

// TestSendErrorStops: an error from send ends the relay with that error.
func TestSendErrorStops(t *testing.T) {
	n := &ollamaNode{lines: []string{chat1, chat2, chatDone}}
	c := nativeClient(t, n)
	stop := io.ErrClosedPipe
	calls := 0
	err := c.Native(t.Context(), PathChat, []byte(`{"model":"m"}`), 0, 0, func([]byte) error { calls++; return stop })
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, calls)
}

func TestForceStream(t *testing.T) {
	tests := []struct {
		body     string
		wantWant bool
		err      string
	}{
		{`{"model":"m"}`, true, ""},
		{`{"model":"m","stream":true}`, true, ""},
		{`{"model":"m","stream":false}`, false, ""},
		{`{"model":"m","stream":null}`, true, ""},
		{`{"model":"m","stream":1}`, false, "stream must be a boolean"},
		{`[]`, false, "invalid JSON body"},
		{``, false, "invalid JSON body"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			out, want, err := forceStream([]byte(tt.body))
			if tt.err != "" {
				require.Error(t, err)
				assert.True(t, strings.Contains(err.Error(), tt.err), err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantWant, want)
			assert.Equal(t, true, fields(t, out)["stream"])
			assert.Equal(t, "m", fields(t, out)["model"])
		})
	}
}

// TestNoFirstTokenBoundOnWholeAnswers: /api/embed, /api/embeddings and
// /api/show have no first token (the answer is one object, however long
// a large batch takes), so firstToken does not bound them, as it does not
// bound the OpenAI embeddings call.
func TestNoFirstTokenBoundOnWholeAnswers(t *testing.T) {
	for _, path := range []string{PathEmbed, PathEmbeddings, PathShow} {
		t.Run(path, func(t *testing.T) {
			n := &ollamaNode{lines: []string{`{"embeddings":[[1]]}`}}
			out, err := native(t, nativeClient(t, n), path, `{"model":"m"}`, time.Nanosecond)
			require.NoError(t, err)
			assert.Equal(t, []string{`{"embeddings":[[1]]}`}, out)
		})
	}
}

// A "stream": false chat is folded from a stream: its first line stops the
// first-token clock (nothing is sent on until the end), and a node that
// then stalls is caught by the idle bound.
func TestStreamFalseWatchesTheNodesLines(t *testing.T) {
	slow := func(stall bool) *ollamaNode {
		return &ollamaNode{answer: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			rc := http.NewResponseController(w)
			for _, l := range []string{chat1, chat2} {
				io.WriteString(w, l+"\n")
				rc.Flush()
				time.Sleep(30 * time.Millisecond) // a token at a time, each slower than the first-token bound
			}
			if stall {
				<-r.Context().Done()
				return
			}
			io.WriteString(w, chatDone+"\n")
		}}
	}
	var out []string
	c := nativeClient(t, slow(false))
	err := c.Native(t.Context(), PathChat, []byte(`{"model":"m","stream":false}`), 20*time.Millisecond, time.Minute, func(obj []byte) error {
		out = append(out, string(obj))
		return nil
	})
	require.NoError(t, err)
	require.Len(t, out, 1)
	assert.Equal(t, "Hello", fields(t, []byte(out[0]))["message"].(map[string]any)["content"])

	c = nativeClient(t, slow(true))
	err = c.Native(t.Context(), PathChat, []byte(`{"model":"m","stream":false}`), time.Minute, 100*time.Millisecond, func([]byte) error { return nil })
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, "silent for 100ms in the middle of an answer", e.Message)
}
