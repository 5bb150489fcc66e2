// Package bench measures what the mesh adds to a request: the same
// open-loop load (a fixed request rate, independent of how fast answers
// come back) is sent straight to a simulated node and through the mesh,
// and latency percentiles are reported for both.
//
//	make bench   # go test -run '^$' -bench . -benchtime 1x ./tests/bench
//
// Metrics: p50-µs, p99-µs, max-µs and errors per case; ttft-* for the time
// to the first streamed event. Results vary with the machine: compare
// direct and mesh from the same run.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
)

// The services are built on first use, so `go test` without -bench (as in
// `make test`) builds nothing.
var (
	buildOnce sync.Once
	binDir    string
	bins      map[string]string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binaries(b *testing.B) map[string]string {
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "llmesh-bench-bin-")
		if buildErr == nil {
			bins, buildErr = meshtest.Binaries(binDir)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return bins
}

const (
	chatBody   = `{"model":"bench","messages":[{"role":"user","content":"hello"}],"max_tokens":8}`
	streamBody = `{"model":"bench","stream":true,"messages":[{"role":"user","content":"hello"}],"max_tokens":8}`
	loadFor    = 10 * time.Second
)

func setup(b *testing.B) (direct, mesh string) {
	node := meshtest.StartNode(b, "bench", simnode.Config{Models: []string{"bench"}, Tokens: 8})
	// No in-flight cap: this measures what the mesh adds, not admission.
	m := meshtest.Start(b, binaries(b), []*meshtest.Node{node}, meshtest.Options{
		HealthmonArgs: []string{"-probe-interval", "5s"}, RouterArgs: []string{"-node-limits", "max-in-flight=0"}})
	return node.URL, m.RESTURL
}

func client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2048, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}}
}

// BenchmarkChat sends non-streamed chats at a fixed rate for loadFor.
func BenchmarkChat(b *testing.B) {
	direct, mesh := setup(b)
	for _, rate := range []int{500, 1000} {
		for _, target := range []struct{ name, url string }{{"direct", direct}, {"mesh", mesh}} {
			b.Run(fmt.Sprintf("%s/%drps", target.name, rate), func(b *testing.B) {
				c := client()
				warm(b, c, target.url+"/v1/chat/completions")
				lat, errs := openLoop(c, target.url+"/v1/chat/completions", chatBody, rate, loadFor, roundTrip)
				report(b, "", lat, errs)
			})
		}
	}
}

// BenchmarkStreamTTFT measures the time from sending a streamed chat to
// reading its first event.
func BenchmarkStreamTTFT(b *testing.B) {
	direct, mesh := setup(b)
	for _, target := range []struct{ name, url string }{{"direct", direct}, {"mesh", mesh}} {
		b.Run(target.name, func(b *testing.B) {
			c := client()
			warm(b, c, target.url+"/v1/chat/completions")
			lat, errs := openLoop(c, target.url+"/v1/chat/completions", streamBody, 100, 5*time.Second, firstEvent)
			report(b, "ttft-", lat, errs)
		})
	}
}

func warm(b *testing.B, c *http.Client, url string) {
	for range 50 {
		if _, err := roundTrip(c, url, chatBody); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
}

type call func(c *http.Client, url, body string) (time.Duration, error)

// openLoop starts one request every 1/rate for d, whether or not earlier
// ones have finished, so slow answers cannot hide queueing (no
// coordinated omission).
func openLoop(c *http.Client, url, body string, rate int, d time.Duration, do call) ([]time.Duration, int) {
	var (
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, rate*int(d/time.Second))
		errs int
		wg   sync.WaitGroup
	)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := do(c, url, body)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lat = append(lat, l)
		}()
	}
	wg.Wait()
	return lat, errs
}

func roundTrip(c *http.Client, url, body string) (time.Duration, error) {
	start := time.Now()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return time.Since(start), nil
}

func firstEvent(c *http.Client, url, body string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("data: {")) {
		return 0, fmt.Errorf("first event: %q %w", line, err)
	}
	ttft := time.Since(start)
	_, err = io.Copy(io.Discard, resp.Body)
	return ttft, err
}

func report(b *testing.B, prefix string, lat []time.Duration, errs int) {
	if len(lat) == 0 {
		b.Fatalf("no successful requests (%d errors)", errs)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), prefix+"p50-µs")
	b.ReportMetric(pct(0.99), prefix+"p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), prefix+"max-µs")
	b.ReportMetric(float64(len(lat)), "requests")
	b.ReportMetric(float64(errs), "errors")
	b.ReportMetric(0, "ns/op") // not meaningful for a fixed-rate run
}
