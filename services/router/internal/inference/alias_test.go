package inference

import (
	"context"
	"testing"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/routing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

func TestModelAliases(t *testing.T) {
	fake := &fakeAdapter{}
	adapterConn := serve(t, func(s *grpc.Server) { adapterv1.RegisterAdapterServiceServer(s, fake) })
	table := nodetable.New()
	table.Apply(&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{
		upNode("a", &nodev1.ModelInfo{Id: "llama3.2:3b", Loaded: true}),
	}})
	var routes modelroutes.Table
	require.NoError(t, routes.AddAlias("default=llama3.2:3b"))
	require.NoError(t, routes.AddAlias("gone=not-served"))
	svc := New(routing.New(table, adapterv1.NewAdapterServiceClient(adapterConn), routing.Options{Routes: &routes}), table, &routes)
	client := routerv1.NewInferenceServiceClient(serve(t, func(s *grpc.Server) { routerv1.RegisterInferenceServiceServer(s, svc) }))

	_, err := client.CreateChatCompletion(context.Background(), &routerv1.CreateChatCompletionRequest{
		Request: &openaiv1.ChatCompletionRequest{Model: "default", Messages: user()}})
	require.NoError(t, err)
	reqs := fake.chatRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "llama3.2:3b", reqs[0].GetModel(), "the node is asked for the model the alias stands for")

	models, err := client.ListModels(context.Background(), &routerv1.ListModelsRequest{})
	require.NoError(t, err)
	var ids []string
	for _, m := range models.GetModels().GetData() {
		ids = append(ids, m.GetId())
	}
	assert.Equal(t, []string{"llama3.2:3b", "default"}, ids, "aliases of served models are listed; others are not")
}
