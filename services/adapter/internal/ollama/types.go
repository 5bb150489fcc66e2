package ollama

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// embeddingFamilies are model architectures that only embed (BERT-style
// encoders: all-minilm, mxbai-embed-large, bge-m3, nomic-embed-text, …).
var embeddingFamilies = []string{"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "xlm-roberta", "roberta", "t5encoder"}

// FamilyType is what a model's family says of its type: EMBEDDING for an
// encoder-only family, else unknown (decoder families also make
// embedding models, e.g. qwen3-embedding).
func FamilyType(family string, families []string) nodev1.ModelType {
	for _, f := range append([]string{family}, families...) {
		if slices.Contains(embeddingFamilies, f) {
			return nodev1.ModelType_MODEL_TYPE_EMBEDDING
		}
	}
	return nodev1.ModelType_MODEL_TYPE_UNSPECIFIED
}

// CapabilitiesType is what /api/show's capabilities say: CHAT with
// "completion", EMBEDDING with "embedding" alone, else unknown (Ollama
// before 0.6 reports none).
func CapabilitiesType(caps []string) nodev1.ModelType {
	switch {
	case slices.Contains(caps, "completion"):
		return nodev1.ModelType_MODEL_TYPE_CHAT
	case slices.Contains(caps, "embedding"):
		return nodev1.ModelType_MODEL_TYPE_EMBEDDING
	}
	return nodev1.ModelType_MODEL_TYPE_UNSPECIFIED
}

// Capabilities is POST /api/show's capabilities list for model, e.g.
// ["completion","tools"] or ["embedding"].
func (c *Client) Capabilities(ctx context.Context, model string) ([]string, error) {
	body, _ := json.Marshal(map[string]string{"model": model})
	req, err := c.conn.NewRequest(ctx, http.MethodPost, "/api/show", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.conn.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Capabilities []string `json:"capabilities"`
	}
	// /api/show also carries the model's whole template and parameters;
	// only the bounded start is needed.
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&out); err != nil {
		return nil, apierror.BadAnswer(c.conn.NodeID(), "invalid answer: %w", err)
	}
	return out.Capabilities, nil
}

// TypeCache remembers each model's type by digest, so /api/show is asked
// once per model version rather than on every probe. It is safe for
// concurrent use.
type TypeCache struct {
	mu    sync.Mutex
	types map[string]nodev1.ModelType
}

// maxCachedTypes bounds the cache; when full it starts over.
const maxCachedTypes = 4096

// showsPerProbe bounds the /api/show calls of one probe; models beyond it
// take their family's type until a later probe asks.
const showsPerProbe = 4

func (tc *TypeCache) get(digest string) (nodev1.ModelType, bool) {
	if tc == nil || digest == "" {
		return 0, false
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	t, ok := tc.types[digest]
	return t, ok
}

func (tc *TypeCache) put(digest string, t nodev1.ModelType) {
	if tc == nil || digest == "" {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.types == nil || len(tc.types) >= maxCachedTypes {
		tc.types = map[string]nodev1.ModelType{}
	}
	tc.types[digest] = t
}

// modelTypes finds the type of each tag: from the cache, else from
// /api/show (a few per probe), else from its family. Failures of
// /api/show leave the family's guess and are asked again next probe.
func (c *Client) modelTypes(ctx context.Context, tags []TagModel, cache *TypeCache) []nodev1.ModelType {
	out := make([]nodev1.ModelType, len(tags))
	shows := 0
	for i, t := range tags {
		guess := FamilyType(t.Details.Family, t.Details.Families)
		if typ, ok := cache.get(t.Digest); ok {
			out[i] = typ
			continue
		}
		out[i] = guess
		if cache == nil || shows >= showsPerProbe {
			continue
		}
		shows++
		caps, err := c.Capabilities(ctx, t.Name)
		if err != nil {
			continue
		}
		if typ := CapabilitiesType(caps); typ != nodev1.ModelType_MODEL_TYPE_UNSPECIFIED {
			out[i] = typ
		}
		cache.put(t.Digest, out[i])
	}
	return out
}
