package simnode

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultName          = "simnode"
	DefaultTokens        = 8
	DefaultEmbeddingDims = 8
)

// Config describes one simulated node. The zero value of every field except
// Models is usable; New fills in the defaults documented on each field.
type Config struct {
	// Name identifies the node in responses (X-Simnode-Name header and
	// system_fingerprint "simnode-<Name>"). Default DefaultName.
	Name string

	// Models lists the model names served, e.g. "llama3.2:3b". Required.
	// Every model can both chat and embed.
	Models []string

	// Loaded lists the models /api/ps reports as loaded. nil means all of
	// Models; a non-nil empty slice means none. Must be a subset of Models.
	Loaded []string

	// Tokens is the number of completion tokens per answer, unless the
	// request asks for fewer. Default DefaultTokens.
	Tokens int

	// ReasoningTokens makes the node a thinking model: every plain chat
	// answer (not a tool call) starts with that many reasoning tokens
	// "r0 r1 …", sent in the message's or delta's "reasoning" (flavour
	// ollama, as Ollama's /v1 does) or "reasoning_content" (the other
	// flavours), before its Tokens content tokens. Default 0: no reasoning.
	ReasoningTokens int

	// FirstTokenDelay is paused before the first token; TokenDelay before
	// each later one. Non-streamed answers wait the same total.
	FirstTokenDelay time.Duration
	TokenDelay      time.Duration

	// EmbeddingDims is the length of every embedding vector.
	// Default DefaultEmbeddingDims.
	EmbeddingDims int

	// APIKey, when non-empty, is required as "Authorization: Bearer <APIKey>"
	// on every /v1/ request.
	APIKey string

	// Flavor is the server software simulated besides the OpenAI API:
	// "ollama" (the default: /api/version, /api/tags, /api/ps, /api/show),
	// "vllm" (/health, /version, /metrics), "llamacpp" (/health, /props, /slots)
	// or "lmstudio" (/api/v0/models).
	Flavor string

	// Slots is how many slots a llamacpp flavour reports on /slots
	// (default 1); requests in flight fill them.
	Slots int

	// EmbeddingModels are the models of Models that only embed: chat
	// requests for them fail with 400, and /api/show (ollama) or
	// /api/v0/models (lmstudio) say so.
	EmbeddingModels []string

	// Faults are the faults active from the start; see Server.SetFaults.
	Faults Faults
}

// Flavours New accepts.
var flavors = []string{"ollama", "vllm", "llamacpp", "lmstudio"}

// Faults are injected failures. The zero value means a healthy node.
// At most one of Status, FailAfterTokens and Hang may be set, because
// combining them would make the outcome depend on an arbitrary precedence.
type Faults struct {
	// Status, if non-zero (400-599), is returned by every chat and
	// embeddings request with an OpenAI error body carrying Message.
	Status int `json:"status"`
	// Message is the error message for Status. Empty means
	// http.StatusText(Status), or Ollama's "server busy" text for 503.
	Message string `json:"message"`
	// RetryAfter, if > 0, is sent with Status as a Retry-After header, in
	// seconds, as a rate-limited provider does.
	RetryAfter int `json:"retry_after,omitempty"`
	// FailAfterTokens, if > 0, makes the node drop the TCP connection after
	// generating that many tokens (streamed: after sending that many
	// content chunks; non-streamed: without sending any answer).
	FailAfterTokens int `json:"fail_after_tokens"`
	// Hang makes chat and embeddings requests wait, without answering,
	// until the client goes away.
	Hang bool `json:"hang"`
	// ProbeStatus, if non-zero (400-599), is returned by /api/version,
	// /api/tags, /api/ps and /v1/models, simulating a sick node.
	ProbeStatus int `json:"probe_status"`
	// Loading makes a llamacpp flavour answer /health, /v1/models and
	// chats with llama-server's 503 "Loading model".
	Loading bool `json:"loading,omitempty"`
}

