package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/internal/settle"
	"github.com/maillage/maillage/domain"
)

// Store is the JetStream EventStore. It is safe for concurrent use.
type Store struct {
	cfg     config
	log     *slog.Logger
	srv     *server.Server // nil with an external server
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	closed  chan struct{} // closed when nc is closed
	replies *replyMux
	group   *groupCommit // nil without group commit (see groupcommit.go)

	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	heads map[domain.CaseID]caseHead // learnt case heads, see Append

	// soleWriter: every append to the events stream goes through this
	// store, since its server is embedded and listens to no port (nothing
	// outside the process can reach it). A learnt head is then the case's
	// last message until this store appends again, and ReadCase after it
	// need not ask the server. Except for the cases in uncertain: an append
	// whose outcome is unknown (a timeout, a cancelled context) may be
	// stored at any later time without this store learning it, so their
	// reads ask the server, for as long as the store is open. Past
	// maxUncertain such cases, soleWriter is turned off.
	soleWriter bool
	uncertain  map[domain.CaseID]struct{}
}

// caseHead is a case's version and the stream sequence of the message
// holding its last event: a state the case was in. When the case is still at
// version, seq is the last sequence of its subject.
type caseHead struct{ version, seq uint64 }

// maxHeads bounds the cache of case heads; it is emptied when full.
const maxHeads = 100_000

// maxUncertain bounds the cases whose reads ask the server after an append
// of unknown outcome; past it, all reads do.
const maxUncertain = 10_000

var _ domain.EventStore = (*Store)(nil)

// Open starts or connects to the NATS server, creates or updates the events
// stream and returns the store. Close it when done.
func Open(ctx context.Context, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: cfg.log, closed: make(chan struct{}), heads: make(map[domain.CaseID]caseHead),
		soleWriter: cfg.dataDir != "" && cfg.listen == "", uncertain: make(map[domain.CaseID]struct{})}

	natsOpts := []nats.Option{
		nats.Name("maillage"),
		nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(s.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { s.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	url := cfg.url
	if cfg.dataDir != "" {
		srv, err := startEmbedded(&s.cfg)
		if err != nil {
			return nil, err
		}
		s.srv = srv
		url = ""
		natsOpts = append(natsOpts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		s.shutdownServer()
		return nil, fmt.Errorf("jetstream: connect: %w: %w", domain.ErrStoreUnavailable, err)
	}
	s.nc = nc
	s.js, err = jetstream.New(nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if s.replies, err = newReplyMux(nc); err != nil {
		s.Close()
		return nil, unavailable("subscribe", err)
	}
	s.stream, err = settle.CreateOrUpdateStream(ctx, s.js, jetstream.StreamConfig{
		Name:        cfg.streamName,
		Description: "maillage case events: one message per append, one subject per case",
		Subjects:    []string{cfg.subjectPrefix + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.replicas,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		Discard:     jetstream.DiscardNew,
		Duplicates:  cfg.dedupWindow,
		AllowDirect: cfg.direct(),
		// Group commit publishes concurrent appends as atomic batches.
		AllowAtomicPublish: cfg.groupMin > 0,
	})
	if err != nil {
		s.Close()
		return nil, unavailable("create stream", err)
	}
	if cfg.groupMin > 0 {
		// A server without atomic batches (before 2.12) ignores the setting.
		if s.stream.CachedInfo().Config.AllowAtomicPublish {
			s.group = newGroupCommit(s, cfg.groupMin)
		} else {
			s.log.Info("jetstream: the server has no atomic batch publish: appends are published one by one")
		}
	}
	return s, nil
}

// Conn returns the store's NATS connection, for other components (relay,
// feeds) that use the same server. Do not close it: Close does.
func (s *Store) Conn() *nats.Conn { return s.nc }

// JetStream returns the JetStream context of the store's connection.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Server returns the embedded server, or nil with an external one.
func (s *Store) Server() *server.Server { return s.srv }

// StreamName returns the name of the events stream.
func (s *Store) StreamName() string { return s.cfg.streamName }

// Subject returns the subject holding the events of a case.
func (s *Store) Subject(id domain.CaseID) string { return s.cfg.subjectPrefix + "." + id.String() }

// Close drains the connection, then shuts the embedded server down and waits
// until it has. Calls in progress fail with ErrStoreUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.group != nil {
			s.group.close() // lets a batch in flight finish
		}
		if s.nc != nil {
			if err := s.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				s.closeErr = err
				s.nc.Close()
			}
			select {
			case <-s.closed:
			case <-time.After(35 * time.Second): // nats' drain timeout is 30s
				s.nc.Close()
			}
		}
		s.shutdownServer()
	})
	return s.closeErr
}

