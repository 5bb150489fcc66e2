package config

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

type settings struct {
	addr, admin, format, level, name string
	grace, wait                      time.Duration
	size                             int
	big                              int64
	jitter                           float64
	consul                           bool
	items                            []string
}

func newTestSet(env map[string]string, out *bytes.Buffer) (*Set, *settings) {
	var c settings
	s := New("demo", envMap(env), out)
	s.Addr(&c.addr, "grpc-addr", "127.0.0.1:9000", "listen address").Env("LLMESH_DEMO_ADDR")
	s.Admin(&c.admin, "/debug/pprof")
	s.Logging(&c.format, &c.level)
	s.Grace(&c.grace, "requests in flight")
	s.Consul(&c.consul, "register in Consul")
	s.Duration(&c.wait, "queue-wait", 0, "wait", NotNegative[time.Duration])
	s.Int(&c.size, "queue-size", 256, "size", NotNegative[int])
	s.Int64(&c.big, "max-body-bytes", 1<<25, "bytes", Positive[int64])
	s.Float64(&c.jitter, "probe-jitter", 0.2, "jitter", func(f float64) error {
		if f >= 1 {
			return errors.New("want < 1")
		}
		return nil
	})
	s.String(&c.name, "name", "x", "name")
	s.List("item", "repeatable", func(v string) error {
		if v == "bad" {
			return errors.New("bad item")
		}
		c.items = append(c.items, v)
		return nil
	})
	return s, &c
}

func TestDefaults(t *testing.T) {
	s, c := newTestSet(nil, &bytes.Buffer{})
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	want := settings{addr: "127.0.0.1:9000", format: "text", level: "info", grace: 10 * time.Second, size: 256, big: 1 << 25, jitter: 0.2, name: "x"}
	if !equal(*c, want) {
		t.Errorf("got %+v, want %+v", *c, want)
	}
	if s.Given("grpc-addr") {
		t.Error("a default counts as given")
	}
}

func equal(a, b settings) bool {
	return slices.Equal(a.items, b.items) && a.addr == b.addr && a.admin == b.admin && a.format == b.format &&
		a.level == b.level && a.name == b.name && a.grace == b.grace && a.wait == b.wait && a.size == b.size &&
		a.big == b.big && a.jitter == b.jitter && a.consul == b.consul
}

func TestEnvNamesFollowTheRule(t *testing.T) {
	s, _ := newTestSet(nil, &bytes.Buffer{})
	got := map[string][]string{}
	for _, f := range s.Flags() {
		got[f.Name] = f.Env
	}
	for name, want := range map[string][]string{
		"grpc-addr":      {"LLMESH_DEMO_GRPC_ADDR", "LLMESH_DEMO_ADDR"},
		"admin-addr":     {"LLMESH_DEMO_ADMIN_ADDR"},
		"log-format":     {"LLMESH_DEMO_LOG_FORMAT", "LLMESH_LOG_FORMAT"},
		"log-level":      {"LLMESH_DEMO_LOG_LEVEL", "LLMESH_LOG_LEVEL"},
		"grace":          {"LLMESH_DEMO_GRACE"},
		"consul":         {"LLMESH_DEMO_CONSUL", "LLMESH_CONSUL"},
		"max-body-bytes": {"LLMESH_DEMO_MAX_BODY_BYTES"},
		"item":           {"LLMESH_DEMO_ITEM"},
	} {
		if !slices.Equal(got[name], want) {
			t.Errorf("-%s reads %v, want %v", name, got[name], want)
		}
	}
}

