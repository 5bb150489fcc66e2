// Package modelroutes turns the model name a client asks for into where
// the request may go: the model the nodes know, the node group allowed to
// serve it, and where cloud nodes stand (policy.Tiers). Names come from
// operator configuration: aliases such as default=llama3.2:3b or
// fast=llama3.2:3b@gpu (the model on the nodes of group "gpu" only), and
// tier modes per model such as gpt-4o=cloud-only.
package modelroutes

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/llmesh/llmesh/services/router/internal/policy"
)

// Route is where one request may go.
type Route struct {
	// Model is the model name sent to nodes.
	Model string
	// Group, when set, limits the request to nodes of that group.
	Group string
	// Tiers says where cloud nodes stand.
	Tiers policy.Tiers
}

// Table resolves requested names. The zero value resolves every name to
// itself; configure it with AddAlias and AddTiers before use, not after.
type Table struct {
	aliases map[string]Route
	tiers   map[string]policy.Tiers
}

var groupName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// AddAlias reads NAME=MODEL or NAME=MODEL@GROUP.
func (t *Table) AddAlias(v string) error {
	name, target, ok := strings.Cut(v, "=")
	if !ok || name == "" || target == "" {
		return fmt.Errorf("model alias %q: want NAME=MODEL or NAME=MODEL@GROUP", v)
	}
	r := Route{Model: target}
	if i := strings.LastIndex(target, "@"); i >= 0 {
		r.Model, r.Group = target[:i], target[i+1:]
		if r.Model == "" || !groupName.MatchString(r.Group) {
			return fmt.Errorf("model alias %q: want NAME=MODEL@GROUP with a group of letters, digits, . _ -", v)
		}
	}
	if t.aliases == nil {
		t.aliases = map[string]Route{}
	}
	if _, dup := t.aliases[name]; dup {
		return fmt.Errorf("model alias %q: %q is already an alias", v, name)
	}
	t.aliases[name] = r
	return nil
}

// AddTiers reads NAME=MODE, MODE one of local-first, cloud-first,
// local-only, cloud-only; NAME is a model or an alias.
func (t *Table) AddTiers(v string) error {
	name, mode, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("model tiers %q: want NAME=MODE", v)
	}
	tiers, err := policy.ParseTiers(mode)
	if err != nil {
		return fmt.Errorf("model tiers %q: %w", v, err)
	}
	if t.tiers == nil {
		t.tiers = map[string]policy.Tiers{}
	}
	t.tiers[name] = tiers
	return nil
}

// Resolve returns where a request for name may go. Tiers set for the
// requested name win over those set for the model it stands for.
func (t *Table) Resolve(name string) Route {
	r, ok := t.aliases[name]
	if !ok {
		r = Route{Model: name}
	}
	if tiers, ok := t.tiers[name]; ok {
		r.Tiers = tiers
	} else if tiers, ok := t.tiers[r.Model]; ok {
		r.Tiers = tiers
	}
	return r
}

// Aliases returns the alias names, sorted.
func (t *Table) Aliases() []string {
	return slices.Sorted(maps.Keys(t.aliases))
}
