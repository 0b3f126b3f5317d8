package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/maillage/maillage/domain"
)

// Group commit (docs/store.md, "Group commit"): a single server fsyncs one
// message after another, so concurrent appends on different cases wait for
// each other's fsync. Appends that find others already publishing wait
// instead, and what waits goes out together when the publishes in flight
// are done: as one JetStream atomic batch when it is large enough (the
// server checks each message's expected per-subject sequence and
// de-duplication id, then stores them all with one fsync, or none), else as
// that many publishes at once. Nothing waits for company: an append
// publishes alone at once whenever nothing is in flight, so a single
// writer's latency is what it was without group commit.

// DefaultGroupCommit is the smallest group of waiting appends sent as one
// atomic batch. An atomic batch costs the server about ten single fsyncs
// whatever its size (it stages the batch in a store of its own, created and
// removed on disk; measured, docs/store.md), so smaller groups go as
// concurrent publishes, one fsync each.
const DefaultGroupCommit = 8

// maxGroup bounds the appends of one atomic batch (the server's default
// limit is 1000 messages).
const maxGroup = 256

// groupTimeout bounds the wait for an atomic batch's acknowledgement, as
// nats.go's default does for a publish.
const groupTimeout = 5 * time.Second

// Headers of JetStream's atomic batch publish.
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

var (
	// errStaleHead: the case moved on while the append waited for its
	// batch (another append to it was stored first); it was not sent.
	errStaleHead = errors.New("jetstream: the case moved on while the append waited for its batch")
	// errGroupRefused: the batch holding the append was refused as a whole
	// (a batch is all or nothing): nothing of it is stored, the append is
	// published again on its own.
	errGroupRefused = errors.New("jetstream: atomic batch refused")
)

