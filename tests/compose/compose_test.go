//go:build compose

// Package compose runs the repository's compose.yaml for real: images built
// from host binaries (scripts/images.sh, a Consul image from bin/consul),
// `docker compose up --wait`, then the stack is driven through its
// published ports on 127.0.0.1 and broken on purpose. Run it with
// `make test-compose` (which installs and starts Docker first); it always
// ends with `docker compose down -v`.
package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	project     = "llmesh-test"
	consulImage = "llmesh/consul:test"
	restURL     = "http://127.0.0.1:8080"
	grpcAddr    = "127.0.0.1:9090"
	consulAddr  = "127.0.0.1:8500"
	// sharedModel is served by both demo nodes, so either may die.
	sharedModel = "llama3.2:1b"
)

var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

// compose runs `docker compose` on the repository's compose.yaml as the
// test project, bounded by timeout.
func compose(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"compose", "-p", project, "-f", filepath.Join(root, "compose.yaml")}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "LLMESH_CONSUL_IMAGE="+consulImage, "LLMESH_VERSION=dev")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustCompose(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := compose(timeout, args...)
	require.NoError(t, err, "docker compose %s:\n%s", strings.Join(args, " "), out)
	return out
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	build := exec.Command(filepath.Join(root, "scripts", "images.sh"))
	build.Env = append(os.Environ(), "CONSUL_IMAGE="+consulImage, "LLMESH_VERSION=dev")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "compose: building the images:", err)
		return 1
	}
	// Whatever happens, leave no container, network or volume behind.
	defer func() {
		if out, err := compose(2*time.Minute, "--profile", "scale", "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			fmt.Fprintf(os.Stderr, "compose down: %v\n%s", err, out)
		}
	}()
	if out, err := compose(4*time.Minute, "up", "-d", "--no-build", "--wait", "--wait-timeout", "180"); err != nil {
		fmt.Fprintf(os.Stderr, "compose up: %v\n%s", err, out)
		logs, _ := compose(time.Minute, "logs", "--no-color", "--tail", "60")
		fmt.Fprintln(os.Stderr, logs)
		return 1
	}
	code := m.Run()
	if code != 0 {
		logs, _ := compose(time.Minute, "logs", "--no-color", "--tail", "80")
		fmt.Fprintln(os.Stderr, logs)
	}
	return code
}

func sdk() openai.Client {
	return openai.NewClient(option.WithBaseURL(restURL+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

// waitModels waits until the router lists every model of want.
func waitModels(t *testing.T, base string, want ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/v1/models")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, m := range want {
			if !strings.Contains(string(b), `"`+m+`"`) {
				return false
			}
		}
		return true
	}, 90*time.Second, 250*time.Millisecond, "router at %s never listed %v", base, want)
}

// The demo nodes, found through Consul, answer through the published
// ports: the OpenAI SDK (models, chat, stream) and native gRPC.
func TestStackAnswers(t *testing.T) {
	waitModels(t, restURL, sharedModel, "qwen2.5:0.5b", "nomic-embed-text:latest")
	client := sdk()
	ctx := meshtest.Context(t, time.Minute)

	models, err := client.Models.List(ctx)
	require.NoError(t, err)
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	assert.Contains(t, ids, "qwen2.5:0.5b", "the vLLM demo node's own model")

	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    sharedModel,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello from compose")},
	})
	require.NoError(t, err)
	require.Len(t, chat.Choices, 1)
	assert.NotEmpty(t, chat.Choices[0].Message.Content)
	assert.Positive(t, chat.Usage.CompletionTokens)

	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:    "qwen2.5:0.5b",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream please")},
	})
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	require.NoError(t, stream.Err())
	assert.Greater(t, chunks, 1)
	assert.NotEmpty(t, acc.Choices[0].Message.Content)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	resp, err := routerv1.NewInferenceServiceClient(conn).CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{
		Request: &openaiv1.ChatCompletionRequest{Model: sharedModel, Messages: []*openaiv1.ChatMessage{
			{Role: "user", Content: &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: "hello grpc"}}},
		}},
	})
	require.NoError(t, err)
	assert.NotEmpty(t, resp.GetCompletion().GetChoices()[0].GetMessage().GetContent())
}

