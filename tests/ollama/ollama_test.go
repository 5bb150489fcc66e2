//go:build ollama

package ollama

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/llmesh/llmesh/tests/ollamatest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func sdk(m *meshtest.Mesh) openai.Client {
	return openai.NewClient(option.WithBaseURL(m.RESTURL+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func user(text string) []openai.ChatCompletionMessageParamUnion {
	return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}
}

func TestOpenAISDKAgainstRealOllama(t *testing.T) {
	a := ollamatest.Start(t, "ollama-a", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}, {Name: "tiny-embed"}}})
	b := ollamatest.Start(t, "ollama-b", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}, {Name: "tiny-b-only"}}})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{
		ref(a, "tiny-chat:latest", "tiny-embed:latest"), ref(b, "tiny-chat:latest", "tiny-b-only:latest"),
	}, meshtest.Options{})
	client := sdk(m)

	t.Run("chat", func(t *testing.T) {
		ctx := meshtest.Context(t, time.Minute)
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			// A fixed seed: the random model's text is the same every run
			// (some of its tokens are control tokens that print nothing).
			Model: "tiny-chat", Messages: user("hello world"), MaxTokens: openai.Int(5), Seed: openai.Int(7),
		})
		require.NoError(t, err)
		require.Len(t, resp.Choices, 1)
		assert.NotEmpty(t, resp.Choices[0].Message.Content)
		assert.Equal(t, "length", resp.Choices[0].FinishReason, "the tiny model never ends early")
		assert.Equal(t, int64(5), resp.Usage.CompletionTokens)
		assert.Greater(t, resp.Usage.PromptTokens, int64(0))
	})

	t.Run("chat streamed", func(t *testing.T) {
		ctx := meshtest.Context(t, time.Minute)
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: "tiny-b-only", Messages: user("stream it"), MaxTokens: openai.Int(6),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		var first string
		for stream.Next() {
			c := stream.Current()
			if first == "" && len(c.Choices) > 0 {
				first = c.Choices[0].Delta.Role
			}
			acc.AddChunk(c)
		}
		require.NoError(t, stream.Err())
		assert.Equal(t, "assistant", first)
		assert.NotEmpty(t, acc.Choices[0].Message.Content)
		assert.Equal(t, int64(6), acc.Usage.CompletionTokens, "usage reported, not 0")
		assert.Greater(t, acc.Usage.PromptTokens, int64(0))
	})

	t.Run("structured output keeps the schema's key order", func(t *testing.T) {
		// Ollama builds its grammar from the schema as written, so the
		// answer's keys come in the schema's order — if the mesh kept it.
		body := `{"model":"tiny-chat","max_tokens":60,"temperature":0,"messages":[{"role":"user","content":"json"}],
			"response_format":{"type":"json_schema","json_schema":{"name":"z","schema":{"type":"object",
			"properties":{"zeta":{"type":"integer"},"alpha":{"type":"boolean"}},"required":["zeta","alpha"]}}}}`
		resp, err := http.Post(m.RESTURL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var cc struct {
			Choices []struct{ Message struct{ Content string } }
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&cc))
		require.Len(t, cc.Choices, 1)
		content := cc.Choices[0].Message.Content
		zeta, alpha := strings.Index(content, `"zeta"`), strings.Index(content, `"alpha"`)
		require.True(t, zeta >= 0 && alpha >= 0, "both keys in %q", content)
		assert.Less(t, zeta, alpha, "zeta first, as the schema says: %q", content)
	})

	t.Run("embeddings", func(t *testing.T) {
		ctx := meshtest.Context(t, time.Minute)
		resp, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "tiny-embed", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}},
		})
		require.NoError(t, err)
		require.Len(t, resp.Data, 2)
		assert.Len(t, resp.Data[0].Embedding, 64, "the model's embedding width")
		assert.NotEqual(t, resp.Data[0].Embedding, resp.Data[1].Embedding)
	})

	// Ollama takes one prompt and ignores n: the adapter asks once per
	// prompt and choice, choice p*n+i being prompt p's i-th.
	t.Run("completions prompt array and n", func(t *testing.T) {
		ctx := meshtest.Context(t, time.Minute)
		params := openai.CompletionNewParams{
			Model:  "tiny-chat",
			Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"one", "two three"}},
			N:      openai.Int(2), MaxTokens: openai.Int(3), Seed: openai.Int(7),
		}
		resp, err := client.Completions.New(ctx, params)
		require.NoError(t, err)
		require.Len(t, resp.Choices, 4)
		for i, ch := range resp.Choices {
			assert.Equal(t, int64(i), ch.Index)
			assert.Equal(t, "length", string(ch.FinishReason))
		}
		assert.Equal(t, int64(12), resp.Usage.CompletionTokens, "usage summed over the four answers")

		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Completions.NewStreaming(ctx, params)
		finished := map[int64]string{}
		var usage int64
		for stream.Next() {
			c := stream.Current()
			for _, ch := range c.Choices {
				if ch.FinishReason != "" {
					finished[ch.Index] = string(ch.FinishReason)
				}
			}
			usage += c.Usage.CompletionTokens
		}
		require.NoError(t, stream.Err())
		assert.Equal(t, map[int64]string{0: "length", 1: "length", 2: "length", 3: "length"}, finished)
		assert.Equal(t, int64(12), usage, "one usage chunk, summed")
	})

	t.Run("embeddings token input refused", func(t *testing.T) {
		ctx := meshtest.Context(t, time.Minute)
		_, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "tiny-embed", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokens: []int64{1, 2, 3}},
		})
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
		assert.Equal(t, "invalid_request_error", apiErr.Type)
		assert.Equal(t, "input", apiErr.Param)
		assert.Contains(t, apiErr.Message, "kind ollama")
	})

	t.Run("models are what the nodes have", func(t *testing.T) {
		ctx := meshtest.Context(t, time.Minute)
		page, err := client.Models.List(ctx)
		require.NoError(t, err)
		var ids []string
		for _, md := range page.Data {
			ids = append(ids, md.ID)
		}
		assert.Equal(t, []string{"tiny-b-only:latest", "tiny-chat:latest", "tiny-embed:latest"}, ids)
	})

	t.Run("unknown model", func(t *testing.T) {
		ctx := meshtest.Context(t, time.Minute)
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "no-such-model", Messages: user("hi")})
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		assert.Contains(t, apiErr.Message, "no-such-model")
	})
}

