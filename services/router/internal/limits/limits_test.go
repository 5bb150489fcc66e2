package limits

import (
	"strings"
	"testing"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

func TestForTakesTheNodesOwnCapOverItsKinds(t *testing.T) {
	s := Defaults()
	ollama := nodev1.Kind_KIND_OLLAMA
	for _, tt := range []struct {
		name string
		node *nodev1.Node
		want int
	}{
		{"kind default", &nodev1.Node{Kind: ollama}, 4},
		{"from num_parallel", &nodev1.Node{Kind: ollama, NumParallel: 3}, 12},
		{"explicit cap wins", &nodev1.Node{Kind: ollama, NumParallel: 3, MaxInFlight: 5}, 5},
		{"vllm batches", &nodev1.Node{Kind: nodev1.Kind_KIND_VLLM}, 256},
		{"cloud: no cap", &nodev1.Node{Kind: nodev1.Kind_KIND_OPENAI, NumParallel: 8}, 0},
		{"unknown kind: the cautious row", &nodev1.Node{Kind: nodev1.Kind(99)}, 0},
		{"anthropic: no cap", &nodev1.Node{Kind: nodev1.Kind_KIND_ANTHROPIC}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.For(tt.node).MaxInFlight; got != tt.want {
				t.Errorf("MaxInFlight = %d, want %d", got, tt.want)
			}
		})
	}
	if got := s.For(&nodev1.Node{Kind: ollama}).ColdFirstToken; got != 10*time.Minute {
		t.Errorf("ollama cold first token = %s, want 10m", got)
	}
}

func TestSetOverridesOneKindOrAll(t *testing.T) {
	s := Defaults()
	if err := s.Set("ollama:first-token=20s,idle=2m,max-in-flight=0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("total=5m"); err != nil {
		t.Fatal(err)
	}
	o := s.Kind(nodev1.Kind_KIND_OLLAMA)
	if o.FirstToken != 20*time.Second || o.Idle != 2*time.Minute || o.MaxInFlight != 0 || o.Total != 5*time.Minute {
		t.Errorf("ollama = %+v", o)
	}
	if o.ColdFirstToken != 10*time.Minute {
		t.Errorf("untouched cold first token changed: %s", o.ColdFirstToken)
	}
	v := s.Kind(nodev1.Kind_KIND_VLLM)
	if v.FirstToken != time.Minute || v.Total != 5*time.Minute {
		t.Errorf("vllm = %+v", v)
	}
	if err := s.Set("anthropic:idle=3m"); err != nil {
		t.Fatal(err)
	}
	if a := s.Kind(nodev1.Kind_KIND_ANTHROPIC); a.Idle != 3*time.Minute || a.FirstToken != time.Minute || a.Total != 5*time.Minute {
		t.Errorf("anthropic = %+v", a)
	}
	if d := Defaults().Kind(nodev1.Kind_KIND_OLLAMA).FirstToken; d != 30*time.Second {
		t.Errorf("Set leaked into the defaults: %s", d)
	}
}

func TestSetRejectsBadValuesAndChangesNothing(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"gpu:idle=1m", `unknown node kind "gpu"`},
		{"ollama:idle", `"idle" is not KEY=VALUE`},
		{"speed=1m", `unknown key "speed"`},
		{"idle=soon", `"soon" is not a positive duration`},
		{"idle=-1s", `"-1s" is not a positive duration`},
		{"max-in-flight=-2", `"-2" is not a count`},
		{"first-token=5s,idle=x", `"x" is not a positive duration`},
	} {
		s := Defaults()
		err := s.Set(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.in) {
			t.Errorf("Set(%q) = %v, want an error quoting the value and containing %s", tt.in, err, tt.want)
		}
		if got := s.Kind(nodev1.Kind_KIND_OLLAMA).FirstToken; got != 30*time.Second {
			t.Errorf("Set(%q) failed but changed first-token to %s", tt.in, got)
		}
	}
}
