package simnode

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
)

type embedRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"` // "float" (default) or "base64"
}

type embeddingData struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

type embedUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// Embedding returns the vector simnode answers for text embedded with
// model: FNV-1a 64 of model, a zero byte and text seeds a math/rand/v2 PCG
// (both PCG seeds are the hash); dims floats are drawn uniformly from
// [-1,1) and the vector is L2-normalised. Exported so tests elsewhere can
// compute expected embeddings. Token-array inputs are embedded as their
// decimal ids joined by single spaces.
func Embedding(model, text string, dims int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(model))
	h.Write([]byte{0}) // keeps ("ab","c") and ("a","bc") apart
	h.Write([]byte(text))
	seed := h.Sum64()
	rng := rand.New(rand.NewPCG(seed, seed))

	v := make([]float64, dims)
	var sumSq float64
	for i := range v {
		v[i] = rng.Float64()*2 - 1
		sumSq += v[i] * v[i]
	}
	norm := math.Sqrt(sumSq)
	if norm == 0 {
		norm = 1 // only for dims == 0; avoids NaN
	}
	out := make([]float32, dims)
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}

// embedInput is one input to embed with its token count.
type embedInput struct {
	text   string
	tokens int
}

// parseInput accepts the four shapes OpenAI allows for "input":
// string, []string, []int (one token array) and [][]int.
func parseInput(raw json.RawMessage) ([]embedInput, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("invalid input: 'input' is required")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []embedInput{textInput(one)}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		if len(many) == 0 {
			return nil, errors.New("invalid input: 'input' must not be empty")
		}
		in := make([]embedInput, len(many))
		for i, s := range many {
			in[i] = textInput(s)
		}
		return in, nil
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil {
		if len(ids) == 0 {
			return nil, errors.New("invalid input: 'input' must not be empty")
		}
		return []embedInput{tokenInput(ids)}, nil
	}
	var idLists [][]int
	if json.Unmarshal(raw, &idLists) == nil && len(idLists) > 0 {
		in := make([]embedInput, len(idLists))
		for i, ids := range idLists {
			if len(ids) == 0 {
				return nil, errors.New("invalid input: token arrays must not be empty")
			}
			in[i] = tokenInput(ids)
		}
		return in, nil
	}
	return nil, errors.New("invalid input: must be a string, an array of strings, an array of token ids, or an array of token id arrays")
}

func textInput(s string) embedInput {
	return embedInput{text: s, tokens: max(len(strings.Fields(s)), 1)}
}

func tokenInput(ids []int) embedInput {
	words := make([]string, len(ids))
	for i, id := range ids {
		words[i] = strconv.Itoa(id)
	}
	return embedInput{text: strings.Join(words, " "), tokens: len(ids)}
}

// base64Floats encodes v as OpenAI does for encoding_format "base64":
// little-endian float32s.
func base64Floats(v []float32) string {
	buf := make([]byte, 0, 4*len(v))
	for _, f := range v {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(buf)
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	s.serveInference(w, r, func(c *call, body []byte) {
		var req embedRequest
		if err := json.Unmarshal(body, &req); err != nil {
			badRequest(w, err.Error())
			return
		}
		if !s.checkModel(w, req.Model) {
			return
		}
		inputs, err := parseInput(req.Input)
		if err != nil {
			badRequest(w, err.Error())
			return
		}
		if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
			badRequest(w, "invalid encoding_format: must be \"float\" or \"base64\"")
			return
		}
		// An embedding is one forward pass: it costs the first-token delay.
		if c.sleep(s.cfg.FirstTokenDelay) != nil {
			return
		}
		if c.faults.FailAfterTokens > 0 {
			abortConn(w) // crash mid-request: never answer
			return
		}

		data := make([]embeddingData, len(inputs))
		tokens := 0
		for i, in := range inputs {
			vec := Embedding(req.Model, in.text, s.cfg.EmbeddingDims)
			data[i] = embeddingData{Object: "embedding", Index: i, Embedding: vec}
			if req.EncodingFormat == "base64" {
				data[i].Embedding = base64Floats(vec)
			}
			tokens += in.tokens
		}
		writeJSON(w, http.StatusOK, struct {
			Object string          `json:"object"`
			Data   []embeddingData `json:"data"`
			Model  string          `json:"model"`
			Usage  embedUsage      `json:"usage"`
		}{"list", data, req.Model, embedUsage{tokens, tokens}})
	})
}
