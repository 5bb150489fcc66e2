package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(127\.0\.0\.1:\d+)`)

// startRun runs the command until the returned cancel is called; wait
// returns run's error.
func startRun(t *testing.T, args ...string) (base string, logs *syncBuffer, cancel func(), wait func() error) {
	t.Helper()
	logs = &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	var runErr error
	done := make(chan struct{}) // closed, so both wait and the cleanup can receive
	go func() {
		defer close(done)
		runErr = run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), logs)
	}()
	wait = func() error {
		select {
		case <-done:
			return runErr
		case <-time.After(3 * time.Second):
			t.Fatalf("run did not return; log:\n%s", logs)
			return nil
		}
	}
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(2 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			return "http://" + m[1], logs, cancel, wait
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line; log:\n%s", logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRunServesAndShutsDownGracefully(t *testing.T) {
	base, logs, cancel, wait := startRun(t, "-name", "demo", "-models", "a, b", "-loaded", "b", "-tokens", "2")

	resp, err := http.Get(base + "/api/ps")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"name":"b"`) || strings.Contains(string(body), `"name":"a"`) {
		t.Errorf("/api/ps = %s, want only b loaded", body)
	}

	resp, err = http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"a","messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"content":"t0 t1 "`) || resp.Header.Get("X-Simnode-Name") != "demo" {
		t.Errorf("chat = %s (node %q), want 2 tokens from demo", body, resp.Header.Get("X-Simnode-Name"))
	}

	cancel()
	if err := wait(); err != nil {
		t.Fatalf("run = %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Errorf("log lacks the stopped line:\n%s", logs)
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("server still answering after shutdown")
	}
}

func TestRunCutsOffHungRequestsAfterShutdownTimeout(t *testing.T) {
	base, logs, cancel, wait := startRun(t, "-fault-hang", "-shutdown-timeout", "50ms")

	clientErr := make(chan error, 1)
	go func() { // owned: ends when the server cuts the connection
		resp, err := http.Post(base+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"llama3.2:3b","messages":[]}`))
		if err == nil {
			resp.Body.Close()
		}
		clientErr <- err
	}()
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(statsBody(t, base), `"in_flight":1`) {
		if time.Now().After(deadline) {
			t.Fatal("hung request never in flight")
		}
		time.Sleep(2 * time.Millisecond)
	}

	start := time.Now()
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("run = %v, want nil", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %v despite a 50ms timeout", took)
	}
	if err := <-clientErr; err == nil {
		t.Error("hung request got an answer, want its connection cut")
	}
	if !strings.Contains(logs.String(), "cutting them off") {
		t.Errorf("log lacks the cut-off warning:\n%s", logs)
	}
}

func statsBody(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/simnode/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRunRejectsBadInvocations(t *testing.T) {
	t.Setenv("SIMNODE_TEST_EMPTY_KEY", "")
	tests := []struct {
		name string
		args []string
		is   error  // errors.Is target, or nil
		want string // fragment of the error, or ""
	}{
		{"unknown flag", []string{"-nope"}, errUsage, ""},
		{"stray argument", []string{"serve"}, errUsage, ""},
		{"help", []string{"-h"}, flag.ErrHelp, ""},
		{"no models", []string{"-models", " , "}, nil, "at least one model"},
		{"several config problems at once", []string{"-tokens", "-1", "-fault-status", "42"}, nil, "fault status 42"},
		{"unset key variable", []string{"-api-key-env", "SIMNODE_TEST_UNSET_KEY"}, nil, "SIMNODE_TEST_UNSET_KEY is empty or unset"},
		{"empty key variable", []string{"-api-key-env", "SIMNODE_TEST_EMPTY_KEY"}, nil, "is empty or unset"},
		{"bad address", []string{"-addr", "127.0.0.1:notaport"}, nil, "notaport"},
		{"bad log format", []string{"-log-format", "xml"}, nil, `-log-format "xml"`},
		{"empty consul service", []string{"-consul-service", " "}, nil, "-consul-service: must not be empty"},
		{"bad kind to register", []string{"-addr", "127.0.0.1:0", "-consul-register", "-node-id", "n", "-kind", "tgi"}, nil, `kind "tgi"`},
		{"bad node id", []string{"-addr", "127.0.0.1:0", "-consul-register", "-node-id", "a b"}, nil, `id "a b"`},
		{"unspecified address advertised", []string{"-addr", "127.0.0.1:0", "-consul-register", "-advertise", "0.0.0.0:1"}, nil, "other hosts can dial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr syncBuffer
			err := run(t.Context(), tt.args, &stderr)
			switch {
			case err == nil:
				t.Fatal("run succeeded, want an error")
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Errorf("run = %v, want %v", err, tt.is)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("run = %v, want it to mention %q", err, tt.want)
			}
			if errors.Is(tt.is, errUsage) && !strings.Contains(stderr.String(), "Usage") && !strings.Contains(stderr.String(), "-models") {
				t.Errorf("no usage printed for a usage error:\n%s", stderr.String())
			}
		})
	}
	// Several problems are reported together.
	err := run(t.Context(), []string{"-tokens", "-1", "-fault-status", "42"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "tokens -1") {
		t.Errorf("run = %v, want the tokens problem reported too", err)
	}
}

func TestParseFlags(t *testing.T) {
	t.Setenv("SIMNODE_TEST_KEY", "k1")
	cfg, opts, err := parseFlags([]string{
		"-addr", ":1", "-name", "n", "-models", "a,b", "-loaded", "", "-tokens", "3",
		"-first-token-delay", "1s", "-token-delay", "2ms", "-embedding-dims", "16",
		"-api-key-env", "SIMNODE_TEST_KEY", "-fault-status", "503", "-fault-message", "m",
		"-fault-probe-status", "500", "-shutdown-timeout", "1m",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := simnode.Config{
		Name: "n", Models: []string{"a", "b"}, Loaded: []string{}, Tokens: 3,
		FirstTokenDelay: time.Second, TokenDelay: 2 * time.Millisecond, EmbeddingDims: 16, APIKey: "k1",
		Faults: simnode.Faults{Status: 503, Message: "m", ProbeStatus: 500},
	}
	if !equalConfig(cfg, want) || cfg.Loaded == nil {
		t.Errorf("config = %+v\nwant     %+v (with non-nil empty Loaded)", cfg, want)
	}
	if opts != (options{addr: ":1", shutdownTimeout: time.Minute, logFormat: "text",
		consul: consulOptions{service: "llm", apiKeyEnv: "SIMNODE_TEST_KEY"}}) {
		t.Errorf("options = %+v", opts)
	}

	cfg, _, err = parseFlags([]string{"-fault-hang", "-fault-fail-after-tokens", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Loaded != nil || !cfg.Faults.Hang || cfg.APIKey != "" {
		t.Errorf("config = %+v, want nil Loaded (all models), hang, no key", cfg)
	}
}

func equalConfig(a, b simnode.Config) bool {
	return strings.Join(a.Models, ",") == strings.Join(b.Models, ",") &&
		strings.Join(a.Loaded, ",") == strings.Join(b.Loaded, ",") &&
		a.Name == b.Name && a.Tokens == b.Tokens && a.EmbeddingDims == b.EmbeddingDims &&
		a.FirstTokenDelay == b.FirstTokenDelay && a.TokenDelay == b.TokenDelay &&
		a.APIKey == b.APIKey && a.Faults == b.Faults
}
