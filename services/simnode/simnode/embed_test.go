package simnode

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"testing"
)

// The golden vector pins the documented algorithm: if it changes, every
// recorded expectation in other modules' tests changes with it.
func TestEmbeddingGolden(t *testing.T) {
	_, ts := startNode(t, Config{EmbeddingDims: 4})
	resp, body := post(t, ts.URL+"/v1/embeddings", `{"model":"llama3.2:3b","input":"hello world"}`)
	checkStatus(t, resp, body, http.StatusOK)
	want := `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[-0.1568107,0.37907946,-0.41345325,-0.81287485]}],` +
		`"model":"llama3.2:3b","usage":{"prompt_tokens":2,"total_tokens":2}}`
	if body != want {
		t.Errorf("body\n got %s\nwant %s", body, want)
	}
}

func TestEmbeddingProperties(t *testing.T) {
	a := Embedding("m1", "some text", 16)
	if len(a) != 16 {
		t.Fatalf("len = %d, want 16", len(a))
	}
	var sumSq float64
	for _, x := range a {
		if x < -1 || x > 1 {
			t.Errorf("component %v outside [-1,1]", x)
		}
		sumSq += float64(x) * float64(x)
	}
	if math.Abs(math.Sqrt(sumSq)-1) > 1e-6 {
		t.Errorf("norm = %v, want 1", math.Sqrt(sumSq))
	}
	if !slices.Equal(a, Embedding("m1", "some text", 16)) {
		t.Error("same model and text gave different vectors")
	}
	for name, b := range map[string][]float32{
		"other text":  Embedding("m1", "some text!", 16),
		"other model": Embedding("m2", "some text", 16),
		"shifted key": Embedding("m1s", "ome text", 16),
	} {
		if slices.Equal(a, b) {
			t.Errorf("%s gave the same vector", name)
		}
	}
}

func TestEmbeddingInputShapes(t *testing.T) {
	const dims = 6
	tests := []struct {
		name   string
		input  string
		texts  []string // what each input is embedded as
		tokens int
	}{
		{"string", `"the quick fox"`, []string{"the quick fox"}, 3},
		{"empty string counts one token", `""`, []string{""}, 1},
		{"array of strings", `["a b","c"]`, []string{"a b", "c"}, 3},
		{"token ids", `[101,7,2023]`, []string{"101 7 2023"}, 3},
		{"arrays of token ids", `[[1,2],[3]]`, []string{"1 2", "3"}, 3},
	}
	_, ts := startNode(t, Config{EmbeddingDims: dims})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+"/v1/embeddings",
				`{"model":"`+testModel+`","input":`+tt.input+`,"user":"ignored"}`)
			checkStatus(t, resp, body, http.StatusOK)
			var got struct {
				Object string
				Model  string
				Data   []struct {
					Object    string
					Index     int
					Embedding []float32
				}
				Usage struct {
					PromptTokens int `json:"prompt_tokens"`
					TotalTokens  int `json:"total_tokens"`
				}
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if got.Object != "list" || got.Model != testModel || len(got.Data) != len(tt.texts) {
				t.Fatalf("body %s: want a list of %d for %s", body, len(tt.texts), testModel)
			}
			for i, d := range got.Data {
				if d.Object != "embedding" || d.Index != i {
					t.Errorf("data[%d] = object %q index %d", i, d.Object, d.Index)
				}
				if want := Embedding(testModel, tt.texts[i], dims); !slices.Equal(d.Embedding, want) {
					t.Errorf("data[%d] = %v, want Embedding(%q) = %v", i, d.Embedding, tt.texts[i], want)
				}
			}
			if got.Usage.PromptTokens != tt.tokens || got.Usage.TotalTokens != tt.tokens {
				t.Errorf("usage = %+v, want %d tokens", got.Usage, tt.tokens)
			}
		})
	}
}

func TestEmbeddingBase64(t *testing.T) {
	_, ts := startNode(t, Config{})
	resp, body := post(t, ts.URL+"/v1/embeddings", `{"model":"`+testModel+`","input":"x","encoding_format":"base64"}`)
	checkStatus(t, resp, body, http.StatusOK)
	var got struct{ Data []struct{ Embedding string } }
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Data) != 1 {
		t.Fatalf("body %s: %v", body, err)
	}
	raw, err := base64.StdEncoding.DecodeString(got.Data[0].Embedding)
	if err != nil {
		t.Fatal(err)
	}
	vec := make([]float32, len(raw)/4)
	for i := range vec {
		vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	if want := Embedding(testModel, "x", DefaultEmbeddingDims); !slices.Equal(vec, want) {
		t.Errorf("decoded %v, want %v", vec, want)
	}
}

func TestEmbeddingErrors(t *testing.T) {
	_, ts := startNode(t, Config{})
	m := `"model":"` + testModel + `"`
	tests := []struct {
		name, body string
		status     int
	}{
		{"bad JSON", `{`, 400},
		{"missing model", `{"input":"x"}`, 400},
		{"unknown model", `{"model":"nope","input":"x"}`, 404},
		{"missing input", `{` + m + `}`, 400},
		{"null input", `{` + m + `,"input":null}`, 400},
		{"empty array", `{` + m + `,"input":[]}`, 400},
		{"empty token array", `{` + m + `,"input":[[]]}`, 400},
		{"mixed array", `{` + m + `,"input":["a",1]}`, 400},
		{"object input", `{` + m + `,"input":{"a":1}}`, 400},
		{"fractional token", `{` + m + `,"input":[1.5]}`, 400},
		{"bad encoding", `{` + m + `,"input":"x","encoding_format":"hex"}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+"/v1/embeddings", tt.body)
			checkStatus(t, resp, body, tt.status)
			var e struct {
				Error struct{ Message, Type string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Message == "" {
				t.Errorf("body %s is not an OpenAI error (%v)", body, err)
			}
		})
	}
	_, body := post(t, ts.URL+"/v1/embeddings", `{"model":"nope","input":"x"}`)
	if want := openAIErr(`model "nope" not found, try pulling it first`, "api_error"); body != want {
		t.Errorf("unknown model body = %s, want %s", body, want)
	}
}
