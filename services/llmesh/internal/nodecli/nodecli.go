// Package nodecli is the `llmesh node` command: it puts LLM nodes that run
// no Consul agent (a box with just Ollama on a LAN address) into Consul's
// catalog, lists them and takes them out again. healthmon, watching
// Consul, probes a registered node and starts routing to it once a probe
// succeeds.
package nodecli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/meshkit/config"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
	"github.com/llmesh/llmesh/services/meshkit/nodesfile"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
)

const usage = `usage:
  llmesh node register -id ID -url URL [-kind KIND] [-api-key-env VAR] [-service llm]
      [-tls-ca-file PEM] [-tls-cert-file PEM -tls-key-file PEM] [-tls-server-name NAME] [-tls-insecure-skip-verify]
      [-header 'Name: value']... [-header-env 'Name=VAR']...
  llmesh node deregister -id ID [-service llm]
  llmesh node list [-service llm]

Consul is found as its own clients find it: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY.`

// Run runs the command with args (without the program name); flags not
// given read the shared variables from the process environment.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := run(ctx, args, stdout, stderr, os.LookupEnv)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	return err
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if len(args) < 2 || args[0] != "node" {
		fmt.Fprintln(stderr, usage)
		return errors.New("unknown command")
	}
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		return fmt.Errorf("consul client: %w", err)
	}
	switch args[1] {
	case "register":
		return register(ctx, client, args[2:], stdout, stderr, lookup)
	case "deregister":
		return deregister(ctx, client, args[2:], stdout, stderr, lookup)
	case "list":
		return list(ctx, client, args[2:], stdout, stderr, lookup)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command node %s", args[1])
}

func register(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	var e nodesfile.Entry
	var service string
	fs := registerFlags(&e, &service, lookup, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := e.Node()
	if err != nil {
		return err
	}
	if err := consulnodes.RegisterExternal(ctx, c, service, n); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "registered %s (%s, %s) as Consul node %s\n", n.GetId(), nodespec.KindOf(n), n.GetBaseUrl(), consulnodes.ExternalNodeName(n.GetId()))
	return nil
}

// headerFlag parses one -header ('Name: value' or 'Name=value') or
// -header-env ('Name=VAR') into headers.
func headerFlag(headers map[string]nodesfile.HeaderValue, fromEnv bool) func(string) error {
	return func(v string) error {
		i := strings.IndexAny(v, ":=")
		if i <= 0 {
			if fromEnv {
				return errors.New("want Name=VAR")
			}
			return errors.New("want 'Name: value'")
		}
		name, val := strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1:])
		if _, dup := headers[name]; dup {
			return fmt.Errorf("header %s given twice", name)
		}
		if fromEnv {
			headers[name] = nodesfile.HeaderValue{Env: val}
		} else {
			headers[name] = nodesfile.HeaderValue{Value: val}
		}
		return nil
	}
}

func deregister(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	var id, service string
	if err := deregisterFlags(&id, &service, lookup, stderr).Parse(args); err != nil {
		return err
	}
	if id == "" {
		return errors.New("-id is required")
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	node, _, err := c.Catalog().Node(consulnodes.ExternalNodeName(id), q)
	if err != nil {
		return fmt.Errorf("look up node %s: %w", id, err)
	}
	if node == nil || node.Node == nil || node.Node.Meta["external-node"] != "true" {
		// Not one `llmesh node register` made: say where it is, if anywhere.
		svcs, _, err := c.Catalog().Service(service, "", q)
		if err != nil {
			return fmt.Errorf("look up node %s: %w", id, err)
		}
		for _, s := range svcs {
			if s.ServiceID == id {
				return fmt.Errorf("node %s is registered by the Consul agent on %s, not by llmesh node register: remove it on that agent (consul services deregister -id %s)", id, s.Node, id)
			}
		}
		return fmt.Errorf("no node %s in Consul: nothing deregistered", id)
	}
	if err := consulnodes.DeregisterExternal(ctx, c, id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deregistered %s\n", id)
	return nil
}

func list(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	var service string
	if err := listFlags(&service, lookup, stderr).Parse(args); err != nil {
		return err
	}
	entries, _, err := c.Health().Service(service, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	nodes, invalid := consulnodes.FromEntries(entries)
	status := map[string]string{}
	for _, e := range entries {
		for _, chk := range e.Checks {
			if chk.CheckID == consulnodes.CheckID(e.Service.ID) {
				status[e.Service.ID] = chk.Status + ": " + chk.Output
			}
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tURL\tLLMESH CHECK")
	for _, n := range nodes {
		st := status[n.GetId()]
		if st == "" {
			st = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.GetId(), nodespec.KindOf(n), n.GetBaseUrl(), st)
	}
	for _, bad := range invalid {
		fmt.Fprintf(tw, "%s\t-\t-\tinvalid: %s\n", bad.ID, bad.Reason)
	}
	return tw.Flush()
}

// int32Flag reads a flag's value into p.
func int32Flag(p *int32) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return errors.New("want a whole number")
		}
		*p = int32(n)
		return nil
	}
}
