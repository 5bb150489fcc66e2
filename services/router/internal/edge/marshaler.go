package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// marshaler is the grpc-gateway Marshaler of the REST edge: OpenAI JSON for
// bodies and answers, and server-sent events for the streaming RPC (each
// chunk is "data: <json>" and the delimiter is the blank line).
type marshaler struct {
	errors *errorWriter
}

var (
	_ runtime.Marshaler         = marshaler{}
	_ runtime.Delimited         = marshaler{}
	_ runtime.StreamContentType = marshaler{}
)

var dataPrefix = []byte("data: ")

// Marshal encodes an answer. grpc-gateway hands stream chunks over as
// {"result": msg} and a stream's failure as {"error": status}; both become
// one SSE event.
func (m marshaler) Marshal(v any) ([]byte, error) {
	switch x := v.(type) {
	case map[string]any:
		msg, ok := x["result"].(proto.Message)
		if !ok {
			return nil, fmt.Errorf("edge: unexpected stream value %T", x["result"])
		}
		b, err := openaijson.Marshal(msg)
		if err != nil {
			return nil, err
		}
		return append(append(make([]byte, 0, len(dataPrefix)+len(b)), dataPrefix...), b...), nil
	case map[string]proto.Message:
		st, ok := x["error"].(*spb.Status)
		if !ok {
			return nil, fmt.Errorf("edge: unexpected stream error %T", x["error"])
		}
		// grpc-gateway's Marshal has no request context: this log line has no trace id.
		_, body := m.errors.body(context.Background(), status.FromProto(st).Err())
		return append(append([]byte{}, dataPrefix...), body...), nil
	case proto.Message:
		return openaijson.Marshal(x)
	}
	return nil, fmt.Errorf("edge: cannot marshal %T", v)
}

// Unmarshal decodes a request body into v, which grpc-gateway passes as a
// pointer to the body field (a **T for `body: request`).
func (marshaler) Unmarshal(data []byte, v any) error {
	msg, err := target(v)
	if err != nil {
		return err
	}
	return openaijson.Unmarshal(data, msg)
}

// target finds (allocating when nil) the proto message v points at.
func target(v any) (proto.Message, error) {
	if msg, ok := v.(proto.Message); ok {
		return msg, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Pointer {
		if rv.Elem().IsNil() {
			rv.Elem().Set(reflect.New(rv.Elem().Type().Elem()))
		}
		if msg, ok := rv.Elem().Interface().(proto.Message); ok {
			return msg, nil
		}
	}
	return nil, fmt.Errorf("edge: cannot decode into %T", v)
}

// NewDecoder decodes a request body. grpc-gateway turns a decode error
// into a bare status, losing the field it names, so a *DecodeError is also
// kept on the body (see requestBody) for the error handler.
func (m marshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF
		}
		err = m.Unmarshal(data, v)
		var de *openaijson.DecodeError
		if rb, ok := r.(*requestBody); ok && errors.As(err, &de) {
			rb.decodeErr = de
		}
		return err
	})
}

// requestBody is the body of a POST the edge read in advance. It carries
// the body's decode error from the decoder to the error handler.
type requestBody struct {
	*bytes.Reader
	decodeErr *openaijson.DecodeError
}

func (*requestBody) Close() error { return nil }

func (m marshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

func (marshaler) ContentType(any) string       { return "application/json" }
func (marshaler) StreamContentType(any) string { return "text/event-stream" }
func (marshaler) Delimiter() []byte            { return []byte("\n\n") }
