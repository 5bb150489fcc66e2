package simnode

import (
	"maps"
	"net/http"
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
