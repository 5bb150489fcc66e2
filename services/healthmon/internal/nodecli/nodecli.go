// Package nodecli is the `llmesh node` command: it puts LLM nodes that run
// no Consul agent (a box with just Ollama on a LAN address) into Consul's
// catalog, lists them and takes them out again. healthmon, watching
// Consul, probes a registered node and starts routing to it once a probe
// succeeds.
package nodecli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/healthmon/internal/nodesfile"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
)

const usage = `usage:
  llmesh node register -id ID -url URL -kind KIND [-api-key-env VAR] [-tls-server-name NAME] [-service llm]
  llmesh node deregister -id ID
  llmesh node list [-service llm]

Consul is found as its own clients find it: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY.`

// Run runs the command with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
		return register(client, args[2:], stdout, stderr)
	case "deregister":
		return deregister(client, args[2:], stdout, stderr)
	case "list":
		return list(ctx, client, args[2:], stdout, stderr)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command node %s", args[1])
}

func register(c *api.Client, args []string, stdout, stderr io.Writer) error {
	var e nodesfile.Entry
	fs := flag.NewFlagSet("llmesh node register", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.ID, "id", "", "node id, unique in the mesh (e.g. gpu-1)")
	fs.StringVar(&e.URL, "url", "", "node URL (e.g. http://10.0.0.5:11434; for kind openai the API base with /v1)")
	fs.StringVar(&e.Kind, "kind", "", "ollama, openai, vllm, llamacpp, lmstudio or anthropic")
	fs.StringVar(&e.APIKeyEnv, "api-key-env", "", "the adapter's environment variable holding the node's API key")
	fs.StringVar(&e.TLSServerName, "tls-server-name", "", "TLS server name override")
	service := fs.String("service", consulnodes.DefaultService, "Consul service name of LLM nodes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := e.Node()
	if err != nil {
		return err
	}
	if err := consulnodes.RegisterExternal(c, *service, n); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "registered %s (%s, %s) as Consul node %s\n", n.GetId(), e.Kind, n.GetBaseUrl(), consulnodes.ExternalNodeName(n.GetId()))
	return nil
}

func deregister(c *api.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("llmesh node deregister", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "node id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("-id is required")
	}
	if err := consulnodes.DeregisterExternal(c, *id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deregistered %s\n", *id)
	return nil
}

func list(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("llmesh node list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", consulnodes.DefaultService, "Consul service name of LLM nodes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	entries, _, err := c.Health().Service(*service, "", false, (&api.QueryOptions{}).WithContext(ctx))
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.GetId(), consulnodes.KindName(n.GetKind()), n.GetBaseUrl(), st)
	}
	for _, bad := range invalid {
		fmt.Fprintf(tw, "%s\t-\t-\tinvalid: %s\n", bad.ID, bad.Reason)
	}
	return tw.Flush()
}
