// Package config is how every llmesh binary reads its settings: flags,
// each with an environment variable named by one rule, parsed strictly,
// with every problem reported at once and -h handled the same way
// everywhere.
//
// The rule: flag -<flag> of service <service> reads LLMESH_<SERVICE>_<FLAG>
// (upper case, '-' becomes '_'), e.g. router -queue-size reads
// LLMESH_ROUTER_QUEUE_SIZE. A setting that is the same across services
// also reads one shared name (the Env* constants), so one environment
// configures the whole mesh; the service's own name beats the shared one.
// A flag given on the command line beats both; an empty variable counts
// as unset. A repeatable flag's variable holds its values separated by
// ';'.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The shared environment variables: settings that are the same for every
// service that has them.
const (
	EnvConsul        = "LLMESH_CONSUL"         // -consul
	EnvConsulService = "LLMESH_CONSUL_SERVICE" // -consul-service (llmesh node: -service)
	EnvLogFormat     = "LLMESH_LOG_FORMAT"     // -log-format
	EnvLogLevel      = "LLMESH_LOG_LEVEL"      // -log-level
	EnvAdapterAddr   = "LLMESH_ADAPTER_ADDR"   // adapter -grpc-addr; router and healthmon -adapter-addr
	EnvHealthmonAddr = "LLMESH_HEALTHMON_ADDR" // healthmon -grpc-addr; router -healthmon-addr
	EnvNodesFile     = "LLMESH_NODES_FILE"     // healthmon -nodes
)

// ListSeparator separates the values of a repeatable flag in its
// environment variable.
const ListSeparator = ";"

// ErrHelp is returned by Parse after it printed the usage for -h or
// -help; the binary then exits 0.
var ErrHelp = flag.ErrHelp

// Set is the flags of one binary.
type Set struct {
	name   string
	prefix string // "LLMESH_ROUTER_"; empty: flags have no rule name
	lookup func(string) (string, bool)
	fs     *flag.FlagSet
	flags  []*Flag
	errs   []error
	given  map[string]bool
}

// New returns the flag set of service (router, adapter, healthmon): every
// flag it registers reads LLMESH_<SERVICE>_<FLAG>. lookup reads the
// environment (os.LookupEnv; a map in tests); usage goes to out.
func New(service string, lookup func(string) (string, bool), out io.Writer) *Set {
	s := newSet(service, lookup, out)
	s.prefix = "LLMESH_" + envName(service) + "_"
	return s
}

// NewCommand returns the flag set of one operator command (such as
// "llmesh node register"), whose flags describe one invocation: they read
// no variable by the rule, only the shared name given with Flag.Env.
func NewCommand(name string, lookup func(string) (string, bool), out io.Writer) *Set {
	return newSet(name, lookup, out)
}

func newSet(name string, lookup func(string) (string, bool), out io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &Set{name: name, lookup: lookup, fs: fs, given: map[string]bool{}}
}

// Flag is one registered flag; its methods add to how it is read.
type Flag struct {
	s        *Set
	name     string
	usage    string
	def      string
	repeated bool
	kind     string   // what -h shows the value as: "duration", "int", …; "" for a bool
	env      []string // the rule's name first, then the shared one
	set      func(string) error
}

// Env makes the flag also read the shared variable name, after its own.
func (f *Flag) Env(name string) *Flag {
	f.env = append(f.env, name)
	return f
}

// Info describes a registered flag, for usage and documentation checks.
type Info struct {
	Name     string   // without the dash
	Env      []string // variables read, in order of precedence; may be empty
	Default  string   // as the flag package prints it; "" for none
	Repeated bool
	Usage    string
}

// Flags lists the registered flags in the order they were registered.
func (s *Set) Flags() []Info {
	out := make([]Info, 0, len(s.flags))
	for _, f := range s.flags {
		out = append(out, Info{Name: f.name, Env: append([]string(nil), f.env...), Default: f.def, Repeated: f.repeated, Usage: f.usage})
	}
	return out
}

