package simnode

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const chatReq = `{"model":"` + testModel + `","messages":[{"role":"user","content":"hi"}]}`
const embedReq = `{"model":"` + testModel + `","input":"hi"}`

func TestStatusFault(t *testing.T) {
	busy := "server busy, please try again.  maximum pending requests exceeded"
	tests := []struct {
		name   string
		faults Faults
		body   string
	}{
		{"503 uses Ollama's busy text", Faults{Status: 503}, openAIErr(busy, "api_error")},
		{"500 with message", Faults{Status: 500, Message: "boom"}, openAIErr("boom", "api_error")},
		{"429 is a request error", Faults{Status: 429}, openAIErr("Too Many Requests", "invalid_request_error")},
		{"400 with message", Faults{Status: 400, Message: "nope"}, openAIErr("nope", "invalid_request_error")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := startNode(t, Config{Faults: tt.faults})
			// The fault applies whatever the body, even an invalid one.
			for _, r := range []struct{ path, body string }{
				{"/v1/chat/completions", chatReq},
				{"/v1/chat/completions", `{"stream":true,`},
				{"/v1/embeddings", embedReq},
			} {
				resp, body := post(t, ts.URL+r.path, r.body)
				checkStatus(t, resp, body, tt.faults.Status)
				if body != tt.body {
					t.Errorf("%s: body = %s, want %s", r.path, body, tt.body)
				}
			}
			// Probes stay healthy.
			resp, body := get(t, ts.URL+"/api/tags")
			checkStatus(t, resp, body, http.StatusOK)
		})
	}
}

func TestHangReleasedByClientCancel(t *testing.T) {
	for _, r := range []struct{ path, body string }{
		{"/v1/chat/completions", chatReq},
		{"/v1/chat/completions", strings.Replace(chatReq, `{`, `{"stream":true,`, 1)},
		{"/v1/embeddings", embedReq},
	} {
		t.Run(r.path, func(t *testing.T) {
			node, ts := startNode(t, Config{Faults: Faults{Hang: true}})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			errc := make(chan error, 1)
			go func() { // owned here: always finishes once ctx is cancelled
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+r.path, strings.NewReader(r.body))
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			waitFor(t, "the request to hang in flight", func() bool { return node.Stats().InFlight == 1 })
			select {
			case err := <-errc:
				t.Fatalf("hung request answered: %v", err)
			case <-time.After(30 * time.Millisecond):
			}
			if n := node.Stats().Canceled; n != 0 {
				t.Fatalf("Canceled = %d before cancel", n)
			}

			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("client error = %v, want context.Canceled", err)
			}
			waitFor(t, "Canceled == 1", func() bool { return node.Stats().Canceled == 1 })
			waitFor(t, "InFlight == 0", func() bool { return node.Stats().InFlight == 0 })
		})
	}
}

func TestFailAfterTokensStream(t *testing.T) {
	tests := []struct {
		name      string
		tokens    int
		failAfter int
		wantData  int // content chunks seen before the connection drops
	}{
		{"mid answer", 5, 2, 2},
		{"after first", 5, 1, 1},
		{"beyond the answer still never finishes", 2, 9, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node, ts := startNode(t, Config{Tokens: tt.tokens, Faults: Faults{FailAfterTokens: tt.failAfter}})
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/v1/chat/completions",
				strings.NewReader(strings.Replace(chatReq, `{`, `{"stream":true,`, 1)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			checkStatus(t, resp, "", http.StatusOK)

			var events []string
			br := bufio.NewReader(resp.Body)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("read error = %v, want unexpected EOF", err)
					}
					break
				}
				if data, ok := strings.CutPrefix(line, "data: "); ok {
					events = append(events, data)
				}
			}
			if len(events) != tt.wantData {
				t.Fatalf("got %d events %q, want %d content chunks", len(events), events, tt.wantData)
			}
			for i, ev := range events {
				if !strings.Contains(ev, `"content":"t`) || !strings.Contains(ev, `"finish_reason":null`) {
					t.Errorf("event %d = %s, want a content chunk", i, ev)
				}
			}
			if st := node.Stats(); st.Canceled != 0 {
				t.Errorf("Canceled = %d: a node-side crash is not a client cancel", st.Canceled)
			}
		})
	}
}

func TestFailAfterTokensNonStreamed(t *testing.T) {
	_, ts := startNode(t, Config{Faults: Faults{FailAfterTokens: 1}})
	for _, r := range []struct{ path, body string }{
		{"/v1/chat/completions", chatReq},
		{"/v1/embeddings", embedReq},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+r.path, strings.NewReader(r.body))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: got status %d, want the connection dropped", r.path, resp.StatusCode)
		} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: error = %v, want EOF", r.path, err)
		}
	}
}

func TestFaultsAdminEndpoint(t *testing.T) {
	node, ts := startNode(t, Config{})
	resp, body := post(t, ts.URL+"/simnode/faults", `{"status":503}`)
	checkStatus(t, resp, body, http.StatusOK)
	if want := `{"status":503,"message":"","fail_after_tokens":0,"hang":false,"probe_status":0}`; body != want {
		t.Errorf("echo = %s, want %s", body, want)
	}
	// Takes effect for the very next request.
	resp, body = post(t, ts.URL+"/v1/chat/completions", chatReq)
	checkStatus(t, resp, body, http.StatusServiceUnavailable)

	resp, body = post(t, ts.URL+"/simnode/faults", `{"probe_status":500,"message":"x"}`)
	checkStatus(t, resp, body, http.StatusOK)
	if got := node.currentFaults(); got != (Faults{ProbeStatus: 500, Message: "x"}) {
		t.Errorf("faults = %+v: the post must replace, not merge", got)
	}
	_, body = get(t, ts.URL+"/simnode/faults")
	if want := `{"status":0,"message":"x","fail_after_tokens":0,"hang":false,"probe_status":500}`; body != want {
		t.Errorf("GET faults = %s, want %s", body, want)
	}

	for _, bad := range []string{`{"statuss":503}`, `{"status":200}`, `{"status":500,"hang":true}`, `{"hang":"yes"}`, `{} {}`, ``} {
		resp, body := post(t, ts.URL+"/simnode/faults", bad)
		checkStatus(t, resp, body, http.StatusBadRequest)
		if !strings.HasPrefix(body, `{"error":"invalid faults: `) {
			t.Errorf("%s: body = %s", bad, body)
		}
	}
	if got := node.currentFaults(); got != (Faults{ProbeStatus: 500, Message: "x"}) {
		t.Errorf("faults = %+v after rejected posts, want unchanged", got)
	}

	resp, body = post(t, ts.URL+"/simnode/faults", `{}`)
	checkStatus(t, resp, body, http.StatusOK)
	resp, body = get(t, ts.URL+"/api/version")
	checkStatus(t, resp, body, http.StatusOK)
}

func TestSetFaultsAppliesToNewRequestsOnly(t *testing.T) {
	node, ts := startNode(t, Config{Tokens: 2, FirstTokenDelay: 100 * time.Millisecond})
	errc := make(chan error, 1)
	go func() { // owned: finishes when the slow request is answered
		resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatReq))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		errc <- err
	}()
	waitFor(t, "request in flight", func() bool { return node.Stats().InFlight == 1 })
	node.SetFaults(Faults{Status: 500})
	resp, body := post(t, ts.URL+"/v1/chat/completions", chatReq)
	checkStatus(t, resp, body, http.StatusInternalServerError)
	if err := <-errc; err != nil {
		t.Errorf("request started before SetFaults: %v, want 200", err)
	}
}
