package openaijson

import (
	"errors"
	"strings"
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

func textContent(s string) *openaiv1.MessageContent {
	return &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: s}}
}

func partsContent(parts ...*openaiv1.ContentPart) *openaiv1.MessageContent {
	return &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Parts{Parts: &openaiv1.ContentParts{Parts: parts}}}
}

// assertProtoEqual fails with both messages in text form when they differ.
func assertProtoEqual(t testing.TB, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("messages differ\n got: %s\nwant: %s", prototext.Format(got), prototext.Format(want))
	}
}

// assertDecodeError checks that err is a *DecodeError with the given Param
// and a Msg containing msgPart.
func assertDecodeError(t testing.TB, err error, param, msgPart string) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want *DecodeError", err, err)
	}
	if de.Param != param {
		t.Errorf("Param = %q, want %q (Msg %q)", de.Param, param, de.Msg)
	}
	if msgPart != "" && !strings.Contains(de.Msg, msgPart) {
		t.Errorf("Msg = %q, want it to contain %q", de.Msg, msgPart)
	}
}

// assertMarshal checks the exact bytes Marshal produces.
func assertMarshal(t testing.TB, m proto.Message, want string) {
	t.Helper()
	got, err := Marshal(m)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if string(got) != want {
		t.Errorf("Marshal mismatch\n got: %s\nwant: %s", got, want)
	}
}
