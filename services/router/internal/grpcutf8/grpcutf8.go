// Package grpcutf8 makes the router's gRPC server refuse a request whose
// strings are not UTF-8 with INVALID_ARGUMENT naming the field.
//
// proto3 strings must be UTF-8, and grpc-go's proto codec refuses a
// message that breaks this, but grpc-go reports every failure to decode a
// request as INTERNAL ("grpc: error unmarshalling request: ..."), before
// any interceptor runs: a client's mistake would look like a server fault
// (and a REST client of the same mesh gets 400 for the same mistake). So
// the server's codec, when a message fails to decode because of such a
// string, decodes it as empty with a mark saying which field it was, and
// the interceptors turn a marked request into the error.
package grpcutf8

import (
	"bytes"
	"context"
	"crypto/rand"
	"strconv"
	"unicode/utf8"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ServerOptions install the codec and the interceptors on a server. The
// interceptors come after any given before them (grpcserver's status
// conversion stays outermost).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(codec{base: encoding.GetCodecV2(protocodec.Name)}),
		grpc.ChainUnaryInterceptor(unary),
		grpc.ChainStreamInterceptor(stream),
	}
}

// markField is the unknown field that carries the mark: the largest field
// number, holding nonce followed by the field's path. The nonce, new in
// each process, keeps a client from forging a mark.
const markField = protowire.MaxValidNumber

var nonce = rand.Text()

// codec is grpc-go's proto codec, except for messages that fail to decode
// because of a string that is not UTF-8: those decode as empty and marked.
type codec struct{ base encoding.CodecV2 }

func (c codec) Name() string { return c.base.Name() }

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	path, found := badString(data.Materialize(), m.ProtoReflect().Descriptor(), 0)
	if !found {
		return err
	}
	proto.Reset(m)
	mark := protowire.AppendTag(nil, markField, protowire.BytesType)
	mark = protowire.AppendBytes(mark, []byte(nonce+path))
	m.ProtoReflect().SetUnknown(mark)
	return nil
}

// maxDepth bounds the walk; deeper messages are reported as grpc-go
// reports them.
const maxDepth = 100

// badString finds the first string field in the wire form b of a message
// of type md whose value is not UTF-8 and returns its path
// ("request.messages[1].content.text").
func badString(b []byte, md protoreflect.MessageDescriptor, depth int) (string, bool) {
	if depth > maxDepth {
		return "", false
	}
	var seen map[protowire.Number]int // elements of repeated fields so far
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil {
			continue
		}
		name := string(fd.Name())
		if fd.IsList() {
			if seen == nil {
				seen = map[protowire.Number]int{}
			}
			name += "[" + strconv.Itoa(seen[num]) + "]"
			seen[num]++
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return name, true
			}
		case protoreflect.MessageKind:
			if p, ok := badString(v, fd.Message(), depth+1); ok {
				return name + "." + p, true
			}
		}
	}
	return "", false
}

// marked reports the path a marked request's codec found.
func marked(req any) (string, bool) {
	m, ok := req.(proto.Message)
	if !ok {
		return "", false
	}
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 {
		return "", false
	}
	num, typ, n := protowire.ConsumeTag(u)
	if n < 0 || num != markField || typ != protowire.BytesType {
		return "", false
	}
	v, n := protowire.ConsumeBytes(u[n:])
	if n < 0 || !bytes.HasPrefix(v, []byte(nonce)) {
		return "", false
	}
	return string(v[len(nonce):]), true
}

// notUTF8 refuses a request whose string at path is not UTF-8.
func notUTF8(path string) error {
	return apierror.Invalid(path, "%s: string is not valid UTF-8; proto3 strings must be UTF-8", path)
}

func unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if path, bad := marked(req); bad {
		return nil, notUTF8(path)
	}
	return h(ctx, req)
}

func stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, checked{ss})
}

// checked refuses marked messages as they are received.
type checked struct{ grpc.ServerStream }

func (s checked) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if path, bad := marked(m); bad {
		return notUTF8(path)
	}
	return nil
}