func (s *Store) shutdownServer() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// maxAppendAttempts bounds the publishes of one Append: a publish is only
// retried when the cached head of the case was stale.
const maxAppendAttempts = 8

// Append records events as one message on the case's subject, expecting the
// subject's last message to be the one that brought the case to
// expectedVersion. See the package documentation for the algorithm.
func (s *Store) Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	if err := domain.CheckBatch(expectedVersion, events); err != nil {
		return domain.AppendResult{}, err
	}
	n := len(events)
	if n > MaxBatch {
		return domain.AppendResult{}, fmt.Errorf("%w: %d events, at most %d in one append", domain.ErrInvalidBatch, n, MaxBatch)
	}
	id := events[0].CaseID
	version := expectedVersion + uint64(n)
	data, err := encodeEvents(s.cfg.format, events)
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("%w: %w", domain.ErrInvalidBatch, err)
	}
	msg := nats.NewMsg(s.Subject(id))
	msg.Data = data
	msg.Header.Set(HeaderCase, id.String())
	msg.Header.Set(HeaderFirstSeq, strconv.FormatUint(expectedVersion+1, 10))
	msg.Header.Set(HeaderVersion, strconv.FormatUint(version, 10))
	msg.Header.Set(HeaderFormat, s.cfg.format)
	if size := int64(len(data) + 512); size > s.nc.MaxPayload() {
		return domain.AppendResult{}, fmt.Errorf("%w: %d bytes, the server takes at most %d in one append", domain.ErrInvalidBatch, size, s.nc.MaxPayload())
	}

	// Every case was once empty: (0, 0) is a true head to start a new case
	// from without asking the server; if the case exists, the publish fails
	// its check and the head is read then.
	head, cached := s.cachedHead(id)
	fresh := false
	if !cached && expectedVersion > 0 {
		if head, err = s.lastHead(ctx, id); err != nil {
			return domain.AppendResult{}, err
		}
		fresh = true
	}
	for attempt := 1; ; attempt++ {
		if head.version != expectedVersion {
			if head.version < expectedVersion && !fresh {
				// The cache may be behind (another process appended).
				if head, err = s.lastHead(ctx, id); err != nil {
					return domain.AppendResult{}, err
				}
				fresh = true
				continue
			}
			return s.notAtExpected(ctx, expectedVersion, events, head.version)
		}
		if attempt > maxAppendAttempts {
			return domain.AppendResult{}, fmt.Errorf("%w: case %s: the last message of its subject keeps changing", domain.ErrVersionConflict, id)
		}
		ack, err := s.publish(ctx, id, msg, events[0].ID.String(), expectedVersion, head.seq, version)
		switch {
		case err == nil && ack.Duplicate:
			return s.duplicateOf(ctx, ack.Sequence, expectedVersion, events)
		case err == nil:
			s.learn(id, caseHead{version: version, seq: ack.Sequence})
			return domain.AppendResult{Version: version, Position: EncodePosition(ack.Sequence, n-1)}, nil
		case isWrongLastSequence(err) || errors.Is(err, errStaleHead):
			// Someone appended since the head was learnt.
			if head, err = s.lastHead(ctx, id); err != nil {
				return domain.AppendResult{}, err
			}
			fresh = true
		case errors.Is(err, nats.ErrMaxPayload):
			return domain.AppendResult{}, fmt.Errorf("%w: %w", domain.ErrInvalidBatch, err)
		default:
			// Stored or not, nobody knows, now or later.
			s.markUncertain(id)
			return domain.AppendResult{}, unavailable("append", err)
		}
	}
}

