package feeds

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// directBatch is how many messages one direct get request asks for.
const directBatch = 1000

// readSubject calls fn for the messages of subject subj in stream, in order,
// from stream sequence start up to and including end (0: to the last), with
// batched direct gets ($JS.API.DIRECT.GET.<stream>, allowed to the relay and
// to the stream's partner). The server answers a batch with the messages,
// then an end-of-batch status (204) with how many are left, or a 404 when
// there is none.
func readSubject(ctx context.Context, nc *nats.Conn, stream, subj string, start, end uint64, fn func(seq uint64, m *nats.Msg) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	inbox := nc.NewInbox()
	msgs := make(chan *nats.Msg, directBatch+1)
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return fmt.Errorf("feeds: read %s: %w", stream, err)
	}
	defer sub.Unsubscribe()
	api := "$JS.API.DIRECT.GET." + stream
	// A batch counts messages of the subject, not stream sequences: where
	// other subjects' messages sit in between, it reaches past end.
	past := false
	within := func(seq uint64, m *nats.Msg) error {
		if end > 0 && seq > end {
			past = true
			return nil
		}
		return fn(seq, m)
	}
	for {
		batch := directBatch
		if end > 0 {
			if start > end {
				return nil
			}
			batch = int(min(end-start+1, directBatch))
		}
		body, _ := json.Marshal(struct {
			Seq     uint64 `json:"seq"`
			NextFor string `json:"next_by_subj"`
			Batch   int    `json:"batch"`
		}{start, subj, batch})
		if err := nc.PublishRequest(api, inbox, body); err != nil {
			return fmt.Errorf("feeds: read %s: %w", stream, err)
		}
		more, last, err := readBatch(ctx, msgs, within)
		if err != nil {
			return fmt.Errorf("feeds: read %s: %w", stream, err)
		}
		if !more || past || (end > 0 && last >= end) {
			return nil
		}
		start = last + 1
	}
}

// readBatch reads the answer to one batched direct get; more tells whether
// messages are left after last.
func readBatch(ctx context.Context, msgs <-chan *nats.Msg, fn func(uint64, *nats.Msg) error) (more bool, last uint64, err error) {
	for {
		var m *nats.Msg
		select {
		case m = <-msgs:
		case <-ctx.Done():
			return false, 0, ctx.Err()
		}
		switch status := m.Header.Get("Status"); status {
		case "":
			seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil {
				return false, 0, fmt.Errorf("bad %s header %q", jetstream.SequenceHeader, m.Header.Get(jetstream.SequenceHeader))
			}
			if err := fn(seq, m); err != nil {
				return false, 0, err
			}
			last = seq
		case "204": // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return pending > 0 && last > 0, last, nil
		case "404": // no (more) messages
			return false, last, nil
		case "408":
			return false, 0, fmt.Errorf("direct get: %s", m.Header.Get("Description"))
		default:
			return false, 0, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
	}
}
