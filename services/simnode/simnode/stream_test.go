package simnode

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// chunkJSON builds one expected chat.completion.chunk, apart from the code
// under test.
func chunkJSON(id string, created int64, choices, usage string) string {
	s := fmt.Sprintf(`{"id":%q,"object":"chat.completion.chunk","created":%d,"model":%q,"system_fingerprint":"simnode-n1","choices":%s`,
		id, created, testModel, choices)
	if usage != "" {
		s += `,"usage":` + usage
	}
	return s + "}"
}

func TestStreamFraming(t *testing.T) {
	tests := []struct {
		name         string
		extra        string // request fields
		tokens       int
		finish       string
		includeUsage bool
	}{
		{"no usage", ``, 3, "stop", false},
		{"include_usage false", `,"stream_options":{"include_usage":false}`, 3, "stop", false},
		{"include_usage true", `,"stream_options":{"include_usage":true}`, 3, "stop", true},
		{"max_tokens gives length", `,"max_tokens":2,"stream_options":{"include_usage":true}`, 2, "length", true},
	}
	_, ts := startNode(t, Config{Name: "n1", Tokens: 3})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := `{"model":"` + testModel + `","stream":true,"messages":[{"role":"user","content":"a b"}]` + tt.extra + `}`
			resp, body := post(t, ts.URL+"/v1/chat/completions", req)
			checkStatus(t, resp, body, http.StatusOK)
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type = %q, want text/event-stream", ct)
			}
			if name := resp.Header.Get("X-Simnode-Name"); name != "n1" {
				t.Errorf("X-Simnode-Name = %q, want n1", name)
			}

			// Parse the SSE framing line by line: "data: X", blank, repeat.
			if !strings.HasSuffix(body, "\n\n") {
				t.Fatalf("body does not end with a blank line: %q", body)
			}
			var events []string
			for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
				data, ok := strings.CutPrefix(ev, "data: ")
				if !ok || strings.Contains(data, "\n") {
					t.Fatalf("malformed event %q in %q", ev, body)
				}
				events = append(events, data)
			}
			var first struct {
				ID      string
				Created int64
			}
			if err := json.Unmarshal([]byte(events[0]), &first); err != nil {
				t.Fatalf("first event %s: %v", events[0], err)
			}
			if want := fmt.Sprintf("chatcmpl-%d", i+1); first.ID != want {
				t.Errorf("id = %q, want %q", first.ID, want)
			}

			var want []string
			for k := range tt.tokens {
				want = append(want, chunkJSON(first.ID, first.Created,
					fmt.Sprintf(`[{"index":0,"delta":{"role":"assistant","content":"t%d "},"finish_reason":null}]`, k), ""))
			}
			want = append(want, chunkJSON(first.ID, first.Created,
				`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"`+tt.finish+`"}]`, ""))
			if tt.includeUsage {
				want = append(want, chunkJSON(first.ID, first.Created, `[]`,
					fmt.Sprintf(`{"prompt_tokens":2,"completion_tokens":%d,"total_tokens":%d}`, tt.tokens, tt.tokens+2)))
			}
			want = append(want, "[DONE]")
			if got, exp := strings.Join(events, "\n"), strings.Join(want, "\n"); got != exp {
				t.Errorf("events\n got %s\nwant %s", got, exp)
			}
		})
	}
}

// A stream must be flushed per token: with a long TokenDelay the first
// chunk has to arrive long before the second could. Hanging up then must
// be seen by the node as a cancellation.
func TestStreamFlushesEachChunkAndNoticesDisconnect(t *testing.T) {
	node, ts := startNode(t, Config{Tokens: 3, TokenDelay: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	// The body stays open until the test cancels: closing it early would
	// hang up on the node before the mid-stream check below.
	bodyDone := make(chan struct{})
	defer func() { cancel(); <-bodyDone }()
	go func() { // owned by this test; ends when the test cancels ctx
		defer close(bodyDone)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+testModel+`","stream":true,"messages":[]}`))
		// Even the headers only arrive if the first chunk is flushed.
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		got <- result{line, err}
		<-ctx.Done()
	}()
	select {
	case r := <-got:
		if r.err != nil || !strings.HasPrefix(r.line, "data: ") || !strings.Contains(r.line, `"content":"t0 "`) {
			t.Fatalf("first line = %q (err %v), want the t0 chunk", r.line, r.err)
		}
	case <-time.After(2 * time.Second):
		cancel()
		t.Fatal("first chunk not flushed within 2s")
	}
	if st := node.Stats(); st.InFlight != 1 || st.Canceled != 0 {
		t.Fatalf("mid-stream stats = %+v, want 1 in flight, 0 canceled", st)
	}

	cancel() // the client hangs up mid-stream
	waitFor(t, "Canceled == 1", func() bool { return node.Stats().Canceled == 1 })
	waitFor(t, "InFlight == 0", func() bool { return node.Stats().InFlight == 0 })
	time.Sleep(20 * time.Millisecond) // would reveal a double count
	if n := node.Stats().Canceled; n != 1 {
		t.Errorf("Canceled = %d, want exactly 1", n)
	}
}
