package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/meshkit/consulreg"
	"github.com/llmesh/llmesh/services/simnode/simnode"
)

// errUsage marks flag errors that the FlagSet has already printed.
var errUsage = errors.New("usage error")

// options are the command-line settings that are not part of simnode.Config.
type options struct {
	addr            string
	shutdownTimeout time.Duration
	healthcheck     bool
	logFormat       string
	consul          consulOptions
}

// parseFlags turns args into a server config; usage and flag errors go to
// stderr.
func parseFlags(args []string, stderr io.Writer) (simnode.Config, options, error) {
	var (
		cfg             simnode.Config
		opts            options
		models          string
		loaded          string
		apiKeyEnv       string
		embeddingModels string
	)
	fs := flag.NewFlagSet("simnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.addr, "addr", "127.0.0.1:11434", "listen address; port 0 picks a free port (the log shows which)")
	fs.DurationVar(&opts.shutdownTimeout, "shutdown-timeout", 5*time.Second, "how long to let in-flight requests finish on SIGINT/SIGTERM before cutting them off")
	fs.StringVar(&cfg.Name, "name", simnode.DefaultName, "node name, sent as X-Simnode-Name and in system_fingerprint")
	fs.StringVar(&models, "models", "llama3.2:3b", "comma-separated models served")
	fs.StringVar(&loaded, "loaded", "", "comma-separated models /api/ps reports as loaded (default: all of -models; an explicit empty value means none)")
	fs.IntVar(&cfg.Tokens, "tokens", simnode.DefaultTokens, "completion tokens per answer")
	fs.IntVar(&cfg.ReasoningTokens, "reasoning-tokens", 0, "reasoning tokens before each chat answer (a thinking model)")
	fs.DurationVar(&cfg.FirstTokenDelay, "first-token-delay", 0, "pause before the first token")
	fs.DurationVar(&cfg.TokenDelay, "token-delay", 0, "pause before each later token")
	fs.IntVar(&cfg.EmbeddingDims, "embedding-dims", simnode.DefaultEmbeddingDims, "length of embedding vectors")
	fs.StringVar(&apiKeyEnv, "api-key-env", "", "name of an environment variable holding the bearer key required on /v1/ (empty: no auth)")
	fs.IntVar(&cfg.Faults.Status, "fault-status", 0, "fault: answer every chat/embeddings request with this HTTP status (400-599)")
	fs.StringVar(&cfg.Faults.Message, "fault-message", "", "fault: error message sent with -fault-status")
	fs.IntVar(&cfg.Faults.FailAfterTokens, "fault-fail-after-tokens", 0, "fault: drop the connection after this many tokens")
	fs.BoolVar(&cfg.Faults.Hang, "fault-hang", false, "fault: never answer chat/embeddings requests")
	fs.StringVar(&cfg.Flavor, "flavor", "ollama", "server simulated besides the OpenAI API: ollama, vllm, llamacpp or lmstudio")
	fs.IntVar(&cfg.Slots, "slots", 1, "slots a llamacpp flavour reports on /slots")
	fs.StringVar(&embeddingModels, "embedding-models", "", "comma-separated models of -models that only embed")
	fs.BoolVar(&cfg.Faults.Loading, "fault-loading", false, "fault (llamacpp): answer 503 Loading model")
	fs.IntVar(&cfg.Faults.ProbeStatus, "fault-probe-status", 0, "fault: answer /api/version, /api/tags, /api/ps and /v1/models with this HTTP status (400-599)")
	fs.BoolVar(&opts.healthcheck, "healthcheck", false, "do not serve: GET "+healthPath+" at -addr (0.0.0.0 or :: as loopback) and exit 0 on a 2xx answer within 3s, 1 otherwise (a container health check)")
	fs.StringVar(&opts.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&opts.consul.register, "consul-register", false, "register this node in Consul (the agent at CONSUL_HTTP_ADDR) as an LLM node, as its own agent would; keep it registered, deregister on SIGINT/SIGTERM")
	fs.StringVar(&opts.consul.service, "consul-service", "llm", "Consul service name of LLM nodes, for -consul-register")
	fs.StringVar(&opts.consul.nodeID, "node-id", "", "node id (the Consul service id) for -consul-register (default: the host name)")
	fs.StringVar(&opts.consul.advertise, "advertise", "", "host:port the mesh reaches this node at, for -consul-register (default: the listen address; on 0.0.0.0 or :: the host name and the listen port)")
	fs.StringVar(&opts.consul.kind, "kind", "", "node kind registered with -consul-register: auto, ollama, openai, vllm, llamacpp or lmstudio (default: the -flavor)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, opts, err
		}
		return cfg, opts, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "simnode: unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return cfg, opts, errUsage
	}

	var bad []error
	if f := strings.ToLower(opts.logFormat); f != "text" && f != "json" {
		bad = append(bad, fmt.Errorf("-log-format %q: want text or json", opts.logFormat))
	}
	if strings.TrimSpace(opts.consul.service) == "" {
		bad = append(bad, errors.New("-consul-service: must not be empty"))
	}
	if err := errors.Join(bad...); err != nil {
		return cfg, opts, err
	}

	cfg.Models = splitList(models)
	cfg.EmbeddingModels = splitList(embeddingModels)
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "loaded" {
			cfg.Loaded = append([]string{}, splitList(loaded)...) // non-nil: set explicitly
		}
	})
	opts.consul.apiKeyEnv = apiKeyEnv
	if apiKeyEnv != "" && !opts.healthcheck {
		cfg.APIKey = os.Getenv(apiKeyEnv)
		if cfg.APIKey == "" {
			return cfg, opts, fmt.Errorf("-api-key-env: environment variable %s is empty or unset", apiKeyEnv)
		}
	}
	return cfg, opts, nil
}

