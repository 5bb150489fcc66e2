package nodeconn

import (
	"strings"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// Redacted replaces a secret in text that leaves the adapter.
const Redacted = "[redacted]"

// minSecret is the shortest secret value redacted: shorter ones would
// redact ordinary words and cannot be keys anyway.
const minSecret = 4

// redact is s with every secret of the node (its API key, its
// secret header values) replaced by Redacted. A node that echoes the
// request's Authorization header in an error body must not hand the key
// to the mesh's clients or logs.
func (c *Client) redact(s string) string {
	for _, secret := range c.secrets {
		if len(secret) >= minSecret {
			s = strings.ReplaceAll(s, secret, Redacted)
		}
	}
	return s
}

// redactError redacts the node's secrets from every text field of e, in
// place. Every error nodeconn makes from what a node sent goes through it.
func (c *Client) redactError(e *apierror.Error) *apierror.Error {
	if e == nil || len(c.secrets) == 0 {
		return e
	}
	e.Message = c.redact(e.Message)
	e.Type = c.redact(e.Type)
	e.Param = c.redact(e.Param)
	e.ErrCode = c.redact(e.ErrCode)
	return e
}
