// Package anthropic lets an OpenAI client use a Claude model: it
// translates chat requests and streams to and from Anthropic's Messages
// API (POST /v1/messages, x-api-key and anthropic-version headers, the
// message_start … message_stop event stream), maps its errors to gRPC
// codes, and lists models with GET /v1/models.
package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/openaicompat"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// Version is the anthropic-version header every request carries.
const Version = "2023-06-01"

// Paths below the node's base URL (the server root, as in
// ANTHROPIC_BASE_URL).
const (
	MessagesPath = "/v1/messages"
	ModelsPath   = "/v1/models"
)

// StatusOverloaded is Anthropic's "overloaded_error" status.
const StatusOverloaded = 529

const (
	maxAnswer   = 64 << 20
	maxPages    = 20   // model list pages followed
	modelsLimit = 1000 // models per page (the API's maximum)
)

// Client talks to one node's Messages API.
type Client struct {
	conn *nodeconn.Client
	now  func() time.Time
}

// New returns a client for the node behind conn.
func New(conn *nodeconn.Client) *Client { return &Client{conn: conn, now: time.Now} }

// Model is one entry of GET /v1/models.
type Model struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
}

// ListModels lists every model in OpenAI's shape.
func (c *Client) ListModels(ctx context.Context) (*openaiv1.ModelList, error) {
	models, err := c.Models(ctx)
	if err != nil {
		return nil, err
	}
	list := &openaiv1.ModelList{Object: "list"}
	for _, m := range models {
		list.Data = append(list.Data, &openaiv1.Model{Id: m.ID, Object: "model", Created: m.CreatedAt.Unix(), OwnedBy: "anthropic"})
	}
	return list, nil
}

// Models lists every model, following the pages.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	var all []Model
	after := ""
	for range maxPages {
		q := url.Values{"limit": {fmt.Sprint(modelsLimit)}}
		if after != "" {
			q.Set("after_id", after)
		}
		var page struct {
			Data    []Model `json:"data"`
			HasMore bool    `json:"has_more"`
			LastID  string  `json:"last_id"`
		}
		if err := c.roundTrip(ctx, http.MethodGet, ModelsPath, q, nil, &page); err != nil {
			return nil, err
		}
		for _, m := range page.Data {
			if m.ID != "" {
				all = append(all, m)
			}
		}
		if !page.HasMore || page.LastID == "" {
			break
		}
		after = page.LastID
	}
	return all, nil
}

// Chat sends a non-streamed chat completion.
func (c *Client) Chat(ctx context.Context, req *openaiv1.ChatCompletionRequest) (*openaiv1.ChatCompletion, error) {
	body, err := c.translate(req, false)
	if err != nil {
		return nil, err
	}
	var m messageResponse
	if err := c.roundTrip(ctx, http.MethodPost, MessagesPath, nil, body, &m); err != nil {
		return nil, err
	}
	return toCompletion(&m, c.now()), nil
}

// ChatFolded answers a non-streamed chat from a stream, failing as hung
// when no first token comes within firstToken or the stream then goes
// silent for longer than idle (see openaicompat.Fold).
func (c *Client) ChatFolded(ctx context.Context, req *openaiv1.ChatCompletionRequest, firstToken, idle time.Duration) (*openaiv1.ChatCompletion, error) {
	return openaicompat.Fold(ctx, c.conn.NodeID(), firstToken, idle, func(ctx context.Context, send func(*openaiv1.ChatCompletionChunk) error) error {
		up := proto.CloneOf(req)
		up.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
		return c.ChatStream(ctx, up, send)
	})
}

// Embed fails: Anthropic has no embeddings API.
func (c *Client) Embed(context.Context, *openaiv1.EmbeddingRequest) (*openaiv1.EmbeddingList, error) {
	return nil, apierror.Invalid("model", "anthropic nodes serve no embeddings").WithNode(c.conn.NodeID())
}

func (c *Client) translate(req *openaiv1.ChatCompletionRequest, stream bool) ([]byte, error) {
	m, err := toMessages(req, stream)
	if err != nil {
		var br *badRequest
		if errors.As(err, &br) {
			return nil, apierror.Invalid(br.param, "%w", br).WithNode(c.conn.NodeID())
		}
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, apierror.New(codes.InvalidArgument, "encode request: %w", err).WithNode(c.conn.NodeID())
	}
	return b, nil
}

// do sends a request and returns a 2xx answer; other answers are errors
// mapped by mapError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, accept string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := c.conn.NewRequest(ctx, method, path, r)
	if err != nil {
		return nil, err
	}
	req.URL.RawQuery = query.Encode()
	req.Header.Set("anthropic-version", Version)
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.conn.Do(req)
	if err != nil {
		return nil, c.mapError(err)
	}
	return resp, nil
}

func (c *Client) roundTrip(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	resp, err := c.do(ctx, method, path, query, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return c.conn.BodyError(ctx, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return apierror.BadAnswer(c.conn.NodeID(), "the node sent an invalid answer: %w", err)
	}
	return nil
}

// mapError gives Anthropic's statuses their meaning: 529 overloaded is
// a busy node (UNAVAILABLE, 503, retryable elsewhere); the others (401,
// 403, 404, 429, 500…) already map by status.
func (c *Client) mapError(err error) error {
	e, ok := apierror.FromError(err)
	if !ok {
		return err
	}
	out := *e
	if out.HTTPStatus == StatusOverloaded || out.Type == "overloaded_error" {
		out.Code = codes.Unavailable
		out.HTTPStatus = http.StatusServiceUnavailable
	}
	return &out
}

// eventError maps an error event inside a stream:
// {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}.
func (c *Client) eventError(typ, msg string) error {
	msg = c.conn.Redact(msg)
	if msg == "" {
		msg = "the node reported an error"
	}
	e := apierror.Upstream(c.conn.NodeID(), errorStatus[typ], "%s", msg) // an unknown type: 0, INTERNAL
	e.Type = typ
	return e
}

// errorStatus is the HTTP status of each Anthropic error type (an
// overloaded node is a busy one: 503).
var errorStatus = map[string]int{
	"invalid_request_error": http.StatusBadRequest,
	"authentication_error":  http.StatusUnauthorized,
	"permission_error":      http.StatusForbidden,
	"not_found_error":       http.StatusNotFound,
	"request_too_large":     http.StatusRequestEntityTooLarge,
	"rate_limit_error":      http.StatusTooManyRequests,
	"api_error":             http.StatusInternalServerError,
	"overloaded_error":      http.StatusServiceUnavailable,
}
