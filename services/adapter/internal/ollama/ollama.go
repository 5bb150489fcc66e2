// Package ollama knows Ollama's native API: probing (GET /api/version,
// /api/tags for the models on disk, /api/ps for the models in memory) and
// forwarding the requests of the router's Ollama edge (/api/chat,
// /api/generate, /api/embed, /api/embeddings, /api/show) to an Ollama node
// as they came, relaying the NDJSON answer object by object. OpenAI-shaped
// chat and embeddings go through Ollama's /v1 API (package openaicompat).
package ollama

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxAnswer bounds a native answer (a tags list of thousands of models is
// well below it).
const maxAnswer = 16 << 20

// Client talks to one Ollama node's native API.
type Client struct {
	conn *nodeconn.Client
}

// New returns a client for the node behind conn.
func New(conn *nodeconn.Client) *Client { return &Client{conn: conn} }

// TagModel is one entry of GET /api/tags.
type TagModel struct {
	Name       string    `json:"name"`
	Model      string    `json:"model"`
	ModifiedAt time.Time `json:"modified_at"`
	Size       int64     `json:"size"`
	Digest     string    `json:"digest"`
	Details    Details   `json:"details"`
}

// Details is a model's details in /api/tags and /api/ps.
type Details struct {
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

// PSModel is one entry of GET /api/ps.
type PSModel struct {
	Name  string `json:"name"`
	Model string `json:"model"`
	// Size is the memory the loaded model takes (weights, KV cache and
	// graph), not its size on disk.
	Size      int64     `json:"size"`
	SizeVRAM  int64     `json:"size_vram"`
	ExpiresAt time.Time `json:"expires_at"`
	// ContextLength is the context window the model was loaded with
	// (newer Ollama versions; 0 from older ones).
	ContextLength int32 `json:"context_length"`
}

// Version is GET /api/version.
func (c *Client) Version(ctx context.Context) (string, error) {
	var out struct {
		Version string `json:"version"`
	}
	if err := c.get(ctx, "/api/version", &out); err != nil {
		return "", err
	}
	return out.Version, nil
}

// Tags is GET /api/tags: the models the node has.
func (c *Client) Tags(ctx context.Context) ([]TagModel, error) {
	var out struct {
		Models []TagModel `json:"models"`
	}
	if err := c.get(ctx, "/api/tags", &out); err != nil {
		return nil, err
	}
	return out.Models, nil
}

// PS is GET /api/ps: the models loaded in memory.
func (c *Client) PS(ctx context.Context) ([]PSModel, error) {
	var out struct {
		Models []PSModel `json:"models"`
	}
	if err := c.get(ctx, "/api/ps", &out); err != nil {
		return nil, err
	}
	return out.Models, nil
}

// Failure is the request that showed a node is not up: its path (below
// the base URL) and error.
type Failure struct {
	Path string
	Err  error
}

// Probe checks the node the Ollama way. The node is up when /api/tags
// answers; /api/version only names the version, and a failing /api/ps
// only leaves every model loaded=false (the reason says so). Each model's
// type comes from /api/show's capabilities, remembered in types by digest
// (nil: from its family only). For a node that is not up it also returns
// the Failure, for the caller to judge (the result then holds only the
// version, when known). Latency and probe time are the caller's to fill.
func (c *Client) Probe(ctx context.Context, types *TypeCache) (*nodev1.ProbeResult, *Failure) {
	res := &nodev1.ProbeResult{}
	version, err := c.Version(ctx)
	if err != nil && !answered(err) {
		return res, &Failure{Path: "/api/version", Err: err}
	}
	res.Version = version // empty when /api/version failed with an HTTP status

	tags, err := c.Tags(ctx)
	if err != nil {
		return res, &Failure{Path: "/api/tags", Err: err}
	}
	res.Up = true
	prefix := "ollama"
	if version != "" {
		prefix += " " + version
	}

	ps, psErr := c.PS(ctx)
	loaded := map[string]PSModel{}
	for _, m := range ps {
		loaded[m.Name], loaded[m.Model] = m, m
	}
	nLoaded := 0
	mtypes := c.modelTypes(ctx, tags, types)
	for i, t := range tags {
		id := t.Name
		if id == "" {
			id = t.Model
		}
		mi := &nodev1.ModelInfo{
			Id:        id,
			SizeBytes: t.Size,
			OwnedBy:   owner(id),
			Aliases:   aliases(id),
			Type:      mtypes[i],
			Digest:    t.Digest,
			Family:    t.Details.Family,
			Families:  t.Details.Families,

			Format:            t.Details.Format,
			ParameterSize:     t.Details.ParameterSize,
			QuantizationLevel: t.Details.QuantizationLevel,
		}
		p, ok := loaded[t.Name]
		if !ok {
			p, ok = loaded[t.Model]
		}
		if ok {
			mi.Loaded, mi.SizeVram, mi.ContextLength, mi.LoadedSizeBytes = true, p.SizeVRAM, p.ContextLength, p.Size
			if !p.ExpiresAt.IsZero() {
				mi.ExpiresAt = timestamppb.New(p.ExpiresAt)
			}
		}
		if !t.ModifiedAt.IsZero() {
			mi.Created = t.ModifiedAt.Unix()
		}
		if mi.Loaded {
			nLoaded++
		}
		res.Models = append(res.Models, mi)
	}
	switch {
	case psErr != nil:
		res.Reason = fmt.Sprintf("%s: %s, loaded unknown (%s)", prefix, plural(len(tags), "model"),
			nodeconn.Describe(http.MethodGet, c.path("/api/ps"), psErr))
	case len(tags) == 0:
		res.Reason = fmt.Sprintf("%s: 0 models", prefix)
	default:
		res.Reason = fmt.Sprintf("%s: %s, %d loaded", prefix, plural(len(tags), "model"), nLoaded)
	}
	return res, nil
}

func (c *Client) path(p string) string { return c.conn.BasePath() + p }

func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := c.conn.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.conn.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return c.conn.BodyError(ctx, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return apierror.BadAnswer(c.conn.NodeID(), "invalid answer: %w", err)
	}
	return nil
}

// answered reports whether err is an HTTP answer from the node (as
// opposed to no answer at all).
func answered(err error) bool {
	e, ok := apierror.FromError(err)
	return ok && e.HTTPStatus != 0
}

// owner is the namespace of an Ollama model name, as Ollama's /v1/models
// reports it: "library" for "llama3:8b", "jmorgan" for "jmorgan/llama3".
func owner(name string) string {
	parts := strings.Split(name, "/") // the tag is in the last part
	if len(parts) < 2 {
		return "library"
	}
	return parts[len(parts)-2]
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// aliases are the other names Ollama accepts for a model: "llama3.2" means
// "llama3.2:latest".
func aliases(name string) []string {
	if base, ok := strings.CutSuffix(name, ":latest"); ok && base != "" {
		return []string{base}
	}
	return nil
}
