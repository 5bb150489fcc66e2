// Package sse reads a server-sent event stream incrementally, one event at
// a time, as the bytes arrive: it never buffers more than the event being
// read.
//
// It follows the WHATWG event-stream format as OpenAI-compatible servers
// use it: fields "data", "event", "id" (and "retry", ignored) with or
// without a space after the colon, several data lines joined by "\n",
// comment lines starting with ":", LF or CRLF line ends, and an event
// dispatched on a blank line. A bare CR as a line end (allowed by the spec,
// sent by no LLM server) is not supported.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxEventSize bounds one event's data and one line.
const DefaultMaxEventSize = 8 << 20

// ErrTooLarge is returned for an event or line longer than the limit.
var ErrTooLarge = errors.New("sse: event too large")

// Event is one dispatched event.
type Event struct {
	// Type is the "event" field; empty means "message".
	Type string
	// ID is the "id" field of this event, empty when it had none.
	ID string
	// Data is the data lines joined by "\n". It is the caller's to keep.
	Data []byte
}

// Done reports whether the event is OpenAI's end marker `data: [DONE]`.
func (e Event) Done() bool { return bytes.Equal(bytes.TrimSpace(e.Data), []byte("[DONE]")) }

// Reader reads events from a stream.
type Reader struct {
	br  *bufio.Reader
	max int
}

// NewReader reads events from r with DefaultMaxEventSize.
func NewReader(r io.Reader) *Reader { return NewReaderSize(r, DefaultMaxEventSize) }

// NewReaderSize reads events from r; no line or event may exceed limit bytes.
func NewReaderSize(r io.Reader, limit int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 4096), max: limit}
}

// Next returns the next event that has data. It returns io.EOF when the
// stream ends between events and io.ErrUnexpectedEOF when it ends in the
// middle of a line (the partial event is dropped). An event whose lines
// are complete but which lacks the blank line that ends it is returned
// when the stream ends: servers that close right after "data: [DONE]\n"
// exist, and a stream cut off there still lacks its end marker, which the
// callers check. Other errors are the underlying reader's.
func (r *Reader) Next() (Event, error) {
	var (
		ev      Event
		data    []byte
		hasData bool
		pending bool // a field of the current event has been read
	)
	for {
		line, err := r.readLine()
		if err != nil {
			partialField := len(line) > 0 && line[0] != ':'
			if errors.Is(err, io.EOF) && hasData && len(line) == 0 {
				ev.Data = data
				return ev, nil
			}
			if errors.Is(err, io.EOF) && (pending || partialField) {
				return Event{}, io.ErrUnexpectedEOF
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if hasData {
				ev.Data = data
				if ev.Data == nil {
					ev.Data = []byte{}
				}
				return ev, nil
			}
			ev, data, pending = Event{}, nil, false // an event without data is not dispatched
			continue
		}
		if line[0] == ':' {
			continue // comment
		}
		pending = true
		name, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(name) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			if len(data)+len(value) > r.max {
				return Event{}, ErrTooLarge
			}
			data = append(data, value...)
			hasData = true
		case "event":
			ev.Type = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID = string(value)
			}
		}
	}
}

// readLine returns the next line without its LF or CRLF. The slice is
// valid until the next call. At the end of the stream it returns the
// unterminated rest (possibly empty) with io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A long line: accumulate it up to the limit.
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(long) > r.max {
				return nil, ErrTooLarge
			}
			line, err = r.br.ReadSlice('\n')
			long = append(long, line...)
		}
		if len(long) > r.max {
			return nil, ErrTooLarge
		}
		line = long
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return line, io.EOF
		}
		return nil, fmt.Errorf("sse: read: %w", err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