// The adapter's Ollama probe reads /api/tags and /api/ps: a model is
// "loaded" only once a request has loaded it; /api/show gives its type.
func TestProbeSeesLoadedModels(t *testing.T) {
	a := ollamatest.Start(t, "ollama-a", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}, {Name: "tiny-idle"}}})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{ref(a, "tiny-chat:latest", "tiny-idle:latest")}, meshtest.Options{})
	conn, err := grpc.NewClient(m.AdapterAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	adapter := adapterv1.NewAdapterServiceClient(conn)
	node := &nodev1.Node{Id: a.ID, Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: a.URL}
	loaded := func() map[string]bool {
		ctx := meshtest.Context(t, time.Minute)
		resp, err := adapter.Probe(ctx, &adapterv1.ProbeRequest{Node: node})
		require.NoError(t, err)
		require.True(t, resp.GetResult().GetUp(), resp.GetResult().GetReason())
		out := map[string]bool{}
		for _, md := range resp.GetResult().GetModels() {
			out[md.GetId()] = md.GetLoaded()
			// Real Ollama's /api/show says a generative model can complete.
			assert.Equal(t, nodev1.ModelType_MODEL_TYPE_CHAT, md.GetType(), md.GetId())
		}
		return out
	}
	assert.Equal(t, map[string]bool{"tiny-chat:latest": false, "tiny-idle:latest": false}, loaded())

	ctx := meshtest.Context(t, time.Minute)
	client := sdk(m)
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "tiny-chat", Messages: user("load it"), MaxTokens: openai.Int(1)})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"tiny-chat:latest": true, "tiny-idle:latest": false}, loaded())
	assert.Contains(t, a.Get(t, "/api/ps"), `"expires_at"`)
}

// A server that dies under load costs no non-streamed request: the router
// moves each failed attempt to the other node before anything was sent.
func TestKillOneServerUnderLoad(t *testing.T) {
	a := ollamatest.Start(t, "ollama-a", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}}})
	b := ollamatest.Start(t, "ollama-b", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}}})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{ref(a, "tiny-chat:latest"), ref(b, "tiny-chat:latest")}, meshtest.Options{})
	load := meshtest.StartLoad(t, 4, m.RESTURL+"/v1/chat/completions",
		`{"model":"tiny-chat","messages":[{"role":"user","content":"keep going"}],"max_tokens":8}`)
	load.WaitOK(t, 20, time.Minute)
	b.Kill()
	load.WaitOK(t, 40, time.Minute)
	load.Stop()
	assert.Zero(t, load.Failed(), "first failure: %s", load.FirstFailure())
}