// Validate reports every problem with f, joined.
func (f Faults) Validate() error {
	var errs []error
	if !validErrorStatus(f.Status) {
		errs = append(errs, fmt.Errorf("fault status %d: must be 0 or 400-599", f.Status))
	}
	if !validErrorStatus(f.ProbeStatus) {
		errs = append(errs, fmt.Errorf("fault probe_status %d: must be 0 or 400-599", f.ProbeStatus))
	}
	if f.RetryAfter < 0 || (f.RetryAfter > 0 && f.Status == 0) {
		errs = append(errs, fmt.Errorf("fault retry_after %d: must be >= 0, and only with a status", f.RetryAfter))
	}
	if f.FailAfterTokens < 0 {
		errs = append(errs, fmt.Errorf("fault fail_after_tokens %d: must be >= 0", f.FailAfterTokens))
	}
	set := 0
	for _, on := range []bool{f.Status != 0, f.FailAfterTokens > 0, f.Hang} {
		if on {
			set++
		}
	}
	if set > 1 {
		errs = append(errs, errors.New("faults status, fail_after_tokens and hang are mutually exclusive"))
	}
	return errors.Join(errs...)
}

// validErrorStatus restricts injected statuses to errors: anything else
// would either look like success or make net/http panic in WriteHeader.
func validErrorStatus(code int) bool {
	return code == 0 || (code >= 400 && code <= 599)
}

// message returns the error text sent with Status.
func (f Faults) message() string {
	switch {
	case f.Message != "":
		return f.Message
	case f.Status == http.StatusServiceUnavailable:
		// Ollama's exact text when its request queue is full (OLLAMA_MAX_QUEUE).
		return "server busy, please try again.  maximum pending requests exceeded"
	default:
		return http.StatusText(f.Status)
	}
}

// withDefaults returns a copy of c with defaults applied and slices cloned,
// so later changes by the caller cannot affect a running server.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Tokens == 0 {
		c.Tokens = DefaultTokens
	}
	if c.EmbeddingDims == 0 {
		c.EmbeddingDims = DefaultEmbeddingDims
	}
	if c.Flavor == "" {
		c.Flavor = "ollama"
	}
	if c.Slots == 0 {
		c.Slots = 1
	}
	c.Models = slices.Clone(c.Models)
	c.EmbeddingModels = slices.Clone(c.EmbeddingModels)
	if c.Loaded == nil {
		c.Loaded = slices.Clone(c.Models)
	} else {
		c.Loaded = append([]string{}, c.Loaded...)
	}
	return c
}

// validate reports every problem with a defaulted config, joined.
func (c Config) validate() error {
	var errs []error
	for _, r := range c.Name {
		if r < 0x20 || r == 0x7f {
			errs = append(errs, fmt.Errorf("name %q: control characters are not allowed (it is sent as a header)", c.Name))
			break
		}
	}
	if len(c.Models) == 0 {
		errs = append(errs, errors.New("models: at least one model is required"))
	}
	errs = append(errs, checkNames("models", c.Models)...)
	errs = append(errs, checkNames("loaded", c.Loaded)...)
	for _, m := range c.Loaded {
		if m != "" && !slices.Contains(c.Models, m) {
			errs = append(errs, fmt.Errorf("loaded model %q is not in models", m))
		}
	}
	for _, m := range c.EmbeddingModels {
		if !slices.Contains(c.Models, m) {
			errs = append(errs, fmt.Errorf("embedding model %q is not in models", m))
		}
	}
	if !slices.Contains(flavors, c.Flavor) {
		errs = append(errs, fmt.Errorf("flavor %q: want one of %v", c.Flavor, flavors))
	}
	if c.Slots < 0 {
		errs = append(errs, fmt.Errorf("slots %d: must be >= 0", c.Slots))
	}
	if c.ReasoningTokens < 0 {
		errs = append(errs, fmt.Errorf("reasoning tokens %d: must be >= 0", c.ReasoningTokens))
	}
	if c.Tokens < 0 {
		errs = append(errs, fmt.Errorf("tokens %d: must be >= 0", c.Tokens))
	}
	if c.EmbeddingDims < 0 {
		errs = append(errs, fmt.Errorf("embedding dims %d: must be >= 0", c.EmbeddingDims))
	}
	if c.FirstTokenDelay < 0 {
		errs = append(errs, fmt.Errorf("first token delay %v: must be >= 0", c.FirstTokenDelay))
	}
	if c.TokenDelay < 0 {
		errs = append(errs, fmt.Errorf("token delay %v: must be >= 0", c.TokenDelay))
	}
	if err := c.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkNames rejects empty and duplicate model names in one list.
func checkNames(field string, names []string) []error {
	var errs []error
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		switch {
		case n == "":
			errs = append(errs, fmt.Errorf("%s: empty model name", field))
		case seen[n]:
			errs = append(errs, fmt.Errorf("%s: duplicate model %q", field, n))
		}
		seen[n] = true
	}
	return errs
}