func TestPrecedence(t *testing.T) {
	env := map[string]string{
		"LLMESH_DEMO_ADDR":       "127.0.0.1:1", // shared, loses to the service's own
		"LLMESH_DEMO_GRPC_ADDR":  "127.0.0.1:2",
		"LLMESH_LOG_FORMAT":      "json", // shared only
		"LLMESH_LOG_LEVEL":       "warn",
		"LLMESH_DEMO_LOG_LEVEL":  "", // empty is unset
		"LLMESH_DEMO_QUEUE_SIZE": "7",
		"LLMESH_DEMO_GRACE":      "3s",
		"LLMESH_CONSUL":          "true",
		"LLMESH_DEMO_ITEM":       "a;b;;c",
		"LLMESH_DEMO_NAME":       "from-env",
	}
	s, c := newTestSet(env, &bytes.Buffer{})
	if err := s.Parse([]string{"-grace", "4s", "-name", "flag", "-item", "z"}); err != nil {
		t.Fatal(err)
	}
	want := settings{addr: "127.0.0.1:2", format: "json", level: "warn", grace: 4 * time.Second, size: 7, big: 1 << 25,
		jitter: 0.2, consul: true, name: "flag", items: []string{"z"}}
	if !equal(*c, want) {
		t.Errorf("got %+v, want %+v", *c, want)
	}
	for _, name := range []string{"grpc-addr", "grace", "consul", "item", "log-format"} {
		if !s.Given(name) {
			t.Errorf("-%s not given", name)
		}
	}
	if s.Given("log-level") == false {
		t.Error("-log-level came from LLMESH_LOG_LEVEL")
	}
	if s.Given("queue-wait") {
		t.Error("-queue-wait was not given")
	}

	s, c = newTestSet(map[string]string{"LLMESH_DEMO_ITEM": "a;b;;c"}, &bytes.Buffer{})
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.items, []string{"a", "b", "c"}) {
		t.Errorf("items from the environment: %q", c.items)
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	env := map[string]string{
		"LLMESH_DEMO_QUEUE_SIZE":     "many",
		"LLMESH_DEMO_QUEUE_WAIT":     "-1s",
		"LLMESH_CONSUL":              "yes",
		"LLMESH_DEMO_MAX_BODY_BYTES": "0",
		"LLMESH_DEMO_ITEM":           "ok;bad",
		"LLMESH_DEMO_ADMIN_ADDR":     "nowhere",
		"LLMESH_LOG_LEVEL":           "loud",
	}
	s, _ := newTestSet(env, &bytes.Buffer{})
	err := s.Parse([]string{"-grace", "-1s", "-grpc-addr", "nonsense", "-probe-jitter", "1.5", "-log-format", "xml", "extra"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`-grace "-1s": must be positive`,
		`-grpc-addr "nonsense": want host:port`,
		`-probe-jitter "1.5": want < 1`,
		`-log-format "xml": want text or json`,
		`LLMESH_DEMO_QUEUE_SIZE="many" (-queue-size): want a whole number`,
		`LLMESH_DEMO_QUEUE_WAIT="-1s" (-queue-wait): must not be negative`,
		`LLMESH_CONSUL="yes" (-consul): want true or false`,
		`LLMESH_DEMO_MAX_BODY_BYTES="0" (-max-body-bytes): must be positive`,
		`LLMESH_DEMO_ITEM="bad" (-item): bad item`,
		`LLMESH_DEMO_ADMIN_ADDR="nowhere" (-admin-addr): want host:port`,
		`LLMESH_LOG_LEVEL="loud" (-log-level): want debug, info, warn or error`,
		`unexpected arguments: ["extra"]`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 13 {
		t.Errorf("%d lines, want a header and 12 problems:\n%v", n, err)
	}
}

func TestStrictTypes(t *testing.T) {
	for _, tc := range []struct{ flag, value string }{
		{"queue-size", "1.5"}, {"queue-size", "0x10"}, {"queue-size", "99999999999999999999"},
		{"queue-wait", "5"}, {"consul", "on"}, {"probe-jitter", "fast"},
		{"grpc-addr", "127.0.0.1:99999"},
	} {
		s, _ := newTestSet(nil, &bytes.Buffer{})
		arg := "-" + tc.flag + "=" + tc.value
		if err := s.Parse([]string{arg}); err == nil || !strings.Contains(err.Error(), `"`+tc.value+`"`) {
			t.Errorf("%s: %v, want an error quoting the value", arg, err)
		}
	}
}

func TestBoolFlagWithoutValue(t *testing.T) {
	s, c := newTestSet(map[string]string{"LLMESH_CONSUL": "false"}, &bytes.Buffer{})
	if err := s.Parse([]string{"-consul"}); err != nil || !c.consul {
		t.Errorf("-consul: %v %v", c.consul, err)
	}
}

func TestUnknownFlag(t *testing.T) {
	var out bytes.Buffer
	s, _ := newTestSet(nil, &out)
	err := s.Parse([]string{"-queue-size", "x", "-nope"})
	if err == nil || !strings.Contains(err.Error(), "-nope") || !strings.Contains(err.Error(), `-queue-size "x"`) {
		t.Errorf("%v, want both problems", err)
	}
}

func TestHelpShowsTheVariables(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out bytes.Buffer
		s, _ := newTestSet(nil, &out)
		if err := s.Parse([]string{arg}); !errors.Is(err, ErrHelp) {
			t.Fatalf("%s: %v, want ErrHelp", arg, err)
		}
		for _, want := range []string{
			"listen address [LLMESH_DEMO_GRPC_ADDR or LLMESH_DEMO_ADDR] (default 127.0.0.1:9000)",
			"log format: text or json [LLMESH_DEMO_LOG_FORMAT or LLMESH_LOG_FORMAT] (default text)",
			"[LLMESH_DEMO_ITEM]",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, out.String())
			}
		}
	}
}