// Given reports whether the flag was set on the command line or from the
// environment (not left at its default).
func (s *Set) Given(name string) bool { return s.given[name] }

// Args returns the arguments left after the flags.
func (s *Set) Args() []string { return s.fs.Args() }

// Parse reads args, then fills every flag not given there from its
// environment variables, and checks every value. It reports every
// problem at once (errors.Join), each naming the flag or variable and
// quoting the value. For -h or -help it prints the usage and returns
// ErrHelp. Arguments left after the flags are an error. The error starts
// with "invalid configuration:" and has one line per problem.
func (s *Set) Parse(args []string) error {
	s.fs.Usage = s.printUsage
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		// The flag package stops at an unknown flag or a missing value
		// and has printed the usage; report it with what came before.
		return invalid(append(s.errs, err))
	}
	s.fs.Visit(func(fl *flag.Flag) { s.given[fl.Name] = true })
	for _, f := range s.flags {
		if s.given[f.name] {
			continue
		}
		for _, name := range f.env {
			v, ok := s.lookup(name)
			if !ok || v == "" {
				continue
			}
			s.given[f.name] = true
			parts := []string{v}
			if f.repeated {
				parts = strings.Split(v, ListSeparator)
			}
			for _, p := range parts {
				if f.repeated && strings.TrimSpace(p) == "" {
					continue
				}
				if err := f.set(p); err != nil {
					s.errs = append(s.errs, fmt.Errorf("%s=%q (-%s): %w", name, p, f.name, err))
				}
			}
			break
		}
	}
	if s.fs.NArg() > 0 {
		s.errs = append(s.errs, fmt.Errorf("unexpected arguments: %q", s.fs.Args()))
	}
	return invalid(s.errs)
}

func invalid(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}

// printUsage prints every flag, sorted, with the kind of value it takes,
// its variables and its default.
func (s *Set) printUsage() {
	w := s.fs.Output()
	fmt.Fprintf(w, "Usage of %s:\n", s.name)
	flags := slices.Clone(s.flags)
	slices.SortFunc(flags, func(a, b *Flag) int { return strings.Compare(a.name, b.name) })
	for _, f := range flags {
		line := "  -" + f.name
		if f.kind != "" {
			line += " " + f.kind
		}
		line += "\n    \t" + strings.ReplaceAll(f.usage, "\n", "\n    \t")
		if len(f.env) > 0 {
			line += " [" + strings.Join(f.env, " or ") + "]"
		}
		switch f.def {
		case "", "false", "0", "0s":
		default:
			line += " (default " + f.def + ")"
		}
		fmt.Fprintln(w, line)
	}
}

// envName turns a flag or service name into its part of a variable name.
func envName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

// value is what the flag package sees: a Set that records a bad value
// instead of stopping the parse, so every problem is reported.
type value struct {
	f      *Flag
	isBool bool
	text   string
}

func (v *value) String() string {
	if v == nil || v.f == nil {
		return ""
	}
	return v.text
}

func (v *value) Set(s string) error {
	if err := v.f.set(s); err != nil {
		v.f.s.errs = append(v.f.s.errs, fmt.Errorf("-%s %q: %w", v.f.name, s, err))
		return nil
	}
	if !v.f.repeated {
		v.text = s
	}
	return nil
}

func (v *value) IsBoolFlag() bool { return v.isBool }

func (s *Set) register(name, usage, def, kind string, repeated bool, set func(string) error) *Flag {
	f := &Flag{s: s, name: name, usage: usage, def: def, kind: kind, repeated: repeated, set: set}
	if s.prefix != "" {
		f.env = []string{s.prefix + envName(name)}
	}
	s.flags = append(s.flags, f)
	s.fs.Var(&value{f: f, isBool: kind == "", text: def}, name, usage)
	return f
}

