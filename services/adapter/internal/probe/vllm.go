package probe

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/promtext"
)

// vLLM's gauges in /metrics. Older releases name the KV cache gauge
// gpu_cache_usage_perc.
const (
	vllmRunning    = "vllm:num_requests_running"
	vllmWaiting    = "vllm:num_requests_waiting"
	vllmKVCache    = "vllm:kv_cache_usage_perc"
	vllmKVCacheOld = "vllm:gpu_cache_usage_perc"
)

// probeVLLM probes a vLLM server: /health proves the engine is alive
// (vLLM refuses connections while it loads and answers 503 when the
// engine died), /v1/models lists what it serves (all loaded), /version
// names it, and /metrics says how busy it is. A failure of /version or
// /metrics never makes the node down; the reason mentions the latter.
func probeVLLM(_ *Prober, ctx context.Context, conn *nodeconn.Client) *nodev1.ProbeResult {
	res := &nodev1.ProbeResult{}
	if _, err := get(ctx, conn, "/health", "*/*"); err != nil {
		return failed(res, conn, "/health", err)
	}
	var v struct {
		Version string `json:"version"`
	}
	if getJSON(ctx, conn, "/version", &v) == nil {
		res.Version = v.Version
	}
	if !listModels(ctx, conn, res, true) {
		return res
	}
	res.Up = true
	res.Reason = fmt.Sprintf("%s: %s", prefix(conn.Kind(), res.Version), plural(len(res.Models), "model"))
	load, err := vllmLoad(ctx, conn)
	if err != nil {
		res.Reason += " (load unknown: " + conn.Redact(err.Error()) + ")"
		return res
	}
	res.Load = load
	return res
}

// vllmLoad reads the node's load from /metrics: requests running and
// waiting summed over every engine and model, the fullest KV cache.
func vllmLoad(ctx context.Context, conn *nodeconn.Client) (*nodev1.NodeLoad, error) {
	body, err := get(ctx, conn, "/metrics", "text/plain")
	if err != nil {
		return nil, fmt.Errorf("%s", nodeconn.Describe(http.MethodGet, conn.BasePath()+"/metrics", err))
	}
	s, err := promtext.Samples(bytes.NewReader(body), vllmRunning, vllmWaiting, vllmKVCache, vllmKVCacheOld)
	if err != nil {
		return nil, fmt.Errorf("GET %s/metrics: %w", conn.BasePath(), err)
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("GET %s/metrics: no vllm gauges", conn.BasePath())
	}
	load := &nodev1.NodeLoad{}
	if vs, ok := s[vllmRunning]; ok {
		load.RequestsRunning = ptr(int32(sum(vs)))
	}
	if vs, ok := s[vllmWaiting]; ok {
		load.RequestsWaiting = ptr(int32(sum(vs)))
	}
	kv, ok := s[vllmKVCache]
	if !ok {
		kv, ok = s[vllmKVCacheOld]
	}
	if ok {
		load.KvCacheUsage = ptr(maxOf(kv))
	}
	return load, nil
}

func ptr[T any](v T) *T { return &v }

func sum(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s
}

func maxOf(vs []float64) float64 {
	m := vs[0]
	for _, v := range vs[1:] {
		m = max(m, v)
	}
	return m
}
