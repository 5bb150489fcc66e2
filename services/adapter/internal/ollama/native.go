package ollama

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/llmesh/llmesh/services/adapter/internal/hangwatch"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
)

// maxLine bounds one NDJSON object of a native answer (an /api/embed
// answer of a large batch is the biggest).
const maxLine = 256 << 20

// Paths of the native endpoints the adapter forwards.
const (
	PathChat       = "/api/chat"
	PathGenerate   = "/api/generate"
	PathEmbed      = "/api/embed"
	PathEmbeddings = "/api/embeddings"
	PathShow       = "/api/show"
)

// Native sends body, an Ollama API request, to path on the node and calls
// send with each JSON object of the answer as it arrives. For /api/chat
// and /api/generate the node is always asked for a stream (so a hung node
// is noticed within firstToken, when > 0); a request with "stream": false
// gets the stream folded into the one object Ollama would have sent. The
// final object always reports eval_count when tokens were produced. The
// other endpoints answer one object with no first token to wait for, so
// firstToken does not bound them here; the caller bounds the wait for
// their response (nodeconn.WithResponseTimeout).
func (c *Client) Native(ctx context.Context, path string, body []byte, firstToken, idle time.Duration, send func([]byte) error) error {
	streamed := path == PathChat || path == PathGenerate
	wantStream := true
	if streamed {
		var err error
		if body, wantStream, err = forceStream(body); err != nil {
			return apierror.Invalid("", "%w", err)
		}
	}
	var first time.Duration // only a streamed answer has a first token to wait for
	if streamed {
		first = firstToken
		if wantStream {
			// The router watches the silences of an answer it relays: a
			// slow client must not make the node look silent here.
			idle = 0
		}
	}
	wctx, watch, stop := hangwatch.Start(ctx, first, idle)
	defer stop()
	err := c.native(wctx, path, body, streamed, wantStream, watch, send)
	if err != nil {
		return hangwatch.NodeError(ctx, wctx, c.conn.NodeID(), firstToken, idle, err)
	}
	return nil
}

func (c *Client) native(ctx context.Context, path string, body []byte, streamed, wantStream bool, watch *hangwatch.Watch, send func([]byte) error) error {
	req, err := c.conn.NewRequest(ctx, http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.conn.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !streamed {
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxLine+1))
		if err != nil {
			return c.conn.BodyError(ctx, err)
		}
		if len(data) > maxLine {
			return c.tooLarge()
		}
		if err := c.objectError(data); err != nil {
			return err
		}
		return send(bytes.TrimSpace(data))
	}
	fold := &Fold{}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 0, 64<<10), maxLine)
	for lines.Scan() {
		watch.Arrived()
		line := bytes.TrimSpace(lines.Bytes())
		if len(line) == 0 {
			watch.Waiting()
			continue
		}
		if err := c.objectError(line); err != nil {
			return err
		}
		obj, done, err := fold.Add(line)
		if err != nil {
			return apierror.BadAnswer(c.conn.NodeID(), "the node sent an invalid object: %w", err)
		}
		if done {
			if wantStream {
				return send(obj)
			}
			return send(fold.Result())
		}
		if wantStream {
			if err := send(bytes.Clone(line)); err != nil {
				return err
			}
		}
		watch.Waiting()
	}
	if err := lines.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return c.tooLarge()
		}
		return c.conn.BodyError(ctx, err)
	}
	return c.conn.BrokenOff(ctx, "the stream ended before its done object")
}

// objectError is the error an object carries ({"error": "..."}), if any.
func (c *Client) objectError(obj []byte) error {
	if !bytes.Contains(obj, []byte(`"error"`)) {
		return nil
	}
	if eo, ok := openaijson.UnmarshalError(obj); ok {
		return c.conn.EventError(eo)
	}
	return nil
}

func (c *Client) tooLarge() error {
	return apierror.BadAnswer(c.conn.NodeID(), "an answer object is larger than %d MiB", maxLine>>20)
}

// forceStream sets "stream": true in an Ollama request body and reports
// whether the client wanted a stream (Ollama's default is true).
func forceStream(body []byte) ([]byte, bool, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, false, fmt.Errorf("invalid JSON body: %w", err)
	}
	want := true
	if raw, ok := fields["stream"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &want); err != nil {
			return nil, false, fmt.Errorf("stream must be a boolean")
		}
	}
	fields["stream"] = json.RawMessage("true")
	out, err := json.Marshal(fields)
	return out, want, err
}
