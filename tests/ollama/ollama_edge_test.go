//go:build ollama

package ollama

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/llmesh/llmesh/tests/ollamatest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The router's Ollama edge in front of real Ollama servers: the native
// API passes through the adapter to /api/chat, /api/generate and
// /api/embed, with Ollama's own NDJSON streaming and token counts.
func TestOllamaEdgeAgainstRealOllama(t *testing.T) {
	a := ollamatest.Start(t, "ollama-a", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}, {Name: "tiny-embed"}}})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{ref(a, "tiny-chat:latest", "tiny-embed:latest")}, meshtest.Options{})

	post := func(t *testing.T, path, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(meshtest.Context(t, time.Minute), http.MethodPost, m.RESTURL+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	type reply struct {
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Response        string `json:"response"`
		Done            bool   `json:"done"`
		DoneReason      string `json:"done_reason"`
		PromptEvalCount int    `json:"prompt_eval_count"`
		EvalCount       int    `json:"eval_count"`
		Error           string `json:"error"`
	}

	t.Run("chat streams NDJSON by default", func(t *testing.T) {
		resp := post(t, "/api/chat", `{"model":"tiny-chat","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":4,"seed":7}}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
		var lines []reply
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var r reply
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
			lines = append(lines, r)
		}
		require.GreaterOrEqual(t, len(lines), 2, "chunks, then the final object")
		last := lines[len(lines)-1]
		assert.True(t, last.Done)
		assert.Equal(t, "length", last.DoneReason, "num_predict reached Ollama")
		assert.Equal(t, 4, last.EvalCount)
		assert.Positive(t, last.PromptEvalCount)
		assert.Equal(t, "assistant", lines[0].Message.Role)
	})

	t.Run("generate without streaming", func(t *testing.T) {
		resp := post(t, "/api/generate", `{"model":"tiny-chat","prompt":"once","stream":false,"options":{"num_predict":3,"seed":7}}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var r reply
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		assert.True(t, r.Done)
		assert.Equal(t, 3, r.EvalCount)
	})

	t.Run("embed", func(t *testing.T) {
		resp := post(t, "/api/embed", `{"model":"tiny-embed","input":["a","b"]}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var r struct {
			Embeddings [][]float64 `json:"embeddings"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		require.Len(t, r.Embeddings, 2)
		assert.NotEmpty(t, r.Embeddings[0])
	})

	t.Run("tags list what the node has", func(t *testing.T) {
		resp, err := http.Get(m.RESTURL + "/api/tags")
		require.NoError(t, err)
		defer resp.Body.Close()
		var r struct {
			Models []struct {
				Name string `json:"name"`
			} `json:"models"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		var names []string
		for _, m := range r.Models {
			names = append(names, m.Name)
		}
		assert.ElementsMatch(t, []string{"tiny-chat:latest", "tiny-embed:latest"}, names)
	})

	// The chat and embed above loaded a model (or two): the edge's tags and
	// ps say of them what the node itself says (ps as of the node's last
	// probe; expires_at moves with every use, so it is left out).
	t.Run("tags and ps details are the node's", func(t *testing.T) {
		type entry struct {
			Name          string         `json:"name"`
			Size          int64          `json:"size"`
			Digest        string         `json:"digest"`
			Details       map[string]any `json:"details"`
			SizeVRAM      int64          `json:"size_vram"`
			ContextLength int64          `json:"context_length"`
		}
		list := func(t require.TestingT, url string) map[string]entry {
			resp, err := http.Get(url)
			require.NoError(t, err)
			defer resp.Body.Close()
			var r struct {
				Models []entry `json:"models"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
			out := map[string]entry{}
			for _, e := range r.Models {
				out[e.Name] = e
			}
			return out
		}
		node, edge := list(t, a.URL+"/api/tags"), list(t, m.RESTURL+"/api/tags")
		require.Len(t, node, 2)
		assert.Equal(t, node, edge)
		assert.Equal(t, "gguf", node["tiny-chat:latest"].Details["format"], "a real node reports details to compare")

		require.EventuallyWithT(t, func(c *assert.CollectT) {
			node, edge := list(c, a.URL+"/api/ps"), list(c, m.RESTURL+"/api/ps")
			if assert.NotEmpty(c, node) {
				assert.Equal(c, node, edge)
			}
		}, 30*time.Second, 100*time.Millisecond, "the edge's /api/ps never matched the node's")
		for name, p := range list(t, a.URL+"/api/ps") {
			assert.NotEqual(t, node[name].Size, p.Size, "%s: loaded and on-disk sizes differ, so the comparison above tells them apart", name)
		}
	})

	t.Run("unknown model is Ollama's 404", func(t *testing.T) {
		resp := post(t, "/api/chat", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		var r reply
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		assert.Contains(t, r.Error, "nope")
	})
}

// The ollama CLI itself, pointed at the mesh with OLLAMA_HOST, uses the
// whole mesh as one Ollama: list, ps, show and run.
func TestOllamaCLIAgainstTheMesh(t *testing.T) {
	a := ollamatest.Start(t, "ollama-a", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-chat"}}})
	b := ollamatest.Start(t, "ollama-b", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny-b-only"}}})
	// A vLLM node reports no digests, sizes or load times, which the CLI
	// must still be able to print.
	vllm := meshtest.StartNode(t, "vllm-1", simnode.Config{Flavor: "vllm", Models: []string{"Qwen/Qwen2.5-0.5B-Instruct"}})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{ref(a, "tiny-chat:latest"), ref(b, "tiny-b-only:latest"), vllm.Ref()},
		meshtest.Options{})
	cli, err := ollamatest.Binary()
	require.NoError(t, err)
	ollama := func(args ...string) string {
		t.Helper()
		ctx := meshtest.Context(t, time.Minute)
		cmd := exec.CommandContext(ctx, cli, args...)
		cmd.Env = append(os.Environ(), "OLLAMA_HOST="+strings.TrimPrefix(m.RESTURL, "http://"), "TERM=dumb", "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "ollama %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	list := ollama("list")
	assert.Contains(t, list, "tiny-chat:latest")
	assert.Contains(t, list, "tiny-b-only:latest", "the models of every node")
	assert.Contains(t, list, "Qwen/Qwen2.5-0.5B-Instruct", "the vLLM node's too")
	assert.Contains(t, ollama("show", "tiny-b-only"), "llama", "forwarded to the node that has it")
	answer := ollama("run", "tiny-chat", "--nowordwrap", "hello")
	assert.NotEmpty(t, strings.TrimSpace(answer))
	// The run loaded the model; the mesh knows at the node's next probe.
	var ps string
	require.Eventually(t, func() bool { ps = ollama("ps"); return strings.Contains(ps, "tiny-chat") }, 30*time.Second, 100*time.Millisecond,
		"ollama ps never showed the model the run loaded")
	assert.Contains(t, ps, "Qwen/Qwen2.5-0.5B-Instruct", "a vLLM node's models are always loaded")
	assert.Regexp(t, `tiny-chat:latest\s.*\s256\s`, ps, "the context length the node loaded the model with (num_ctx 256)")
}
