package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// ReadCase returns the case's events with a sequence greater than after.
// On a single replica it reads the case's subject with batched direct gets
// (one request for up to directBatch messages); on replicated streams with
// an ordered consumer, served from the stream leader's copy.
func (s *Store) ReadCase(ctx context.Context, id domain.CaseID, after uint64) ([]domain.Event, error) {
	subj := s.Subject(id)
	if h, ok := s.knowsLast(id); ok && after >= h.version {
		return nil, nil // nothing was appended after the head this store learnt
	}
	// Events after a known version are in the messages after the one that
	// brought the case to it.
	start, probe := uint64(1), 0
	if h, ok := s.cachedHead(id); ok && after >= h.version {
		start, probe = h.seq+1, directProbes
	}
	var (
		out  []domain.Event
		last caseHead
	)
	collect := func(seq uint64, header nats.Header, data []byte) error {
		events, err := DecodeMsg(seq, header, data)
		if err != nil {
			return err
		}
		if events[0].CaseID != id {
			return fmt.Errorf("jetstream: message %d on %s holds events of case %s", seq, subj, events[0].CaseID)
		}
		for _, e := range events {
			if e.Sequence > after {
				out = append(out, e)
			}
		}
		last = caseHead{version: events[len(events)-1].Sequence, seq: seq}
		return nil
	}
	var err error
	if s.cfg.direct() {
		err = s.directRead(ctx, subj, start, probe, collect)
	} else {
		err = s.consume(ctx, subj, start, false, func(m jetstream.Msg, seq uint64) error {
			return collect(seq, m.Headers(), m.Data())
		})
	}
	if err != nil {
		return nil, err
	}
	if last.version > 0 {
		s.learn(id, last)
	}
	return out, nil
}

// ReadAll yields the events with a position greater than after, reading the
// stream with an ordered consumer from the message holding after, until the
// messages the stream held when the consumer was created are delivered.
func (s *Store) ReadAll(ctx context.Context, after domain.Position) iter.Seq2[domain.Event, error] {
	return func(yield func(domain.Event, error) bool) {
		stop := errors.New("stop")
		err := s.consume(ctx, "", startSeq(after), false, func(m jetstream.Msg, seq uint64) error {
			events, err := DecodeMsg(seq, m.Headers(), m.Data())
			if err != nil {
				return err
			}
			for _, e := range events {
				if e.Position > after && !yield(e, nil) {
					return stop
				}
			}
			return nil
		})
		if err != nil && err != stop {
			yield(domain.Event{}, err)
		}
	}
}

// Follow calls handle for every event with a position greater than after,
// then for new ones as they are recorded, until ctx ends or handle fails.
func (s *Store) Follow(ctx context.Context, after domain.Position, handle func(domain.Event) error) error {
	var handlerErr error
	err := s.consume(ctx, "", startSeq(after), true, func(m jetstream.Msg, seq uint64) error {
		events, err := DecodeMsg(seq, m.Headers(), m.Data())
		if err != nil {
			return err
		}
		for _, e := range events {
			if e.Position > after {
				if err := handle(e); err != nil {
					handlerErr = err
					return err
				}
			}
		}
		return nil
	})
	if handlerErr != nil {
		return handlerErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// startSeq is the sequence of the message holding the event at after (or the
// first message).
func startSeq(after domain.Position) uint64 {
	seq, _ := SplitPosition(after)
	return max(seq, 1)
}

// consumeBatch is how many messages a consumer asks for at a time.
const consumeBatch = 1000

// consume calls fn for the stream's messages from startSeq on, only those of
// subject filter when filter is not empty, in order. Unless follow is set it
// returns after the messages that were there when it started; with follow it
// goes on until ctx ends or fn fails. It uses an ordered consumer (ephemeral,
// in memory, no acks), deleted when done.
func (s *Store) consume(ctx context.Context, filter string, startSeq uint64, follow bool, fn func(m jetstream.Msg, seq uint64) error) error {
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       startSeq,
		InactiveThreshold: time.Minute,
	}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	if !follow {
		// A read gives up after a few attempts to recreate a lost consumer;
		// Follow retries until its context ends.
		cfg.MaxResetAttempts = 3
	}
	cons, err := s.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil && follow {
			return ctx.Err()
		}
		return unavailable("create consumer", err)
	}
	defer s.deleteConsumer(cons)
	var pending uint64
	if info := cons.CachedInfo(); info != nil {
		pending = info.NumPending
	}
	if !follow && pending == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(consumeBatch))
	if err != nil {
		return unavailable("consume", err)
	}
	defer it.Stop()
	// Stopping the iterator also ends a consumer reset in progress, which
	// Next would otherwise wait for.
	unhook := context.AfterFunc(ctx, it.Stop)
	defer unhook()
	var watch *stallWatch
	if follow && filter == "" {
		watch = s.watchStall(ctx, startSeq-1, it.Stop)
		defer watch.stop()
	}
	var delivered, last uint64 // last: the stream sequence of the last message read
	for {
		m, err := s.next(ctx, it, cons, follow, last)
		if errors.Is(err, errReadToEnd) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				if follow {
					return ctx.Err()
				}
				return unavailable("read", ctx.Err())
			}
			if watch != nil && watch.stalled.Load() {
				return unavailable("follow", fmt.Errorf("%w: no message for %s while the stream holds more", ErrFollowStalled, s.cfg.stallAfter))
			}
			return unavailable("read", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return unavailable("read", err)
		}
		last = meta.Sequence.Stream
		if s.cfg.dropDelivery != nil && s.cfg.dropDelivery(meta.Sequence.Stream) {
			continue
		}
		if watch != nil {
			watch.busy.Store(true)
		}
		err = fn(m, meta.Sequence.Stream)
		if watch != nil {
			watch.handled(meta.Sequence.Stream)
		}
		if err != nil {
			return err
		}
		// The consumer's initial count of pending messages is exact; the
		// count in each message's metadata is kept up incrementally by the
		// server and is not relied on.
		if delivered++; !follow && delivered >= pending {
			return nil
		}
	}
}

