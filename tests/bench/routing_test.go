package bench

import (
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
)

// BenchmarkRoutingPolicies compares the routing policies on three unequal
// simulated nodes serving one model: a fast one (1 ms per token), one three
// times slower, and one where the model is not loaded (every answer pays a
// 300 ms load first). Open-loop load, non-streamed chats of 8 tokens.
func BenchmarkRoutingPolicies(b *testing.B) {
	nodes := []*meshtest.Node{
		meshtest.StartNode(b, "fast", simnode.Config{Models: []string{"m"}, Tokens: 8, FirstTokenDelay: time.Millisecond, TokenDelay: time.Millisecond}),
		meshtest.StartNode(b, "slow", simnode.Config{Models: []string{"m"}, Tokens: 8, FirstTokenDelay: 3 * time.Millisecond, TokenDelay: 3 * time.Millisecond}),
		meshtest.StartNode(b, "cold", simnode.Config{Models: []string{"m"}, Loaded: []string{}, Tokens: 8, FirstTokenDelay: 300 * time.Millisecond, TokenDelay: time.Millisecond}),
	}
	const body = `{"model":"m","messages":[{"role":"user","content":"hello"}]}`
	for _, pol := range []string{"round-robin", "least-in-flight", "p2c"} {
		b.Run(pol, func(b *testing.B) {
			m := meshtest.Start(b, binaries(b), nodes, meshtest.Options{
				// No in-flight cap, so the policies alone decide.
				RouterArgs:    []string{"-policy", pol, "-node-limits", "max-in-flight=0"},
				HealthmonArgs: []string{"-probe-interval", "5s"},
			})
			c := client()
			lat, errs := openLoop(c, m.RESTURL+"/v1/chat/completions", body, 100, loadFor, roundTrip)
			report(b, "", lat, errs)
			b.ReportMetric(float64(percentile(lat, 0.95).Microseconds()), "p95-µs")
		})
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
