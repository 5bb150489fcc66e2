package openaijson

import (
	"errors"
	"strings"
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
)

// TestSchemasKeepTheirText checks that a response_format schema and tool
// parameters survive decode → encode with their key order, numbers and
// escapes as the client wrote them (whitespace outside strings dropped):
// a model writes structured output in the order of the schema's properties.
func TestSchemasKeepTheirText(t *testing.T) {
	tests := []struct {
		name   string
		schema string // as sent, possibly spaced out
		want   string // as stored and forwarded
	}{
		{
			name:   "properties not sorted",
			schema: `{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"boolean"}},"required":["zeta","alpha"]}`,
			want:   `{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"boolean"}},"required":["zeta","alpha"]}`,
		},
		{
			name: "reasoning before answer, spaced out",
			schema: `{
				"properties": { "reasoning": {"type": "string", "description": "think  first"},
				                "answer":    {"type": "string"} },
				"type": "object", "additionalProperties": false }`,
			want: `{"properties":{"reasoning":{"type":"string","description":"think  first"},"answer":{"type":"string"}},"type":"object","additionalProperties":false}`,
		},
		{
			name:   "numbers as written",
			schema: `{"minimum":1.50,"maximum":1E21,"multipleOf":0.1e-1,"huge":1e999,"big":12345678901234567890123}`,
			want:   `{"minimum":1.50,"maximum":1E21,"multipleOf":0.1e-1,"huge":1e999,"big":12345678901234567890123}`,
		},
		{
			name:   "escapes kept, duplicate keys kept",
			schema: `{"description":"a \"q\" \\ \u00e9 \ud83d\ude00 \/ tab\t","b":1,"b":2}`,
			want:   `{"description":"a \"q\" \\ \u00e9 \ud83d\ude00 \/ tab\t","b":1,"b":2}`,
		},
		{name: "empty object", schema: `{ }`, want: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"model":"m","response_format":{"type":"json_schema","json_schema":{"name":"s","schema":` + tt.schema +
				`}},"tools":[{"type":"function","function":{"name":"f","parameters":` + tt.schema + `}}]}`
			var m openaiv1.ChatCompletionRequest
			if err := Unmarshal([]byte(body), &m); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if got := m.GetResponseFormat().GetJsonSchema().GetSchemaJson(); got != tt.want {
				t.Errorf("schema_json = %s\nwant          %s", got, tt.want)
			}
			if got := m.GetTools()[0].GetFunction().GetParametersJson(); got != tt.want {
				t.Errorf("parameters_json = %s\nwant              %s", got, tt.want)
			}
			out, err := Marshal(&m)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			wantOut := `{"model":"m","response_format":{"type":"json_schema","json_schema":{"name":"s","schema":` + tt.want +
				`}},"tools":[{"type":"function","function":{"name":"f","parameters":` + tt.want + `}}]}`
			if string(out) != wantOut {
				t.Errorf("Marshal =\n%s\nwant\n%s", out, wantOut)
			}
		})
	}
}

func TestJSONObject(t *testing.T) {
	tests := []struct {
		in, want, errPart string
	}{
		{in: ` {"b": [1, 2.0], "a": {"c": null}} `, want: `{"b":[1,2.0],"a":{"c":null}}`},
		{in: `{}`, want: `{}`},
		{in: ``, errPart: "unexpected end of JSON input"},
		{in: `[]`, errPart: "expected an object, got array"},
		{in: `"{}"`, errPart: "expected an object, got string"},
		{in: `null`, errPart: "expected an object, got null"},
		{in: `{"a":1,}`, errPart: "invalid JSON"},
		{in: `{"a":1} {}`, errPart: "after top-level value"},
		{in: `{"a":01}`, errPart: "invalid JSON"},
		{in: `{"a":"x` + "\n" + `"}`, errPart: "invalid control character"},
	}
	for _, tt := range tests {
		got, err := JSONObject([]byte(tt.in))
		switch {
		case tt.errPart == "" && err != nil:
			t.Errorf("JSONObject(%q) error: %v", tt.in, err)
		case tt.errPart == "" && got != tt.want:
			t.Errorf("JSONObject(%q) = %s, want %s", tt.in, got, tt.want)
		case tt.errPart != "":
			var de *DecodeError
			if err == nil || !errors.As(err, &de) || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("JSONObject(%q) = %q, %v; want a DecodeError containing %q", tt.in, got, err, tt.errPart)
			}
		}
	}
}
