package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type want struct {
	events []Event
	end    error // what Next returns after the events
}

var cases = []struct {
	name string
	in   string
	want want
}{
	{"one event", "data: a\n\n", want{[]Event{{Data: []byte("a")}}, io.EOF}},
	{"two events", "data: a\n\ndata: b\n\n", want{[]Event{{Data: []byte("a")}, {Data: []byte("b")}}, io.EOF}},
	{"no space after colon", "data:a\n\n", want{[]Event{{Data: []byte("a")}}, io.EOF}},
	{"only one space is stripped", "data:  a\n\n", want{[]Event{{Data: []byte(" a")}}, io.EOF}},
	{"multi-line data", "data: a\ndata:b\ndata: c\n\n", want{[]Event{{Data: []byte("a\nb\nc")}}, io.EOF}},
	{"CRLF", "data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n", want{[]Event{{Data: []byte("a\nb")}, {Data: []byte("c")}}, io.EOF}},
	{"comments", ": ping\n\n:\ndata: x\n: inside\n\n", want{[]Event{{Data: []byte("x")}}, io.EOF}},
	{"event and id", "event: delta\nid: 7\ndata: {}\n\n", want{[]Event{{Type: "delta", ID: "7", Data: []byte("{}")}}, io.EOF}},
	{"event without data is not dispatched", "event: ping\n\ndata: x\n\n", want{[]Event{{Data: []byte("x")}}, io.EOF}},
	{"field without colon", "data\n\n", want{[]Event{{Data: []byte{}}}, io.EOF}},
	{"unknown fields and retry ignored", "retry: 10\nfoo: bar\ndata: x\n\n", want{[]Event{{Data: []byte("x")}}, io.EOF}},
	{"json with colons", "data: {\"a\":\"b: c\"}\n\n", want{[]Event{{Data: []byte(`{"a":"b: c"}`)}}, io.EOF}},
	{"done", "data: {}\n\ndata: [DONE]\n\n", want{[]Event{{Data: []byte("{}")}, {Data: []byte("[DONE]")}}, io.EOF}},
	{"extra blank lines", "\n\ndata: a\n\n\n\n", want{[]Event{{Data: []byte("a")}}, io.EOF}},
	{"empty stream", "", want{nil, io.EOF}},
	{"ends after a trailing comment", "data: a\n\n: bye", want{[]Event{{Data: []byte("a")}}, io.EOF}},
	{"ends before the blank line", "data: a\n\ndata: b\n", want{[]Event{{Data: []byte("a")}, {Data: []byte("b")}}, io.EOF}},
	{"[DONE] without the blank line", "data: a\n\ndata: [DONE]\n", want{[]Event{{Data: []byte("a")}, {Data: []byte("[DONE]")}}, io.EOF}},
	{"ends after a field without data", "data: a\n\nevent: x\n", want{[]Event{{Data: []byte("a")}}, io.ErrUnexpectedEOF}},
	{"ends mid-line", "data: a\n\ndata: {\"x", want{[]Event{{Data: []byte("a")}}, io.ErrUnexpectedEOF}},
}

func readAll(t *testing.T, r *Reader) ([]Event, error) {
	t.Helper()
	var got []Event
	for {
		ev, err := r.Next()
		if err != nil {
			return got, err
		}
		got = append(got, ev)
		require.Less(t, len(got), 100, "runaway reader")
	}
}

func TestReader(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, NewReader(strings.NewReader(tc.in)))
			assert.Equal(t, tc.want.events, got)
			assert.ErrorIs(t, err, tc.want.end)
		})
	}
}

// TestReaderSplits feeds every case split in two at every byte boundary,
// and one byte at a time, as a network would deliver it.
func TestReaderSplits(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			for i := 0; i <= len(in); i++ {
				r := io.MultiReader(bytes.NewReader(in[:i]), bytes.NewReader(in[i:]))
				got, err := readAll(t, NewReader(r))
				assert.Equal(t, tc.want.events, got, "split at %d", i)
				assert.ErrorIs(t, err, tc.want.end, "split at %d", i)
			}
			got, err := readAll(t, NewReader(iotest.OneByteReader(bytes.NewReader(in))))
			assert.Equal(t, tc.want.events, got, "one byte at a time")
			assert.ErrorIs(t, err, tc.want.end, "one byte at a time")
		})
	}
}

func TestDone(t *testing.T) {
	assert.True(t, Event{Data: []byte("[DONE]")}.Done())
	assert.True(t, Event{Data: []byte(" [DONE] ")}.Done())
	assert.False(t, Event{Data: []byte(`{"x":"[DONE]"}`)}.Done())
	assert.False(t, Event{}.Done())
}

// TestReaderIsIncremental proves an event is returned as soon as its blank
// line arrives, while the writer still holds the rest of the stream.
func TestReaderIsIncremental(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = pw.Write([]byte("data: first\n\n"))
		_, _ = pw.Write([]byte("data: second\n\n"))
		_ = pw.Close()
	}()
	ev, err := r.Next()
	require.NoError(t, err)
	assert.Equal(t, "first", string(ev.Data))
	// The pipe is unbuffered: the second write cannot have completed yet
	// unless the reader consumed it, and Next returned before asking.
	ev, err = r.Next()
	require.NoError(t, err)
	assert.Equal(t, "second", string(ev.Data))
	_, err = r.Next()
	assert.ErrorIs(t, err, io.EOF)
	<-done
}

func TestReaderLimits(t *testing.T) {
	long := "data: " + strings.Repeat("x", 100) + "\n\n"
	_, err := NewReaderSize(strings.NewReader(long), 50).Next()
	assert.ErrorIs(t, err, ErrTooLarge, "long line")

	many := strings.Repeat("data: "+strings.Repeat("x", 20)+"\n", 10) + "\n"
	_, err = NewReaderSize(strings.NewReader(many), 50).Next()
	assert.ErrorIs(t, err, ErrTooLarge, "many data lines")

	// A line longer than the bufio buffer but within the limit is fine.
	big := strings.Repeat("y", 10000)
	ev, err := NewReaderSize(strings.NewReader("data: "+big+"\n\n"), 20000).Next()
	require.NoError(t, err)
	assert.Equal(t, big, string(ev.Data))
}

func TestReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(boom)))
	ev, err := r.Next()
	require.NoError(t, err)
	assert.Equal(t, "a", string(ev.Data))
	_, err = r.Next()
	assert.ErrorIs(t, err, boom)
}
