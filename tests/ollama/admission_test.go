//go:build ollama

package ollama

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/llmesh/llmesh/tests/ollamatest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The default in-flight cap of an ollama node whose num_parallel is not
// known (limits: max-in-flight 4).
const defaultOllamaCap = 4

// With the default settings, 40 concurrent streams on one real Ollama
// working on one request at a time (OLLAMA_NUM_PARALLEL=1) all complete,
// as they would sent to that Ollama directly: the rest wait in the
// router's queue within their first-token budget and their client's
// timeout (the OpenAI SDK's X-Stainless-Timeout), instead of a fixed
// 10 s. Meanwhile the router never has more than the node's cap on it.
func TestBurstOnOneNodeCompletesWithDefaults(t *testing.T) {
	a := ollamatest.Start(t, "one", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}},
		Env: []string{"OLLAMA_NUM_PARALLEL=1"}})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{ref(a, "tiny-chat:latest")}, meshtest.Options{})
	client := openai.NewClient(option.WithBaseURL(m.RESTURL+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0),
		option.WithRequestTimeout(5*time.Minute)) // sent as X-Stainless-Timeout: 300

	// The router's own count of requests on the node, watched throughout.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var peak int64
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if nodes, err := m.RouterNodes(); err == nil {
				peak = max(peak, nodes["one"].InFlight)
			}
			select {
			case <-watchCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	const streams = 40
	ctx := meshtest.Context(t, 5*time.Minute)
	var wg sync.WaitGroup
	tokens := make([]int, streams)
	errs := make([]error, streams)
	for i := range streams {
		wg.Go(func() {
			stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model: "tiny-chat", Messages: user("one of many"), MaxTokens: openai.Int(120),
			})
			for stream.Next() {
				for _, ch := range stream.Current().Choices {
					if ch.Delta.Content != "" {
						tokens[i]++
					}
				}
			}
			errs[i] = stream.Err()
		})
	}
	wg.Wait()
	stopWatch()
	<-watched
	for i := range streams {
		require.NoError(t, errs[i], "stream %d", i)
		assert.Positive(t, tokens[i], "stream %d had content", i)
	}
	assert.LessOrEqual(t, peak, int64(defaultOllamaCap), "the node's in-flight cap held")
	assert.Positive(t, peak, "the watch saw the requests")
	nodes, err := m.RouterNodes()
	require.NoError(t, err)
	assert.Zero(t, nodes["one"].InFlight)
}
