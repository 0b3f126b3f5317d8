package accesslog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The indexer copies durable batches to the records stream (see
// groupcommit.go), in order, one atomic batch at a time.

const (
	indexTimeout = 10 * time.Second
	purgeEvery   = 10 * time.Second
	// copyEvery paces the copies (unless a full batch is waiting, or a
	// reader waits for its records): the
	// server stages each atomic batch in a file store of its own, created,
	// synced and removed, about 1 ms of CPU whatever its size (pprof of
	// BenchmarkHTTPTimelineReads: 70 % of the copy's cost at 20 ms).
	copyEvery = 100 * time.Millisecond
)

// index copies the queued batches until none is left. A failure is kept
// (caughtUp reports it) and tried again, with a growing pause, until the
// connection is closed: what is left is then copied by the next Open.
func (g *groupCommit) index() {
	pause := 50 * time.Millisecond
	var last time.Time
	for {
		if wait := copyEvery - time.Since(last); wait > 0 {
			g.imu.Lock()
			full := queuedRecords(g.queue) >= maxBatchRecords
			g.imu.Unlock()
			if !full {
				// A reader waiting for its records (caughtUp) cuts the
				// pause short.
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-g.hurry:
				}
				t.Stop()
			}
		}
		last = time.Now()
		g.imu.Lock()
		n, records := 0, 0
		for n < len(g.queue) && (n == 0 || records+len(g.queue[n].recs) <= maxBatchRecords) {
			records += len(g.queue[n].recs)
			n++
		}
		if n == 0 {
			g.indexing = false
			g.imu.Unlock()
			return
		}
		batches := g.queue[:n:n]
		g.imu.Unlock()

		err := g.l.copyRecords(batches)
		g.imu.Lock()
		if err != nil {
			g.ierr = err
			g.signal()
			closed := g.l.js.Conn().IsClosed()
			if closed {
				g.indexing = false
			}
			g.imu.Unlock()
			if closed {
				return
			}
			g.l.cfg.log.Warn("access log: copying records to the records stream failed, trying again", "err", err)
			time.Sleep(pause)
			pause = min(2*pause, 5*time.Second)
			continue
		}
		pause = 50 * time.Millisecond
		g.queue = g.queue[n:]
		g.indexed += uint64(records)
		g.ierr = nil
		g.signal()
		purge := time.Since(g.lastPurg) >= purgeEvery || len(g.queue) == 0
		if purge {
			g.lastPurg = time.Now()
		}
		g.imu.Unlock()
		if purge {
			g.purgeWAL(batches[len(batches)-1].seq)
		}
	}
}

// purgeWAL removes this writer's batches up to seq, all copied.
func (g *groupCommit) purgeWAL(seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), indexTimeout)
	defer cancel()
	s, err := g.l.js.Stream(ctx, g.l.cfg.walStream())
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(g.l.cfg.walSubject(g.writer)), jetstream.WithPurgeSequence(seq+1))
	}
	if err != nil {
		// Harmless: the next purge or Open removes them.
		g.l.cfg.log.Debug("access log: purging the write-ahead stream failed", "err", err)
	}
}

// copyRecords stores the batches' records in the records stream, in
// order: as one atomic batch (one write to disk), or, if the server
// refuses it (a record already copied, atomic publish not allowed),
// one by one, each de-duplicated by its message id.
func (l *Log) copyRecords(batches []walBatch) error {
	ctx, cancel := context.WithTimeout(context.Background(), indexTimeout)
	defer cancel()
	var msgs []*nats.Msg
	for _, b := range batches {
		for i, r := range b.recs {
			m := nats.NewMsg(r.subject)
			m.Data = r.data
			m.Header.Set(jetstream.MsgIDHeader, b.msgID(i))
			msgs = append(msgs, m)
		}
	}
	if err := l.publishAtomic(ctx, msgs); err == nil {
		return nil
	}
	for _, m := range msgs {
		m.Header.Del("Nats-Batch-Id")
		m.Header.Del("Nats-Batch-Sequence")
		m.Header.Del("Nats-Batch-Commit")
		if _, err := l.js.PublishMsg(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// publishAtomic publishes msgs as one JetStream atomic batch (ADR-50):
// the server stages them and stores them all, with one fsync, when the
// last one commits the batch, or none.
func (l *Log) publishAtomic(ctx context.Context, msgs []*nats.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	nc := l.js.Conn()
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	for i, m := range msgs {
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		resp, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		var ack struct {
			Count int                 `json:"count"`
			Error *jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return fmt.Errorf("atomic batch: unreadable acknowledgement: %w", err)
		}
		if ack.Error != nil {
			return ack.Error
		}
		if ack.Count != len(msgs) {
			// A server without atomic batches stored each message on its
			// own: the copies are there, but say so.
			return errors.New("atomic batch: not acknowledged as one")
		}
	}
	return nil
}

func queuedRecords(q []walBatch) int {
	n := 0
	for _, b := range q {
		n += len(b.recs)
	}
	return n
}