// OLLAMA_NUM_PARALLEL=1 with OLLAMA_MAX_QUEUE=1 makes a real Ollama answer
// 503 "server busy". With another node the router moves the request there;
// with none the client gets 503 with Retry-After.
func TestServerBusy(t *testing.T) {
	busyEnv := []string{"OLLAMA_NUM_PARALLEL=1", "OLLAMA_MAX_QUEUE=1"}
	slow := []ollamatest.Model{{Name: "tiny-chat", NumPredict: 200}}

	burst := func(t *testing.T, m *meshtest.Mesh, n int) (codes map[int]int, retryAfter bool) {
		codes = map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := meshtest.Context(t, 2*time.Minute)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.RESTURL+"/v1/chat/completions",
					strings.NewReader(`{"model":"tiny-chat","messages":[{"role":"user","content":"busy?"}]}`))
				resp, err := http.DefaultClient.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				defer resp.Body.Close()
				var body struct {
					Error *struct{ Message string } `json:"error"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&body)
				mu.Lock()
				defer mu.Unlock()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
					retryAfter = resp.Header.Get("Retry-After") != ""
					assert.Contains(t, body.Error.Message, "busy")
				}
			}()
		}
		wg.Wait()
		return codes, retryAfter
	}

	t.Run("alone: 503 with Retry-After", func(t *testing.T) {
		a := ollamatest.Start(t, "busy", ollamatest.Options{Models: slow, Env: busyEnv})
		m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{ref(a, "tiny-chat:latest")}, meshtest.Options{})
		codes, retryAfter := burst(t, m, 6)
		assert.Positive(t, codes[http.StatusServiceUnavailable], "%v", codes)
		assert.True(t, retryAfter)
		assert.Equal(t, 6, codes[http.StatusOK]+codes[http.StatusServiceUnavailable], "%v", codes)
	})

	t.Run("with a free node: every request is served", func(t *testing.T) {
		a := ollamatest.Start(t, "busy", ollamatest.Options{Models: slow, Env: busyEnv})
		b := ollamatest.Start(t, "roomy", ollamatest.Options{Models: slow, Env: []string{"OLLAMA_NUM_PARALLEL=4"}})
		// Round robin sends half the burst to "busy" first, more than its
		// one slot and one queue place hold.
		m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{ref(a, "tiny-chat:latest"), ref(b, "tiny-chat:latest")},
			meshtest.Options{RouterArgs: []string{"-policy", "round-robin"}})
		codes, _ := burst(t, m, 6)
		assert.Equal(t, map[int]int{http.StatusOK: 6}, codes)
		assert.Regexp(t, `\| 503 \|.*POST +"/v1/chat/completions"`, a.Log(),
			"busy really answered 503 server busy, and the router moved those requests to roomy")
	})
}

// With OLLAMA_KEEP_ALIVE=1s a node unloads its model a second after use,
// so the next request there pays a cold load. The router prefers the node
// where the model is loaded.
func TestRoutingPrefersTheLoadedNode(t *testing.T) {
	warm := ollamatest.Start(t, "warm", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}}})
	cold := ollamatest.Start(t, "cold", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}}, Env: []string{"OLLAMA_KEEP_ALIVE=1s"}})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{ref(warm, "tiny-chat:latest"), ref(cold, "tiny-chat:latest")}, meshtest.Options{})
	client := sdk(m)

	// Load the model on both nodes straight away, then let "cold" unload it.
	for _, s := range []*ollamatest.Server{warm, cold} {
		direct := openai.NewClient(option.WithBaseURL(s.URL+"/v1"), option.WithAPIKey("unused"))
		_, err := direct.Chat.Completions.New(meshtest.Context(t, time.Minute), openai.ChatCompletionNewParams{
			Model: "tiny-chat", Messages: user("warm up"), MaxTokens: openai.Int(1),
		})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return !strings.Contains(cold.Get(t, "/api/ps"), "tiny-chat") }, 30*time.Second, 100*time.Millisecond,
		"cold never unloaded its model")
	m.WaitRouterView(t, func(nodes map[string]meshtest.RouterNode) bool {
		return nodes["warm"].Loaded("tiny-chat:latest") && !nodes["cold"].Loaded("tiny-chat:latest")
	})

	for range 10 {
		_, err := client.Chat.Completions.New(meshtest.Context(t, time.Minute), openai.ChatCompletionNewParams{
			Model: "tiny-chat", Messages: user("which node?"), MaxTokens: openai.Int(2),
		})
		require.NoError(t, err)
		assert.NotContains(t, cold.Get(t, "/api/ps"), "tiny-chat", "a request went to the node without the model loaded")
	}
	assert.Contains(t, warm.Get(t, "/api/ps"), "tiny-chat")
}