// splitList splits a comma-separated flag value, ignoring blanks.
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// run serves until ctx is cancelled, then shuts down gracefully.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if opts.healthcheck {
		return healthcheck(ctx, opts.addr)
	}
	node, err := simnode.New(cfg)
	if err != nil {
		return err
	}
	var log *slog.Logger
	if strings.EqualFold(opts.logFormat, "json") {
		log = slog.New(slog.NewJSONHandler(stderr, nil))
	} else {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}

	var consul *api.Client
	if opts.consul.register {
		// CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, … as every llmesh binary.
		if consul, err = api.NewClient(api.DefaultConfig()); err != nil {
			return fmt.Errorf("consul client: %w", err)
		}
	}
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	var reg *api.AgentServiceRegistration
	if opts.consul.register {
		if reg, err = registration(opts.consul, cfg.Flavor, ln.Addr()); err != nil {
			ln.Close()
			return err
		}
	}
	// Handlers wait on their request context; cancelling this base context
	// is how a shutdown that ran out of patience releases hung requests.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           node,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "name", cfg.Name, "models", strings.Join(cfg.Models, ","))

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// Registered once listening; deregistered (on ctx's end) before the
	// port closes, so the mesh stops sending before requests are refused.
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan struct{})
	go func() {
		defer close(regDone)
		if reg != nil {
			_ = consulreg.KeepService(regCtx, consul, reg, log) // never fails; logs Consul's outages
		}
	}()
	defer func() { stopReg(); <-regDone }()

	select {
	case err := <-served:
		return err // Serve never returns nil before Shutdown
	case <-ctx.Done():
	}
	<-regDone

	log.Info("shutting down", "timeout", opts.shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if err != nil {
		log.Warn("in-flight requests did not finish in time; cutting them off", "err", err)
		// Close the connections first: a released handler must not get
		// the chance to send an empty 200 that looks like an answer.
		err = srv.Close()
		cancelBase()
	}
	<-served //nolint:errcheck // always http.ErrServerClosed once Shutdown or Close ran
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
