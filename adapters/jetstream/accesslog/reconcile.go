package accesslog

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/internal/settle"
	"github.com/maillage/maillage/adapters/jetstream/internal/streamread"
)

// walStream returns the write-ahead stream's name.
func (c config) walStream() string { return c.stream + "_WAL" }

// walSubject returns a writer's write-ahead subject.
func (c config) walSubject(writer string) string { return c.prefix + "wal." + writer }

// openWAL creates or updates the write-ahead stream: deletes denied,
// purges allowed (copied batches are purged), kept as long as the records
// so that a batch left by a crash is copied whenever the log is next
// opened.
func (l *Log) openWAL(ctx context.Context) error {
	_, err := settle.CreateOrUpdateStream(ctx, l.js, jetstream.StreamConfig{
		Name:        l.cfg.walStream(),
		Description: "maillage access log write-ahead batches: records durable, not yet in " + l.cfg.stream,
		Subjects:    []string{l.cfg.walSubject("*")},
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.replicas,
		MaxAge:      l.cfg.maxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Discard:     jetstream.DiscardOld,
		DenyDelete:  true,
	})
	return err
}

// reconcile copies to the records stream the records of every batch still
// in the write-ahead stream (left by a crash, or being copied by another
// server at this moment) that the records stream does not hold, then
// purges what it read. A record is recognised by its message id.
func (l *Log) reconcile(ctx context.Context) error {
	var (
		batches []walBatch
		oldest  time.Time
		last    uint64
	)
	err := streamread.Read(ctx, l.js, l.cfg.walStream(), jetstream.OrderedConsumerConfig{}, func(m jetstream.Msg) error {
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		last = meta.Sequence.Stream
		recs, err := decodeWAL(m.Data())
		if err != nil {
			l.cfg.log.Error("accesslog: unreadable write-ahead batch, left as is", "seq", meta.Sequence.Stream, "err", err)
			return nil
		}
		if oldest.IsZero() {
			oldest = meta.Timestamp
		}
		subj := m.Subject()
		batches = append(batches, walBatch{writer: subj[len(l.cfg.walSubject("")):], seq: meta.Sequence.Stream, recs: recs})
		return nil
	})
	if err != nil || last == 0 {
		return err
	}
	if len(batches) > 0 {
		// A batch's records are copied after it is stored: the records
		// stream holds none of them before it (a minute of clock margin).
		start := oldest.Add(-time.Minute)
		have := map[string]bool{}
		err = streamread.Read(ctx, l.js, l.cfg.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start}, func(m jetstream.Msg) error {
			if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
				have[id] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		copied := 0
		for _, b := range batches {
			n, err := l.copyMissing(ctx, b, have)
			if err != nil {
				return err
			}
			copied += n
		}
		if copied > 0 {
			l.cfg.log.Info("access log: records left in the write-ahead stream copied to the records stream", "records", copied)
		}
	}
	s, err := l.js.Stream(ctx, l.cfg.walStream())
	if err != nil {
		return err
	}
	return s.Purge(ctx, jetstream.WithPurgeSequence(last+1))
}

// copyMissing copies the records of b the records stream does not have,
// one by one, each under its message id, and returns how many.
func (l *Log) copyMissing(ctx context.Context, b walBatch, have map[string]bool) (int, error) {
	n := 0
	for i, r := range b.recs {
		if have[b.msgID(i)] {
			continue
		}
		if _, err := l.js.Publish(ctx, r.subject, r.data, jetstream.WithMsgID(b.msgID(i))); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