// Killing a demo node's container under load costs no non-streamed
// request: the other node serves the model.
func TestKillANodeUnderLoad(t *testing.T) {
	waitModels(t, restURL, sharedModel)
	load := meshtest.StartLoad(t, 4, restURL+"/v1/chat/completions",
		`{"model":"`+sharedModel+`","messages":[{"role":"user","content":"hi"}]}`)
	defer load.Stop()
	load.WaitOK(t, 40, time.Minute)
	mustCompose(t, time.Minute, "kill", "demo-vllm")
	load.WaitOK(t, 100, 2*time.Minute)
	load.Stop()
	assert.Zero(t, load.Failed(), "first failure: %s", load.FirstFailure())
	mustCompose(t, 2*time.Minute, "up", "-d", "--no-build", "--wait", "--wait-timeout", "120", "demo-vllm")
	waitModels(t, restURL, "qwen2.5:0.5b")
}

// passingNodes lists the LLM nodes Consul says are passing.
func passingNodes(c *api.Client) (map[string]bool, error) {
	entries, _, err := c.Health().Service("llm", "", true, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		out[e.Service.ID] = true
	}
	return out, nil
}

// Consul away for 30 s: the stack keeps answering from its last view.
// Back (with its state lost: a dev agent), the services and demo nodes
// register again and the nodes are listed, in Consul and by the router.
func TestConsulAwayAndBack(t *testing.T) {
	waitModels(t, restURL, sharedModel, "qwen2.5:0.5b")
	cfg := api.DefaultConfig()
	cfg.Address = consulAddr
	consul, err := api.NewClient(cfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		nodes, err := passingNodes(consul)
		return err == nil && nodes["demo-ollama"] && nodes["demo-vllm"]
	}, time.Minute, 250*time.Millisecond, "both demo nodes registered and passing in Consul")

	load := meshtest.StartLoad(t, 2, restURL+"/v1/chat/completions",
		`{"model":"`+sharedModel+`","messages":[{"role":"user","content":"hi"}]}`)
	defer load.Stop()
	load.WaitOK(t, 20, time.Minute)
	mustCompose(t, time.Minute, "stop", "-t", "2", "consul")
	away := time.Now().Add(30 * time.Second)
	for time.Now().Before(away) {
		load.WaitOK(t, 10, time.Minute)
	}
	mustCompose(t, 2*time.Minute, "start", "consul")
	require.Eventually(t, func() bool {
		nodes, err := passingNodes(consul)
		return err == nil && nodes["demo-ollama"] && nodes["demo-vllm"]
	}, 90*time.Second, 500*time.Millisecond, "the demo nodes are in Consul again")
	load.WaitOK(t, 20, time.Minute)
	load.Stop()
	assert.Zero(t, load.Failed(), "first failure: %s", load.FirstFailure())
	waitModels(t, restURL, sharedModel, "qwen2.5:0.5b")
}

// A second router (profile scale) finds everything through Consul and
// answers on its own published port, as the first does on its.
func TestSecondRouter(t *testing.T) {
	mustCompose(t, 3*time.Minute, "--profile", "scale", "up", "-d", "--no-build", "--no-recreate", "--wait", "--wait-timeout", "120")
	t.Cleanup(func() { _, _ = compose(2*time.Minute, "--profile", "scale", "rm", "-s", "-f", "router-2") })
	for _, base := range []string{restURL, "http://127.0.0.1:8081"} {
		waitModels(t, base, sharedModel)
		body := `{"model":"` + sharedModel + `","messages":[{"role":"user","content":"which router?"}]}`
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		var out struct {
			Choices []struct {
				Message struct{ Content string }
			}
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, base)
		require.Len(t, out.Choices, 1, base)
	}
	out := mustCompose(t, time.Minute, "--profile", "scale", "ps", "--format", "{{.Service}}")
	assert.Contains(t, out, "router-2")
}
