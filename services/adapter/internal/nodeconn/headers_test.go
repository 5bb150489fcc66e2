package nodeconn

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
)

func TestExtraHeaders(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got.Store(r.Header.Clone()) }))
	t.Cleanup(srv.Close)
	p := newPool(t, Options{LookupEnv: envMap(map[string]string{"ORG_KEY": " org-secret-1 ", "NODE_KEY": "sk-node"})})

	_, err := get(t, p, &nodev1.Node{Id: "gw", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL, ApiKeyEnv: "NODE_KEY",
		Headers: []*nodev1.Header{{Name: "x-org", Value: "foo"}, {Name: "X-Api-Org", ValueEnv: "ORG_KEY"}, {Name: "User-Agent", Value: "corp-gw/1"}}})
	require.NoError(t, err)
	h := got.Load().(http.Header)
	assert.Equal(t, "foo", h.Get("X-Org"))
	assert.Equal(t, "org-secret-1", h.Get("X-Api-Org"), "read from the adapter's environment")
	assert.Equal(t, "corp-gw/1", h.Get("User-Agent"), "User-Agent may be overridden")
	assert.Equal(t, "Bearer sk-node", h.Get("Authorization"))

	_, err = get(t, p, &nodev1.Node{Id: "bearer", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL,
		Headers: []*nodev1.Header{{Name: "Authorization", ValueEnv: "ORG_KEY"}}})
	require.NoError(t, err)
	assert.Equal(t, "org-secret-1", got.Load().(http.Header).Get("Authorization"), "without api_key_env a node may set Authorization itself")

	c, err := p.Client(&nodev1.Node{Id: "unset", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL,
		Headers: []*nodev1.Header{{Name: "X-Api-Org", ValueEnv: "NOT_SET"}}})
	require.NoError(t, err, "a missing variable is reported per request")
	_, err = c.NewRequest(t.Context(), http.MethodGet, "/", nil)
	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.FailedPrecondition, e.Code)
	assert.Equal(t, "header X-Api-Org: variable NOT_SET is not set in the adapter's environment (or holds a control character)", e.Message)
}

// A node that echoes the request's credentials in its error (some
// gateways print the headers they refused) must not hand them on.
func TestSecretsRedactedFromNodeErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		if r.URL.Path == "/plain" {
			_, _ = io.WriteString(w, "denied: Authorization="+r.Header.Get("Authorization")+" org="+r.Header.Get("X-Api-Org"))
			return
		}
		_, _ = io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+r.Header.Get("Authorization")+
			`","type":"invalid_request_error","param":"`+r.Header.Get("X-Api-Org")+`","code":"invalid_api_key"}}`)
	}))
	t.Cleanup(srv.Close)
	const key, org = "sk-planted-7f3a9c", "org-planted-c0ffee"
	p := newPool(t, Options{LookupEnv: envMap(map[string]string{"NODE_KEY": key, "ORG": org})})
	c, err := p.Client(&nodev1.Node{Id: "echo", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: srv.URL, ApiKeyEnv: "NODE_KEY",
		Headers: []*nodev1.Header{{Name: "X-Api-Org", ValueEnv: "ORG"}}})
	require.NoError(t, err)
	for _, path := range []string{"/json", "/plain"} {
		req, err := c.NewRequest(t.Context(), http.MethodGet, path, nil)
		require.NoError(t, err)
		_, err = c.Do(req)
		e, ok := apierror.FromError(err)
		require.True(t, ok)
		assert.Equal(t, codes.Unauthenticated, e.Code)
		all := e.Message + e.Param + e.Type + e.ErrCode + err.Error()
		assert.NotContains(t, all, key, path)
		assert.NotContains(t, all, org, path)
		assert.Contains(t, e.Message, "Bearer "+Redacted, path)
	}
	e, _ := apierror.FromError(c.EventError(openaijsonError("stream broke for " + key)))
	assert.Equal(t, "stream broke for "+Redacted, e.Message)
	e, _ = apierror.FromError(c.BodyError(t.Context(), errString("read: "+key)))
	assert.Equal(t, "answer broken off: read: "+Redacted, e.Message)
}

type errString string

func (e errString) Error() string { return string(e) }

func openaijsonError(msg string) openaijson.ErrorObject { return openaijson.ErrorObject{Message: msg} }
