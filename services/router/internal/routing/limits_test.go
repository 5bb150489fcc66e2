package routing

import (
	"context"
	"testing"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

// The adapter is told the limits of the node's kind: a short first-token
// timeout where the model is loaded, a long one where it is cold.
func TestKindLimitsReachTheAdapter(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"warm": {}, "cold": {}}}
	warm, cold := node("warm*"), node("cold")
	warm.Node.Kind, cold.Node.Kind = nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_OLLAMA
	r := New(table(warm, cold), serveAdapter(t, fake), Options{Policy: policy.RoundRobinOrder, Limits: limitsOf(t, "ollama:connect=2s")})
	_, err := r.Chat(context.Background(), chatReq()) // the loaded node first
	require.NoError(t, err)
	r = New(table(cold), serveAdapter(t, fake), Options{Limits: limitsOf(t, "ollama:connect=2s")})
	_, err = r.Chat(context.Background(), chatReq())
	require.NoError(t, err)

	got := fake.Timeouts()
	require.Len(t, got, 2)
	assert.Equal(t, 30*time.Second, got[0].GetFirstToken().AsDuration(), "loaded")
	assert.Equal(t, 10*time.Minute, got[1].GetFirstToken().AsDuration(), "cold")
	for _, tt := range got {
		assert.Equal(t, 2*time.Second, tt.GetConnect().AsDuration())
		assert.Equal(t, time.Minute, tt.GetIdle().AsDuration())
	}
}

// A node that goes silent in the middle of a stream costs the client that
// stream (ended with an error naming the node), not a hang; the node goes
// out of rotation, and nothing is retried after output was sent.
func TestNodeSilentMidStream(t *testing.T) {
	hi := &openaiv1.ChatCompletionChunk{Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: text("hi")}}}}
	fake := &fakeAdapter{scripts: map[string]script{
		"h": {chunks: []*openaiv1.ChatCompletionChunk{hi}, hang: true},
		"g": {chunks: []*openaiv1.ChatCompletionChunk{hi}},
	}}
	stats := nodestats.New(time.Hour, nil)
	r := New(table(node("h*"), node("g*")), serveAdapter(t, fake), Options{
		Policy: policy.RoundRobinOrder, Stats: stats, Limits: limitsOf(t, "idle=50ms"),
	})
	var got []*openaiv1.ChatCompletionChunk
	err := r.ChatStream(context.Background(), chatReq(), collect(&got))
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, "h", e.Node)
	assert.Contains(t, e.Message, "silent for 50ms in the middle of an answer")
	assert.Len(t, got, 1)
	assert.Equal(t, []string{"h"}, fake.Calls(), "no retry once output was sent")
	assert.True(t, stats.Load("h").Open, "the silent node is out of rotation")
}

// An attempt that runs out of the node's total timeout fails with
// DEADLINE_EXCEEDED naming the node, and is not sent to another node.
func TestTotalTimeoutIsNotRetried(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"slow": {block: true}, "g": {}}}
	r := New(table(node("slow*"), node("g*")), serveAdapter(t, fake), Options{
		Policy: policy.RoundRobinOrder, Limits: limitsOf(t, "total=50ms"),
	})
	_, err := r.Chat(context.Background(), chatReq())
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.DeadlineExceeded, e.Code, "%v", err)
	assert.Equal(t, "slow", e.Node)
	assert.Contains(t, e.Message, "total timeout of 50ms")
	assert.Equal(t, []string{"slow"}, fake.Calls())
}

// Routes limit a model to a node group or to one side of the tiers, and
// say so when no allowed node serves it.
func TestRoutesGroupsAndTiers(t *testing.T) {
	gpu, cpu, cloud := node("gpu*"), node("cpu*"), node("cloud*")
	gpu.Node.Group, cpu.Node.Group = "gpu", "cpu"
	cloud.Node.Kind, cloud.Node.ApiKeyEnv = nodev1.Kind_KIND_OPENAI, "KEY"
	fake := &fakeAdapter{scripts: map[string]script{"gpu": {}, "cpu": {}, "cloud": {}}}
	var routes modelroutes.Table
	require.NoError(t, routes.AddAlias("fast="+model+"@gpu"))
	require.NoError(t, routes.AddAlias("paid="+model))
	require.NoError(t, routes.AddAlias("nowhere="+model+"@tpu"))
	require.NoError(t, routes.AddTiers("paid=cloud-only"))
	r := New(table(gpu, cpu, cloud), serveAdapter(t, fake), Options{Policy: policy.RoundRobinOrder, Routes: &routes})

	ask := func(name string) (*openaiv1.ChatCompletion, error) {
		req := chatReq()
		req.Model = name
		return r.Chat(context.Background(), req)
	}
	for range 3 {
		out, err := ask("fast")
		require.NoError(t, err)
		assert.Equal(t, "cmpl-gpu", out.GetId())
		assert.Equal(t, model, out.GetModel(), "the node is asked for the model, not the alias")
		out, err = ask("paid")
		require.NoError(t, err)
		assert.Equal(t, "cmpl-cloud", out.GetId())
	}
	seen := map[string]bool{}
	for range 4 {
		out, err := ask(model)
		require.NoError(t, err)
		seen[out.GetId()] = true
	}
	assert.Equal(t, map[string]bool{"cmpl-gpu": true, "cmpl-cpu": true}, seen, "local-first: the cloud node is not used while local ones serve")

	_, err := ask("nowhere")
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Contains(t, e.Message, `no up node in node group "tpu" serves model "llama3" (it is served by cloud, cpu, gpu)`)
}

// Ollama answers that come as one object when done (embeddings, a chat
// with stream:false) are not held to the first-token bound: a long embed
// batch is not a hung node. Streamed answers are.
func TestOllamaWholeAnswersAreNotWatched(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		fake := &fakeAdapter{scripts: map[string]script{"a": {pause: 200 * time.Millisecond}}}
		var failed []string
		r := New(table(node("a*")), serveAdapter(t, fake), Options{Limits: limitsOf(t, "first-token=50ms"),
			OnNodeFailed: func(id, _ string) { failed = append(failed, id) }})
		var got []string
		err := r.Ollama(context.Background(), model, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED, streamed,
			[]byte(`{"model":"`+model+`","input":"x"}`), func(b []byte) error { got = append(got, string(b)); return nil })
		if streamed {
			require.Error(t, err)
			assert.Contains(t, err.Error(), "no first token within 50ms")
			assert.Equal(t, []string{"a"}, failed)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, []string{`{"embeddings":[[1]]}`}, got)
		assert.Empty(t, failed)
	}
}

// A client slow to take chunks is not the node going silent: only the
// wait for the node counts toward the idle timeout.
func TestSlowClientIsNotIdleNode(t *testing.T) {
	hi := &openaiv1.ChatCompletionChunk{Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: text("hi")}}}}
	fake := &fakeAdapter{scripts: map[string]script{"a": {chunks: []*openaiv1.ChatCompletionChunk{hi, hi, hi}}}}
	var failed []string
	r := New(table(node("a*")), serveAdapter(t, fake), Options{Limits: limitsOf(t, "idle=50ms"),
		OnNodeFailed: func(id, _ string) { failed = append(failed, id) }})
	n := 0
	err := r.ChatStream(context.Background(), chatReq(), func(*openaiv1.ChatCompletionChunk) error {
		n++
		time.Sleep(150 * time.Millisecond) // the client's side of the connection is full
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Empty(t, failed)
}
