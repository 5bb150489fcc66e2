package bench

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
)

// BenchmarkCancelReachesNode measures how long a client's hang-up in the
// middle of a stream takes to reach the node (router → adapter → node):
// from closing the client connection to the node seeing its request
// canceled. Target: under 100 ms.
func BenchmarkCancelReachesNode(b *testing.B) {
	node := meshtest.StartNode(b, "slow", simnode.Config{Models: []string{"m"}, Tokens: 100000, TokenDelay: 5 * time.Millisecond})
	m := meshtest.Start(b, binaries(b), []*meshtest.Node{node}, meshtest.Options{HealthmonArgs: []string{"-probe-interval", "5s"}})
	const body = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}`
	var lat []time.Duration
	for range 100 {
		before := node.Stats().Canceled
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.RESTURL+"/v1/chat/completions", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		cancel()
		for node.Stats().Canceled == before {
			if time.Since(start) > 10*time.Second {
				b.Fatal("the node never saw the cancel")
			}
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
		resp.Body.Close()
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