// deleteConsumer removes an ordered consumer from the server at once rather
// than when it expires.
func (s *Store) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || s.nc.IsClosed() || s.nc.IsDraining() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.js.DeleteConsumer(ctx, s.cfg.streamName, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Debug("jetstream: delete consumer", "consumer", info.Name, "err", err)
	}
}

// directBatch is how many messages one direct get request asks for.
const directBatch = 1000

// directGetRequest is the body of a batched direct get
// ($JS.API.DIRECT.GET.<stream>).
type directGetRequest struct {
	Seq     uint64 `json:"seq"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// directProbes is how many messages ReadCase reads one by one, with single
// direct gets, after a head it knows, before it asks for the rest in
// batches: reading a case the cache holds usually finds nothing new, and a
// single get says so without the cost of a batch (see directRead).
const directProbes = 4

// directRead calls fn for the messages of subject subj from stream sequence
// start on: first up to probes messages with single direct gets, then the
// rest with batched direct gets.
//
// A single get (next_by_subj, no batch) is answered with the subject's
// first message from start on, or a 404 when there is none; the server
// finds it from its per-subject index (the subject's last sequence per
// message block), so asking after the last message costs no message read.
// A batch is answered with the messages (each with a Nats-Sequence header),
// then an end-of-batch status (204) giving how many are left
// (Nats-Num-Pending), or with a 404 when there is none; to answer it, the
// server first counts the subject's messages from start on, which from the
// middle of a message block means loading and checking the whole block
// (8 MB), then evicting it: about 1.7 ms of CPU under concurrent reads,
// against a few tens of microseconds for a single get that finds nothing.
// Both are read under the stream's read lock, so a batch never shows half
// of a concurrent append; a message is stored whole in any case.
func (s *Store) directRead(ctx context.Context, subj string, start uint64, probes int, fn func(seq uint64, header nats.Header, data []byte) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	apiSubj := "$JS.API.DIRECT.GET." + s.cfg.streamName
	for range probes {
		body, _ := json.Marshal(directGetRequest{Seq: start, NextFor: subj})
		found, seq, err := s.directOne(ctx, apiSubj, body, fn)
		if err != nil || !found {
			return err
		}
		start = seq + 1
	}
	for {
		body, _ := json.Marshal(directGetRequest{Seq: start, NextFor: subj, Batch: directBatch})
		more, next, err := s.directBatch(ctx, apiSubj, body, fn)
		if err != nil || !more {
			return err
		}
		start = next
	}
}

// directOne sends one single direct get and reads its answer: a message,
// given to fn (found), or none.
func (s *Store) directOne(ctx context.Context, apiSubj string, body []byte, fn func(uint64, nats.Header, []byte) error) (found bool, seq uint64, err error) {
	reply, msgs, done := s.replies.open(1) // one answer
	defer done()
	if err := s.nc.PublishRequest(apiSubj, reply, body); err != nil {
		return false, 0, unavailable("direct get", err)
	}
	m, err := receive(ctx, msgs, s.closed)
	if err != nil {
		return false, 0, unavailable("direct get", err)
	}
	switch status := m.Header.Get("Status"); status {
	case "":
		seq, err := deliverDirect(m, fn)
		if err != nil {
			return false, 0, err
		}
		return true, seq, nil
	case "404": // no message from there on
		return false, 0, nil
	case "503":
		return false, 0, unavailable("direct get", nats.ErrNoResponders)
	default:
		return false, 0, unavailable("direct get", fmt.Errorf("status %s %s", status, m.Header.Get("Description")))
	}
}

// deliverDirect hands a message of a direct get's answer to fn and returns
// its stream sequence.
func deliverDirect(m *nats.Msg, fn func(uint64, nats.Header, []byte) error) (uint64, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("jetstream: direct get: bad %s header %q", jetstream.SequenceHeader, m.Header.Get(jetstream.SequenceHeader))
	}
	return seq, fn(seq, m.Header, m.Data)
}

// directBatch sends one batched direct get and reads its answer; more tells
// whether messages are left after next-1.
func (s *Store) directBatch(ctx context.Context, apiSubj string, body []byte, fn func(uint64, nats.Header, []byte) error) (more bool, next uint64, err error) {
	reply, msgs, done := s.replies.open(directBatchBuffer)
	defer done()
	if err := s.nc.PublishRequest(apiSubj, reply, body); err != nil {
		return false, 0, unavailable("direct get", err)
	}
	var last uint64
	for {
		m, err := receive(ctx, msgs, s.closed)
		if err != nil {
			return false, 0, unavailable("direct get", err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
			seq, err := deliverDirect(m, fn)
			if err != nil {
				return false, 0, err
			}
			last = seq
		case "204": // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return pending > 0 && last > 0, last + 1, nil
		case "404": // no (more) messages
			return false, 0, nil
		case "503":
			return false, 0, unavailable("direct get", nats.ErrNoResponders)
		default:
			return false, 0, unavailable("direct get", fmt.Errorf("status %s %s", status, m.Header.Get("Description")))
		}
	}
}

// defaultStallAfter is how long Follow waits without a message while the
// stream holds more before it gives up.
const defaultStallAfter = 30 * time.Second

// ErrFollowStalled: Follow's consumer delivered nothing for a while although
// the stream holds messages after the last one it delivered. Seen after a
// node loss in a cluster, when an ordered consumer keeps failing to
// recreate itself without reporting an error: the caller (the feed relay,
// the projection runner) starts Follow again from its checkpoint.
var ErrFollowStalled = errors.New("jetstream: follow stalled")

// stallWatch checks, every stallAfter, that Follow moved, or that it is
// busy in its handler, or that the stream holds nothing after the last
// message handled; otherwise it stops the iterator and marks it stalled.
type stallWatch struct {
	busy    atomic.Bool
	moved   atomic.Bool
	last    atomic.Uint64 // stream sequence of the last message handled
	stalled atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func (s *Store) watchStall(ctx context.Context, last uint64, stopIterator func()) *stallWatch {
	w := &stallWatch{done: make(chan struct{})}
	w.last.Store(last)
	ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		defer close(w.done)
		tick := time.NewTicker(s.cfg.stallAfter)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if w.moved.Swap(false) || w.busy.Load() {
				continue
			}
			info, err := s.stream.Info(ctx)
			if err != nil {
				continue // server away: the consumer's own reconnection deals with it
			}
			if info.State.LastSeq > w.last.Load() {
				s.log.Warn("jetstream: follow stalled, giving up so that it starts again", "last_handled", w.last.Load(), "stream_last", info.State.LastSeq)
				w.stalled.Store(true)
				stopIterator()
				return
			}
		}
	}()
	return w
}

func (w *stallWatch) handled(seq uint64) {
	w.last.Store(seq)
	w.moved.Store(true)
	w.busy.Store(false)
}

func (w *stallWatch) stop() {
	w.cancel()
	<-w.done
}
