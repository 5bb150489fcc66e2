package simnode

import (
	"strings"
	"testing"
	"time"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		wants []string // every fragment must appear in the joined error
	}{
		{"no models", Config{}, []string{"at least one model"}},
		{"empty and duplicate models", Config{Models: []string{"a", "", "a"}},
			[]string{"models: empty model name", `models: duplicate model "a"`}},
		{"loaded not served", Config{Models: []string{"a"}, Loaded: []string{"b"}},
			[]string{`loaded model "b" is not in models`}},
		{"name with newline", Config{Models: []string{"a"}, Name: "x\ny"}, []string{"control characters"}},
		{"all numeric problems at once", Config{
			Models: []string{"a"}, Tokens: -1, EmbeddingDims: -2,
			FirstTokenDelay: -time.Second, TokenDelay: -time.Second,
		}, []string{"tokens -1", "embedding dims -2", "first token delay", "token delay -1s"}},
		{"invalid faults", Config{Models: []string{"a"}, Faults: Faults{Status: 200, ProbeStatus: 42, FailAfterTokens: -1}},
			[]string{"fault status 200", "fault probe_status 42", "fail_after_tokens -1"}},
		{"exclusive faults", Config{Models: []string{"a"}, Faults: Faults{Status: 500, Hang: true}},
			[]string{"mutually exclusive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New succeeded (%+v), want error", node.cfg)
			}
			for _, want := range tt.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestNewAppliesDefaultsAndCopiesSlices(t *testing.T) {
	models := []string{"a", "b"}
	node, err := New(Config{Models: models})
	if err != nil {
		t.Fatal(err)
	}
	models[0] = "changed" // must not leak into the running server
	c := node.cfg
	if c.Name != "simnode" || c.Tokens != 8 || c.EmbeddingDims != 8 {
		t.Errorf("defaults = name %q tokens %d dims %d, want simnode 8 8", c.Name, c.Tokens, c.EmbeddingDims)
	}
	if strings.Join(c.Models, ",") != "a,b" || strings.Join(c.Loaded, ",") != "a,b" {
		t.Errorf("models %v loaded %v, want [a b] for both", c.Models, c.Loaded)
	}
}

func TestSetFaultsPanicsOnInvalidFaults(t *testing.T) {
	node, err := New(Config{Models: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "fault status 42") {
			t.Errorf("recover() = %v, want panic naming the bad status", r)
		}
	}()
	node.SetFaults(Faults{Status: 42})
}
