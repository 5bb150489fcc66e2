package openaijson

import "testing"

func TestMarshalError(t *testing.T) {
	tests := []struct {
		name string
		in   ErrorObject
		want string
	}{
		{
			name: "null param and code",
			in:   ErrorObject{Message: "messages[0].content: expected a string", Type: "invalid_request_error"},
			want: `{"error":{"message":"messages[0].content: expected a string","type":"invalid_request_error","param":null,"code":null}}`,
		},
		{
			name: "param and code",
			in:   ErrorObject{Message: `The model "x" does not exist`, Type: "invalid_request_error", Param: "model", Code: "model_not_found"},
			want: `{"error":{"message":"The model \"x\" does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(MarshalError(tt.in)); got != tt.want {
				t.Errorf("MarshalError\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestUnmarshalError(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ErrorObject
		ok   bool
	}{
		{
			name: "OpenAI",
			in:   `{"error":{"message":"Invalid value","type":"invalid_request_error","param":"messages","code":null}}`,
			want: ErrorObject{Message: "Invalid value", Type: "invalid_request_error", Param: "messages"},
			ok:   true,
		},
		{
			name: "OpenAI with code",
			in:   `{"error":{"message":"m","type":"t","param":null,"code":"model_not_found"}}`,
			want: ErrorObject{Message: "m", Type: "t", Code: "model_not_found"},
			ok:   true,
		},
		{
			name: "Ollama native",
			in:   `{"error":"model 'x' not found"}`,
			want: ErrorObject{Message: "model 'x' not found"},
			ok:   true,
		},
		{
			name: "llama.cpp numeric code",
			in:   `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`,
			want: ErrorObject{Message: "Loading model", Type: "unavailable_error", Code: "503"},
			ok:   true,
		},
		{
			name: "odd member types are ignored",
			in:   `{"error":{"message":"m","type":["x"],"param":{"a":1},"code":true,"extra":1},"status":500}`,
			want: ErrorObject{Message: "m"},
			ok:   true,
		},
		{name: "garbage", in: `<html>502 Bad Gateway</html>`},
		{name: "empty", in: ``},
		{name: "no error member", in: `{"detail":"Not Found"}`},
		{name: "error null", in: `{"error":null}`},
		{name: "error number", in: `{"error":5}`},
		{name: "truncated", in: `{"error":{"message":"m"`},
		{name: "trailing garbage", in: `{"error":"x"} y`},
		{name: "array", in: `[{"error":"x"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := UnmarshalError([]byte(tt.in))
			if ok != tt.ok || got != tt.want {
				t.Errorf("UnmarshalError = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestErrorRoundTrip(t *testing.T) {
	for _, e := range []ErrorObject{
		{Message: "m", Type: "t"},
		{Message: "line1\nline2 \"q\" é", Type: "server_error", Param: "p", Code: "c"},
	} {
		got, ok := UnmarshalError(MarshalError(e))
		if !ok || got != e {
			t.Errorf("round trip of %+v = %+v, %v", e, got, ok)
		}
	}
}
