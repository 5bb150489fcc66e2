package promtext

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A /metrics answer shaped like vLLM's (two engines, labels with spaces,
// braces and escaped quotes in values).
const vllmMetrics = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-8B"} 3.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen3-8B"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="a } b \" c"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-8B"} 0.25
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0.0
process_open_fds 12
`

func TestSamples(t *testing.T) {
	got, err := Samples(strings.NewReader(vllmMetrics),
		"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "process_open_fds")
	require.NoError(t, err)
	assert.Equal(t, map[string][]float64{
		"vllm:num_requests_running": {3, 2},
		"vllm:num_requests_waiting": {7},
		"vllm:kv_cache_usage_perc":  {0.25},
		"process_open_fds":          {12},
	}, got)
}

func TestSamplesErrors(t *testing.T) {
	for name, text := range map[string]string{
		"bad value":        "m{a=\"b\"} nope\n",
		"no value":         "m{a=\"b\"}\n",
		"unterminated set": "m{a=\"b} 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Samples(strings.NewReader(text), "m")
			assert.Error(t, err)
		})
	}
	// A malformed line of a metric nobody asked for is not an error.
	got, err := Samples(strings.NewReader("other{ 1\nm 2\n"), "m")
	require.NoError(t, err)
	assert.Equal(t, []float64{2}, got["m"])
}
