package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Messages far over gRPC's 4 MiB default cross the mesh: a batch of long
// embeddings back, and a large prompt in, on both APIs — up to the
// router's body limit, which holds on native gRPC too.
func TestLargeMessagesCrossTheMesh(t *testing.T) {
	n := meshtest.StartNode(t, "big", simnode.Config{Models: []string{"m"}, EmbeddingDims: 4096, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{RouterArgs: []string{"-max-body-bytes", "16777216"}})
	inputs := make([]string, 300)
	for i := range inputs {
		inputs[i] = "text"
	}

	t.Run("embeddings", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"model": "m", "input": inputs})
		resp := post(t, meshtest.Context(t, time.Minute), m.RESTURL+"/v1/embeddings", string(body))
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var list struct {
			Data []struct{ Embedding []float64 }
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		require.Len(t, list.Data, 300)
		assert.Len(t, list.Data[0].Embedding, 4096)

		// A client takes answers over 4 MiB only when it says so, as with
		// any gRPC server.
		conn, err := grpc.NewClient(m.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		require.NoError(t, err)
		defer conn.Close()
		out, err := routerv1.NewInferenceServiceClient(conn).CreateEmbeddings(meshtest.Context(t, time.Minute),
			&routerv1.CreateEmbeddingsRequest{Request: &openaiv1.EmbeddingRequest{Model: "m",
				Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Texts{Texts: &openaiv1.TextList{Values: inputs}}}}})
		require.NoError(t, err)
		assert.Len(t, out.GetEmbeddings().GetData(), 300)
	})

	prompt := strings.Repeat("a", 6<<20) // 6 MiB: over gRPC's default, under the 16 MiB limit
	t.Run("large prompt", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": prompt}}})
		resp := post(t, meshtest.Context(t, time.Minute), m.RESTURL+"/v1/chat/completions", string(body))
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)

		req := userChat("m")
		req.Messages[0].Content = &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: prompt}}
		_, err := routerv1.NewInferenceServiceClient(dial(t, m.GRPCAddr)).CreateChatCompletion(meshtest.Context(t, time.Minute),
			&routerv1.CreateChatCompletionRequest{Request: req})
		assert.NoError(t, err)
	})
}

// Over the body limit, native gRPC refuses as REST does (413 there).
func TestNativeGRPCRequestsHaveTheBodyLimit(t *testing.T) {
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{RouterArgs: []string{"-max-body-bytes", "1048576"}})
	req := userChat("m")
	req.Messages[0].Content = &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: strings.Repeat("a", 2<<20)}}
	_, err := routerv1.NewInferenceServiceClient(dial(t, m.GRPCAddr)).CreateChatCompletion(meshtest.Context(t, time.Minute),
		&routerv1.CreateChatCompletionRequest{Request: req})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Zero(t, n.Stats().Requests["POST /v1/chat/completions"], "the node never saw it")
}
