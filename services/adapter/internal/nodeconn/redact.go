package nodeconn

import (
	"errors"
	"strings"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// Redacted replaces a secret in text that leaves the adapter.
const Redacted = "[redacted]"

// minSecret is the shortest secret value redacted: shorter ones would
// redact ordinary words and cannot be keys anyway.
const minSecret = 4

// RedactString is s with every secret of the node (its API key, its
// secret header values) replaced by Redacted. A node that echoes the
// request's Authorization header in an error body must not hand the key
// to the mesh's clients or logs.
func (c *Client) RedactString(s string) string {
	for _, secret := range c.secrets {
		if len(secret) >= minSecret {
			s = strings.ReplaceAll(s, secret, Redacted)
		}
	}
	return s
}

// Redact is err with the node's secrets redacted: from every text field
// of an *apierror.Error (in place), or from the message of any other error.
func (c *Client) Redact(err error) error {
	if err == nil || len(c.secrets) == 0 {
		return err
	}
	var e *apierror.Error
	if errors.As(err, &e) {
		c.redactError(e)
		return err
	}
	if msg := err.Error(); c.RedactString(msg) != msg {
		return errors.New(c.RedactString(msg))
	}
	return err
}

func (c *Client) redactError(e *apierror.Error) *apierror.Error {
	if e == nil || len(c.secrets) == 0 {
		return e
	}
	e.Message = c.RedactString(e.Message)
	e.Type = c.RedactString(e.Type)
	e.Param = c.RedactString(e.Param)
	e.ErrCode = c.RedactString(e.ErrCode)
	return e
}