// check runs checks on v in order and returns the first failure.
func check[T any](v T, checks []func(T) error) error {
	for _, c := range checks {
		if err := c(v); err != nil {
			return err
		}
	}
	return nil
}

// String registers a string flag with default def; checks run on every
// value given.
func (s *Set) String(p *string, name, def, usage string, checks ...func(string) error) *Flag {
	*p = def
	return s.register(name, usage, def, "string", false, func(v string) error {
		if err := check(v, checks); err != nil {
			return err
		}
		*p = v
		return nil
	})
}

// Addr registers a host:port flag. An empty default means the address is
// optional (off when empty).
func (s *Set) Addr(p *string, name, def, usage string) *Flag {
	optional := def == ""
	return s.String(p, name, def, usage, func(v string) error {
		if v == "" && optional {
			return nil
		}
		return ValidAddr(v)
	})
}

// ValidAddr checks a host:port listen or dial address.
func ValidAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	return nil
}

// Bool registers a boolean flag: true or false (also 1, t, 0, f, in any
// case); anything else is an error.
func (s *Set) Bool(p *bool, name string, def bool, usage string) *Flag {
	*p = def
	return s.register(name, usage, strconv.FormatBool(def), "", false, func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*p = b
		return nil
	})
}

// Duration registers a duration flag (time.ParseDuration: 300ms, 5s, 1m30s).
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string, checks ...func(time.Duration) error) *Flag {
	*p = def
	return s.register(name, usage, def.String(), "duration", false, func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("want a duration such as 500ms, 5s or 2m")
		}
		if err := check(d, checks); err != nil {
			return err
		}
		*p = d
		return nil
	})
}

// Int registers an integer flag (decimal).
func (s *Set) Int(p *int, name string, def int, usage string, checks ...func(int) error) *Flag {
	*p = def
	return s.register(name, usage, strconv.Itoa(def), "int", false, func(v string) error {
		n, err := strconv.ParseInt(v, 10, strconv.IntSize)
		if err != nil {
			return errors.New("want a whole number")
		}
		if err := check(int(n), checks); err != nil {
			return err
		}
		*p = int(n)
		return nil
	})
}

// Int64 registers a 64-bit integer flag (decimal).
func (s *Set) Int64(p *int64, name string, def int64, usage string, checks ...func(int64) error) *Flag {
	*p = def
	return s.register(name, usage, strconv.FormatInt(def, 10), "int", false, func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errors.New("want a whole number")
		}
		if err := check(n, checks); err != nil {
			return err
		}
		*p = n
		return nil
	})
}

// Float64 registers a floating-point flag.
func (s *Set) Float64(p *float64, name string, def float64, usage string, checks ...func(float64) error) *Flag {
	*p = def
	return s.register(name, usage, strconv.FormatFloat(def, 'g', -1, 64), "number", false, func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return errors.New("want a number")
		}
		if err := check(f, checks); err != nil {
			return err
		}
		*p = f
		return nil
	})
}

// Func registers a flag that set parses; it has no default.
func (s *Set) Func(name, usage string, set func(string) error) *Flag {
	return s.register(name, usage, "", "value", false, set)
}

// List registers a repeatable flag: add is called with each value, from
// each use of the flag, or else from each ';'-separated part of its
// variable.
func (s *Set) List(name, usage string, add func(string) error) *Flag {
	return s.register(name, usage, "", "value", true, add)
}

type number interface {
	~int | ~int32 | ~int64 | ~float64
}

// Positive is a check that a value is above zero.
func Positive[T number](v T) error {
	if v <= 0 {
		return errors.New("must be positive")
	}
	return nil
}

// NotNegative is a check that a value is zero or more.
func NotNegative[T number](v T) error {
	if v < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

// AtLeast returns a check that a value is least or more.
func AtLeast[T number](least T) func(T) error {
	return func(v T) error {
		if v < least {
			return fmt.Errorf("must be at least %v", least)
		}
		return nil
	}
}