// groupCommit queues the appends that find others publishing and sends
// them, from one goroutine, as atomic batches, one at a time.
type groupCommit struct {
	s        *Store
	minBatch int

	mu      sync.Mutex
	waiting []*queued
	plain   int                   // publishes in flight alone
	sending bool                  // a group is in flight
	busy    map[domain.CaseID]int // publishes in flight by case, plain or batched
	closed  bool                  // the committer stopped: appends go alone

	batches, grouped, refused atomic.Int64 // see GroupStats

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// queued is an append waiting for a batch.
type queued struct {
	ctx       context.Context
	id        domain.CaseID
	msg       *nats.Msg
	msgID     string
	expected  uint64 // the case's expected version
	expectSeq uint64
	version   uint64 // the case's version once the message is stored
	result    chan published
	taken     bool // sent (mu)
}

type published struct {
	ack *jetstream.PubAck
	err error
}

func newGroupCommit(s *Store, minBatch int) *groupCommit {
	g := &groupCommit{s: s, minBatch: max(2, minBatch), busy: make(map[domain.CaseID]int),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

// close stops the committer; appends still queued fail as unavailable
// (nothing of them was sent).
func (g *groupCommit) close() {
	close(g.stop)
	<-g.done
}

// publish stores msg expecting the subject's last sequence to be expectSeq,
// alone or in a batch, with the result of a plain publish: an ack, or the
// server's error, or errStaleHead (the case moved on: nothing was sent).
func (g *groupCommit) publish(ctx context.Context, id domain.CaseID, msg *nats.Msg, msgID string, expected, expectSeq, version uint64) (*jetstream.PubAck, error) {
	g.mu.Lock()
	if g.closed || len(g.waiting) == 0 && g.plain == 0 && !g.sending {
		g.mu.Unlock()
		return g.alone(ctx, id, msg, msgID, expectSeq, version)
	}
	q := &queued{ctx: ctx, id: id, msg: msg, msgID: msgID, expected: expected, expectSeq: expectSeq, version: version, result: make(chan published, 1)}
	g.waiting = append(g.waiting, q)
	g.mu.Unlock()
	g.wake()

	select {
	case r := <-q.result:
		if errors.Is(r.err, errGroupRefused) {
			return g.alone(ctx, id, msg, msgID, expectSeq, version)
		}
		return r.ack, r.err
	case <-ctx.Done():
		g.mu.Lock()
		if !q.taken {
			g.drop(q)
		}
		g.mu.Unlock()
		return nil, ctx.Err()
	}
}

// alone publishes one message, counted as a plain publish in flight.
func (g *groupCommit) alone(ctx context.Context, id domain.CaseID, msg *nats.Msg, msgID string, expectSeq, version uint64) (*jetstream.PubAck, error) {
	g.mu.Lock()
	g.plain++
	g.busy[id]++
	g.mu.Unlock()
	ack, err := g.s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequencePerSubject(expectSeq))
	if err == nil && !ack.Duplicate {
		g.s.learn(id, caseHead{version: version, seq: ack.Sequence}) // before the next batch is formed
	}
	g.mu.Lock()
	g.plain--
	g.release(id)
	wake := len(g.waiting) > 0 && g.plain == 0
	g.mu.Unlock()
	if wake {
		g.wake()
	}
	return ack, err
}

func (g *groupCommit) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// release ends a publish in flight on the case (mu).
func (g *groupCommit) release(id domain.CaseID) {
	if g.busy[id]--; g.busy[id] <= 0 {
		delete(g.busy, id)
	}
}

// drop removes q from the queue (mu).
func (g *groupCommit) drop(q *queued) {
	for i, w := range g.waiting {
		if w == q {
			g.waiting = append(g.waiting[:i], g.waiting[i+1:]...)
			return
		}
	}
}

func (g *groupCommit) run() {
	defer close(g.done)
	for {
		select {
		case <-g.stop:
			g.mu.Lock()
			g.closed = true
			for _, q := range g.waiting {
				q.result <- published{err: nats.ErrConnectionClosed} // not sent
			}
			g.waiting = nil
			g.mu.Unlock()
			return
		case <-g.kick:
		}
		for {
			group := g.take()
			if len(group) == 0 {
				break
			}
			g.send(group)
		}
	}
}

// take forms the next batch from what waits, in order: one append per case,
// none on a case with a publish in flight (it waits for the next batch),
// none whose expectation the case's learnt head already contradicts (it is
// answered errStaleHead: sent, it would fail the whole batch).
func (g *groupCommit) take() []*queued {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sending = false
	if g.plain > 0 {
		return nil // the last of them wakes the committer
	}
	var group []*queued
	in := make(map[domain.CaseID]struct{})
	kept := g.waiting[:0]
	for _, q := range g.waiting {
		_, dup := in[q.id]
		switch {
		case q.ctx.Err() != nil:
			q.result <- published{err: q.ctx.Err()}
		case dup || g.busy[q.id] > 0 || len(group) == maxGroup:
			kept = append(kept, q)
		default:
			if h, ok := g.s.cachedHead(q.id); ok && h.version > q.expected {
				q.result <- published{err: errStaleHead}
				continue
			}
			q.taken = true
			in[q.id] = struct{}{}
			g.busy[q.id]++
			group = append(group, q)
		}
	}
	clear(g.waiting[len(kept):])
	g.waiting = kept
	g.sending = len(group) > 0
	return group
}

// send publishes the group, alone when it is one append, else as one atomic
// batch, and answers each of its appends.
func (g *groupCommit) send(group []*queued) {
	defer func() {
		g.mu.Lock()
		for _, q := range group {
			g.release(q.id)
		}
		g.mu.Unlock()
	}()
	if len(group) < g.minBatch {
		// Too few to pay for a batch: each its own publish, all at once.
		var wg sync.WaitGroup
		for _, q := range group {
			wg.Go(func() {
				ack, err := g.s.js.PublishMsg(q.ctx, q.msg, jetstream.WithMsgID(q.msgID), jetstream.WithExpectLastSequencePerSubject(q.expectSeq))
				if err == nil && !ack.Duplicate {
					g.s.learn(q.id, caseHead{version: q.version, seq: ack.Sequence})
				}
				q.result <- published{ack: ack, err: err}
			})
		}
		wg.Wait()
		return
	}
	acks, err := g.atomic(group)
	switch {
	case err == nil:
		g.batches.Add(1)
		g.grouped.Add(int64(len(group)))
	case errors.Is(err, errGroupRefused):
		g.refused.Add(1)
	}
	for i, q := range group {
		if err != nil {
			q.result <- published{err: err}
			continue
		}
		g.s.learn(q.id, caseHead{version: q.version, seq: acks[i].Sequence})
		q.result <- published{ack: acks[i]}
	}
}

// batchAck is the server's answer to the commit of an atomic batch.
type batchAck struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Count  int    `json:"count"`
	Error  *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// atomic publishes the group as one atomic batch and returns each
// message's acknowledgement. errGroupRefused means nothing of it is stored;
// any other error leaves the outcome unknown.
func (g *groupCommit) atomic(group []*queued) ([]*jetstream.PubAck, error) {
	batchID := nuid.Next()
	var reply *nats.Msg
	for i, q := range group {
		m := &nats.Msg{Subject: q.msg.Subject, Data: q.msg.Data, Header: make(nats.Header, len(q.msg.Header)+5)}
		for k, v := range q.msg.Header {
			m.Header[k] = v
		}
		m.Header.Set(jetstream.MsgIDHeader, q.msgID)
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(q.expectSeq, 10))
		m.Header.Set(headerBatchID, batchID)
		m.Header.Set(headerBatchSeq, strconv.Itoa(i+1))
		if i < len(group)-1 {
			if err := g.s.nc.PublishMsg(m); err != nil {
				return nil, errGroupRefused // no commit sent: nothing stored
			}
			continue
		}
		m.Header.Set(headerBatchCommit, "1")
		ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
		var err error
		reply, err = g.s.nc.RequestMsgWithContext(ctx, m)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	var ack batchAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return nil, fmt.Errorf("jetstream: atomic batch acknowledgement: %w", err)
	}
	if ack.Error != nil {
		g.s.log.Debug("atomic batch refused, its appends go alone", "appends", len(group), "code", ack.Error.ErrCode, "err", ack.Error.Description)
		return nil, errGroupRefused
	}
	if ack.Count != len(group) || ack.Seq < uint64(len(group)) {
		return nil, fmt.Errorf("jetstream: atomic batch of %d acknowledged with count %d at %d", len(group), ack.Count, ack.Seq)
	}
	// The batch is stored in one piece, in order: the last message at Seq.
	acks := make([]*jetstream.PubAck, len(group))
	first := ack.Seq - uint64(len(group)) + 1
	for i := range group {
		acks[i] = &jetstream.PubAck{Stream: ack.Stream, Sequence: first + uint64(i)}
	}
	return acks, nil
}

// GroupStats counts the atomic batches a store published since it opened.
type GroupStats struct {
	Batches int64 // atomic batches stored
	Appends int64 // appends they held
	Refused int64 // batches refused as a whole, whose appends went alone
}

// GroupStats returns the store's group commit counts (zero without group
// commit).
func (s *Store) GroupStats() GroupStats {
	if s.group == nil {
		return GroupStats{}
	}
	return GroupStats{Batches: s.group.batches.Load(), Appends: s.group.grouped.Load(), Refused: s.group.refused.Load()}
}