// publish stores the message of an append expecting the subject's last
// sequence to be expectSeq: through group commit when on, else alone.
func (s *Store) publish(ctx context.Context, id domain.CaseID, msg *nats.Msg, msgID string, expected, expectSeq, version uint64) (*jetstream.PubAck, error) {
	if s.group != nil {
		return s.group.publish(ctx, id, msg, msgID, expected, expectSeq, version)
	}
	return s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequencePerSubject(expectSeq))
}

// notAtExpected settles an append whose case is not at the expected version:
// the batch may have been recorded already (a retry), or reuse recorded ids,
// or the case moved on.
func (s *Store) notAtExpected(ctx context.Context, expectedVersion uint64, events []domain.Event, actual uint64) (domain.AppendResult, error) {
	id := events[0].CaseID
	if actual > expectedVersion {
		recorded, err := s.ReadCase(ctx, id, expectedVersion)
		if err != nil {
			return domain.AppendResult{}, err
		}
		if res, ok, err := domain.MatchRecorded(expectedVersion, events, recorded); ok || err != nil {
			return res, err
		}
	}
	return domain.AppendResult{}, fmt.Errorf("%w: case %s is at version %d, expected %d", domain.ErrVersionConflict, id, actual, expectedVersion)
}

// duplicateOf settles a publish the server dropped as a duplicate of the
// message at seq (same Nats-Msg-Id, the first event's id, within the
// de-duplication window): the same batch is the original result, anything
// else reuses a recorded id.
func (s *Store) duplicateOf(ctx context.Context, seq, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	m, err := s.stream.GetMsg(ctx, seq)
	if err != nil {
		return domain.AppendResult{}, unavailable("read duplicate", err)
	}
	recorded, err := DecodeMsg(seq, m.Header, m.Data)
	if err != nil {
		return domain.AppendResult{}, err
	}
	if m.Subject == s.Subject(events[0].CaseID) && recorded[0].Sequence == expectedVersion+1 {
		if res, ok, err := domain.MatchRecorded(expectedVersion, events, recorded); ok || err != nil {
			return res, err
		}
	}
	return domain.AppendResult{}, fmt.Errorf("%w: event %s is recorded in case %s at sequence %d",
		domain.ErrIdempotencyMismatch, events[0].ID, recorded[0].CaseID, recorded[0].Sequence)
}

func (s *Store) cachedHead(id domain.CaseID) (caseHead, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.heads[id]
	return h, ok
}

// markUncertain records that an append to the case may be stored without
// this store knowing: its reads ask the server from now on.
func (s *Store) markUncertain(id domain.CaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.uncertain) >= maxUncertain {
		s.soleWriter = false
		return
	}
	s.uncertain[id] = struct{}{}
}

// knowsLast returns the case's head when the store knows it to be the last
// message of the case without asking the server: as sole writer, once it
// learnt one, unless an append to the case had an unknown outcome.
func (s *Store) knowsLast(id domain.CaseID) (caseHead, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.soleWriter {
		return caseHead{}, false
	}
	if _, ok := s.uncertain[id]; ok {
		return caseHead{}, false
	}
	h, ok := s.heads[id]
	return h, ok
}

// learn records a state the case was in, if it is newer than the known one.
func (s *Store) learn(id domain.CaseID, h caseHead) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.heads[id]; ok && old.version >= h.version {
		return
	}
	if len(s.heads) >= maxHeads {
		clear(s.heads)
	}
	s.heads[id] = h
}

// lastHead asks the server for the last message of the case's subject.
func (s *Store) lastHead(ctx context.Context, id domain.CaseID) (caseHead, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, s.Subject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return caseHead{}, nil
	}
	if err != nil {
		return caseHead{}, unavailable("read case head", err)
	}
	v, err := msgVersion(m.Header)
	if err != nil {
		return caseHead{}, fmt.Errorf("case %s, message %d: %w", id, m.Sequence, err)
	}
	h := caseHead{version: v, seq: m.Sequence}
	s.learn(id, h)
	return h, nil
}

// isWrongLastSequence reports whether a publish failed its expected last
// sequence check (code 10071, or 10164 on replicated streams).
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// unavailable wraps a failure to reach or use the server as
// domain.ErrStoreUnavailable, keeping the cause.
func unavailable(op string, err error) error {
	return fmt.Errorf("jetstream: %s: %w: %w", op, domain.ErrStoreUnavailable, err)
}