func TestCommandFlagsReadOnlySharedNames(t *testing.T) {
	var id, svc string
	s := NewCommand("llmesh node list", envMap(map[string]string{"LLMESH_CONSUL_SERVICE": "gpu", "ID": "x"}), &bytes.Buffer{})
	s.String(&id, "id", "", "node id")
	s.String(&svc, "service", "llm", "service").Env(EnvConsulService)
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if id != "" || svc != "gpu" {
		t.Errorf("id %q, service %q", id, svc)
	}
	if f := s.Flags(); len(f[0].Env) != 0 || !slices.Equal(f[1].Env, []string{EnvConsulService}) {
		t.Errorf("flags: %+v", f)
	}
}

func TestCheckDoc(t *testing.T) {
	s, _ := newTestSet(nil, &bytes.Buffer{})
	var doc strings.Builder
	doc.WriteString("text\n\n| service | flag | env | default | what |\n| --- | --- | --- | --- | --- |\n")
	for _, f := range s.Flags() {
		env := make([]string, len(f.Env))
		for i, e := range f.Env {
			env[i] = "`" + e + "`"
		}
		def := "–"
		if f.Default != "" {
			def = "`" + f.Default + "` (so)"
		}
		doc.WriteString("| demo | `-" + f.Name + "` | " + strings.Join(env, ", ") + " | " + def + " | x |\n")
	}
	doc.WriteString("| other | `-x` | | | |\n")
	good := doc.String()
	if p := CheckDoc(good, "demo", s.Flags()); len(p) != 0 {
		t.Errorf("a matching table: %q", p)
	}
	bad := strings.Replace(good, "`256`", "`128`", 1)
	bad = strings.Replace(bad, ", `LLMESH_LOG_LEVEL`", "", 1)
	bad = strings.Replace(bad, "| demo | `-grace`", "| demo | `-graceful`", 1)
	bad += "| demo | `-name` | | | |\n"
	p := CheckDoc(bad, "demo", s.Flags())
	want := []string{
		`-queue-size: default "128", the flag's is "256"`,
		"-log-level: env [LLMESH_DEMO_LOG_LEVEL], the flag reads [LLMESH_DEMO_LOG_LEVEL LLMESH_LOG_LEVEL]",
		"demo -grace (env [LLMESH_DEMO_GRACE], default \"10s\") has no row",
		"demo -graceful is documented but not registered",
		"demo -name is documented twice",
	}
	for _, w := range want {
		if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no problem %q in %q", w, p)
		}
	}
}
