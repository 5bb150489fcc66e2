package simnode

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestStatsCountRequestsByMethodAndPath(t *testing.T) {
	node, ts := startNode(t, Config{})
	get(t, ts.URL+"/api/tags")
	get(t, ts.URL+"/api/tags")
	post(t, ts.URL+"/v1/chat/completions", chatReq)
	post(t, ts.URL+"/v1/chat/completions", `{bad`)
	post(t, ts.URL+"/v1/embeddings", embedReq)
	get(t, ts.URL+"/no/such")
	do(t, t.Context(), http.MethodHead, ts.URL+"/", "", nil)

	want := map[string]int64{
		"GET /api/tags":             2,
		"POST /v1/chat/completions": 2,
		"POST /v1/embeddings":       1,
		"GET /no/such":              1,
		"HEAD /":                    1,
	}
	if got := node.Stats(); !maps.Equal(got.Requests, want) || got.InFlight != 0 || got.Canceled != 0 {
		t.Errorf("Stats() = %+v, want requests %v and no in-flight or canceled", got, want)
	}
	// The admin endpoint reports the same, plus its own request.
	want["GET /simnode/stats"] = 1
	if got := mustStats(t, ts.URL); !maps.Equal(got.Requests, want) {
		t.Errorf("GET /simnode/stats requests = %v, want %v", got.Requests, want)
	}
	// Stats returns a copy.
	node.Stats().Requests["GET /api/tags"] = 99
	if n := node.Stats().Requests["GET /api/tags"]; n != 2 {
		t.Errorf("count = %d after mutating a snapshot, want 2", n)
	}
}

// PeakInFlight is the most requests the node ever handled at once.
func TestStatsPeakInFlight(t *testing.T) {
	node, ts := startNode(t, Config{Faults: Faults{Hang: true}})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(chatReq))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	waitFor(t, "3 requests in flight", func() bool { return node.Stats().InFlight == 3 })
	cancel()
	wg.Wait()
	waitFor(t, "no request in flight", func() bool { return node.Stats().InFlight == 0 })
	if got := node.Stats(); got.PeakInFlight != 3 {
		t.Errorf("PeakInFlight = %d after 3 requests at once, want 3", got.PeakInFlight)
	}
}
