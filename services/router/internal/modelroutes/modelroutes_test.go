package modelroutes

import (
	"strings"
	"testing"

	"github.com/llmesh/llmesh/services/router/internal/policy"
)

func TestResolve(t *testing.T) {
	var tab Table
	for _, v := range []string{"default=llama3.2:3b", "fast=llama3.2:3b@gpu", "hf=hf.co/org/m@x:Q4@lan"} {
		if err := tab.AddAlias(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"gpt-4o=cloud-only", "llama3.2:3b=local-only", "fast=cloud-first"} {
		if err := tab.AddTiers(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		want Route
	}{
		{"default", Route{Model: "llama3.2:3b", Tiers: policy.LocalOnly}},
		{"fast", Route{Model: "llama3.2:3b", Group: "gpu", Tiers: policy.CloudFirst}},
		{"hf", Route{Model: "hf.co/org/m@x:Q4", Group: "lan"}},
		{"gpt-4o", Route{Model: "gpt-4o", Tiers: policy.CloudOnly}},
		{"other", Route{Model: "other"}},
	} {
		if got := tab.Resolve(tt.name); got != tt.want {
			t.Errorf("Resolve(%q) = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if got := tab.Aliases(); strings.Join(got, ",") != "default,fast,hf" {
		t.Errorf("Aliases() = %v", got)
	}
	var zero Table
	if got := zero.Resolve("m"); got != (Route{Model: "m"}) {
		t.Errorf("zero table: %+v", got)
	}
}

func TestBadConfigIsRejectedQuotingIt(t *testing.T) {
	var tab Table
	if err := tab.AddAlias("a=m"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		add  func(string) error
		in   string
		want string
	}{
		{tab.AddAlias, "a", "want NAME=MODEL"},
		{tab.AddAlias, "=m", "want NAME=MODEL"},
		{tab.AddAlias, "b=m@", "with a group of"},
		{tab.AddAlias, "b=@gpu", "with a group of"},
		{tab.AddAlias, "b=m@g pu", "with a group of"},
		{tab.AddAlias, "a=other", `"a" is already an alias`},
		{tab.AddTiers, "m", "want NAME=MODE"},
		{tab.AddTiers, "m=cloudy", `"cloudy"`},
	} {
		err := tt.add(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"`+tt.in+`"`) {
			t.Errorf("%q: %v, want an error quoting it and containing %s", tt.in, err, tt.want)
		}
	}
}
