// Package limits holds how long the router lets a node take and how many
// requests it sends a node at once. Both depend on what the node runs: a
// local Ollama box may need minutes for a cold model load and works on one
// request at a time by default; a vLLM server batches hundreds; a cloud API
// answers quickly and rate-limits on its own. So every node kind has its
// defaults, operators override them per kind, and a node's own settings
// (max_in_flight, num_parallel) win over its kind's.
package limits

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
)

// Limits bound one node's requests.
type Limits struct {
	// Connect bounds the TCP (and TLS) connect to the node.
	Connect time.Duration
	// FirstToken bounds the wait for the first token where the model is
	// loaded; ColdFirstToken where the node must load it first. A node
	// that sends nothing within it counts as hung.
	FirstToken, ColdFirstToken time.Duration
	// Idle bounds the silence between two chunks of a started answer.
	Idle time.Duration
	// Total bounds one attempt on the node from start to last chunk.
	Total time.Duration
	// MaxInFlight caps the requests in flight on a node whose parallelism
	// is unknown; 0 means no cap.
	MaxInFlight int
	// PerSlot, when the node's num_parallel is known, caps its requests in
	// flight at PerSlot × num_parallel: a short queue on the node, so a
	// freed slot is used at once, while further requests stay with the
	// router, free to go to another node. 0 ignores num_parallel.
	PerSlot int
}

// Defaults per kind. Local servers get a long cold first-token timeout
// (loading a model takes minutes) and a cap around their parallel slots;
// cloud APIs get no cap (they answer 429 themselves) and a total bound.
var defaults = map[nodev1.Kind]Limits{
	nodev1.Kind_KIND_OLLAMA: {Connect: 5 * time.Second, FirstToken: 30 * time.Second, ColdFirstToken: 10 * time.Minute,
		Idle: time.Minute, Total: 30 * time.Minute, MaxInFlight: 4, PerSlot: 4},
	nodev1.Kind_KIND_LLAMACPP: {Connect: 5 * time.Second, FirstToken: time.Minute, ColdFirstToken: 10 * time.Minute,
		Idle: time.Minute, Total: 30 * time.Minute, MaxInFlight: 4, PerSlot: 4},
	nodev1.Kind_KIND_LMSTUDIO: {Connect: 5 * time.Second, FirstToken: 30 * time.Second, ColdFirstToken: 10 * time.Minute,
		Idle: time.Minute, Total: 30 * time.Minute, MaxInFlight: 4, PerSlot: 4},
	nodev1.Kind_KIND_VLLM: {Connect: 5 * time.Second, FirstToken: time.Minute, ColdFirstToken: time.Minute,
		Idle: time.Minute, Total: 30 * time.Minute, MaxInFlight: 256, PerSlot: 2},
	nodev1.Kind_KIND_OPENAI: {Connect: 10 * time.Second, FirstToken: time.Minute, ColdFirstToken: time.Minute,
		Idle: time.Minute, Total: 10 * time.Minute},
	nodev1.Kind_KIND_ANTHROPIC: {Connect: 10 * time.Second, FirstToken: time.Minute, ColdFirstToken: time.Minute,
		Idle: time.Minute, Total: 10 * time.Minute},
}

// Set is the limits of every kind. The zero value is not usable; use
// Defaults.
type Set struct {
	byKind map[nodev1.Kind]Limits
}

// Defaults returns the built-in limits of every kind. Kinds without their
// own row (unknown to this table) get the openai row: the cautious one.
func Defaults() Set {
	return Set{byKind: maps.Clone(defaults)}
}

// Kind returns the limits of kind.
func (s Set) Kind(k nodev1.Kind) Limits {
	if l, ok := s.byKind[k]; ok {
		return l
	}
	return s.byKind[nodev1.Kind_KIND_OPENAI]
}

// For returns the limits of node n: its kind's, with its in-flight cap
// from its own max_in_flight, else from its num_parallel.
func (s Set) For(n *nodev1.Node) Limits {
	l := s.Kind(n.GetKind())
	switch {
	case n.GetMaxInFlight() > 0:
		l.MaxInFlight = int(n.GetMaxInFlight())
	case n.GetNumParallel() > 0 && l.PerSlot > 0:
		l.MaxInFlight = l.PerSlot * int(n.GetNumParallel())
	}
	return l
}

// keys are the settings Set accepts, with what each sets.
var keys = map[string]func(*Limits, string) error{
	"connect":          duration(func(l *Limits) *time.Duration { return &l.Connect }),
	"first-token":      duration(func(l *Limits) *time.Duration { return &l.FirstToken }),
	"cold-first-token": duration(func(l *Limits) *time.Duration { return &l.ColdFirstToken }),
	"idle":             duration(func(l *Limits) *time.Duration { return &l.Idle }),
	"total":            duration(func(l *Limits) *time.Duration { return &l.Total }),
	"max-in-flight":    count(func(l *Limits) *int { return &l.MaxInFlight }),
	"per-slot":         count(func(l *Limits) *int { return &l.PerSlot }),
}

func duration(field func(*Limits) *time.Duration) func(*Limits, string) error {
	return func(l *Limits, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration (e.g. 30s, 10m)", v)
		}
		*field(l) = d
		return nil
	}
}

func count(field func(*Limits) *int) func(*Limits, string) error {
	return func(l *Limits, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a count (0 or more; 0 means no cap)", v)
		}
		*field(l) = n
		return nil
	}
}

// Syntax describes what Set accepts, for flag help.
const Syntax = "[KIND:]KEY=VALUE,… with KIND one of ollama, vllm, llamacpp, lmstudio, openai, anthropic (no KIND: every kind) and KEY one of connect, first-token, cold-first-token, idle, total (durations), max-in-flight, per-slot (counts)"

// Set applies one override, e.g. "ollama:first-token=20s,idle=2m" or
// "total=5m" for every kind. Every problem is reported, quoting the value.
func (s Set) Set(v string) error {
	kinds := slices.Collect(maps.Keys(s.byKind))
	settings := v
	if name, rest, ok := strings.Cut(v, ":"); ok {
		k, known := nodespec.Kinds[name]
		if !known {
			return fmt.Errorf("limits %q: unknown node kind %q", v, name)
		}
		kinds, settings = []nodev1.Kind{k}, rest
	}
	var errs []error
	updated := maps.Clone(s.byKind)
	for _, kv := range strings.Split(settings, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		set, known := keys[key]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("limits %q: %q is not KEY=VALUE", v, kv))
			continue
		case !known:
			errs = append(errs, fmt.Errorf("limits %q: unknown key %q (want %s)", v, key, strings.Join(slices.Sorted(maps.Keys(keys)), ", ")))
			continue
		}
		for _, k := range kinds {
			l, ok := updated[k]
			if !ok {
				l = s.Kind(k) // a kind without its own row starts from the fallback
			}
			if err := set(&l, val); err != nil {
				errs = append(errs, fmt.Errorf("limits %q: %s: %w", v, key, err))
				break
			}
			updated[k] = l
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	maps.Copy(s.byKind, updated)
	return nil
}
