package e2e

import (
	"errors"
	"io"
	"testing"
	"time"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func userChat(model string) *openaiv1.ChatCompletionRequest {
	return &openaiv1.ChatCompletionRequest{Model: model, Messages: []*openaiv1.ChatMessage{
		{Role: "user", Content: &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: "hello grpc"}}},
	}}
}

func TestNativeGRPC(t *testing.T) {
	hang := meshtest.StartNode(t, "hang", simnode.Config{Models: []string{"hang-model"}, Faults: simnode.Faults{Hang: true}})
	ok := meshtest.StartNode(t, "ok", simnode.Config{Models: []string{"m"}, Tokens: 4})
	m := meshtest.Start(t, bins, []*meshtest.Node{hang, ok}, meshtest.Options{})
	client := routerv1.NewInferenceServiceClient(dial(t, m.GRPCAddr))

	t.Run("unary chat", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp, err := client.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: userChat("m")})
		require.NoError(t, err)
		c := resp.GetCompletion()
		assert.Equal(t, simnode.Content(4), c.GetChoices()[0].GetMessage().GetContent())
		assert.Equal(t, int64(4), c.GetUsage().GetCompletionTokens())
	})

	t.Run("streamed chat", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		req := userChat("m")
		req.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
		stream, err := client.StreamChatCompletion(ctx, &routerv1.StreamChatCompletionRequest{Request: req})
		require.NoError(t, err)
		var content string
		var usage *openaiv1.Usage
		var n int
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			if n == 0 {
				assert.Equal(t, "assistant", msg.GetChunk().GetChoices()[0].GetDelta().GetRole())
			}
			n++
			for _, ch := range msg.GetChunk().GetChoices() {
				content += ch.GetDelta().GetContent()
			}
			if u := msg.GetChunk().GetUsage(); u != nil {
				usage = u
			}
		}
		assert.Equal(t, simnode.Content(4), content)
		require.NotNil(t, usage)
		assert.Equal(t, int64(4), usage.GetCompletionTokens())
	})

	t.Run("models", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp, err := client.ListModels(ctx, &routerv1.ListModelsRequest{})
		require.NoError(t, err)
		var ids []string
		for _, md := range resp.GetModels().GetData() {
			ids = append(ids, md.GetId())
		}
		assert.Equal(t, []string{"hang-model", "m"}, ids)
	})

	t.Run("embeddings", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp, err := client.CreateEmbeddings(ctx, &routerv1.CreateEmbeddingsRequest{Request: &openaiv1.EmbeddingRequest{
			Model: "m", Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Texts{Texts: &openaiv1.TextList{Values: []string{"x", "y"}}}},
		}})
		require.NoError(t, err)
		require.Len(t, resp.GetEmbeddings().GetData(), 2)
		assert.Equal(t, simnode.Embedding("m", "y", simnode.DefaultEmbeddingDims), resp.GetEmbeddings().GetData()[1].GetEmbedding())
	})

	codesCases := []struct {
		name string
		req  *openaiv1.ChatCompletionRequest
		want codes.Code
	}{
		{"unknown model", userChat("nope"), codes.NotFound},
		{"missing model", userChat(""), codes.InvalidArgument},
		{"missing messages", &openaiv1.ChatCompletionRequest{Model: "m"}, codes.InvalidArgument},
	}
	for _, tc := range codesCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := meshtest.Context(t, 10*time.Second)
			_, err := client.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: tc.req})
			assert.Equal(t, tc.want, status.Code(err), "%v", err)
			stream, err := client.StreamChatCompletion(ctx, &routerv1.StreamChatCompletionRequest{Request: tc.req})
			require.NoError(t, err)
			_, err = stream.Recv()
			assert.Equal(t, tc.want, status.Code(err), "%v", err)
		})
	}

	t.Run("deadline is honoured", func(t *testing.T) {
		ctx := meshtest.Context(t, 300*time.Millisecond)
		_, err := client.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: userChat("hang-model")})
		assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
		require.Eventually(t, func() bool { return hang.Stats().Canceled == 1 }, 10*time.Second, 10*time.Millisecond,
			"the node's request outlived the caller's deadline")
	})

	t.Run("health and reflection on every service", func(t *testing.T) {
		for name, addr := range map[string]string{"router": m.GRPCAddr, "adapter": m.AdapterAddr, "healthmon": m.HealthmonAddr} {
			ctx := meshtest.Context(t, 10*time.Second)
			conn := dial(t, addr)
			h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			require.NoError(t, err, name)
			assert.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus(), name)

			rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
			require.NoError(t, err)
			require.NoError(t, rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
			resp, err := rs.Recv()
			require.NoError(t, err, name)
			var services []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				services = append(services, s.GetName())
			}
			want := map[string]string{"router": "llmesh.router.v1.InferenceService", "adapter": "llmesh.adapter.v1.AdapterService",
				"healthmon": "llmesh.healthmon.v1.HealthmonService"}[name]
			assert.Contains(t, services, want, name)
			assert.Contains(t, services, "grpc.health.v1.Health", name)
		}
	})
}

// A router that sees a node refuse a request tells healthmon, which probes
// it at once: every router learns the node is down in a probe's time, not
// a probe interval's (an hour here).
func TestPassiveFailureReachesHealthmon(t *testing.T) {
	a := meshtest.StartNode(t, "a", simnode.Config{Models: []string{"m"}})
	b := meshtest.StartNode(t, "b", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{a, b}, meshtest.Options{
		HealthmonArgs: []string{"-probe-interval", "1h"}, RouterArgs: []string{"-policy", "round-robin"}})
	a.Kill()
	client := routerv1.NewInferenceServiceClient(dial(t, m.GRPCAddr))
	for range 2 { // round robin: one of them lands on a, fails over and is reported
		_, err := client.CreateChatCompletion(meshtest.Context(t, 10*time.Second), &routerv1.CreateChatCompletionRequest{Request: userChat("m")})
		require.NoError(t, err)
	}
	stream, err := healthmonv1.NewHealthmonServiceClient(dial(t, m.HealthmonAddr)).WatchNodes(meshtest.Context(t, 20*time.Second), &healthmonv1.WatchNodesRequest{})
	require.NoError(t, err)
	for {
		msg, err := stream.Recv()
		require.NoError(t, err, "healthmon never marked a down")
		for _, st := range msg.GetNodes() {
			if st.GetNode().GetId() == "a" && st.GetStatus() == nodev1.Status_STATUS_DOWN {
				assert.Contains(t, st.GetReason(), "connection refused")
				// The router's own view (GET /debug/nodes) follows.
				m.WaitRouterView(t, func(nodes map[string]meshtest.RouterNode) bool {
					b := nodes["b"]
					return nodes["a"].Status == "down" && b.Status == "up" && len(b.Models) == 1 && b.Models[0].ID == "m"
				})
				return
			}
		}
	}
}
