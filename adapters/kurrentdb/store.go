package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Store is the KurrentDB EventStore. It is safe for concurrent use.
type Store struct {
	cfg    config
	log    *slog.Logger
	done   chan struct{}   // closed by Close
	ctx    context.Context // cancelled by Close: ends the calls in progress
	cancel context.CancelFunc
	calls  sync.WaitGroup // calls using the client, which Close waits for

	mu     sync.Mutex
	client *esdb.Client
	closed bool
}

var _ domain.EventStore = (*Store)(nil)

// errClosed is returned by calls on a closed store.
var errClosed = fmt.Errorf("kurrentdb: %w: the store is closed", domain.ErrStoreUnavailable)

// Open connects to KurrentDB and checks that $all can be read. Close the
// store when done. It fails with domain.ErrStoreUnavailable when the server
// cannot be reached or refuses the credentials.
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
	cfg.esdb.Logger = clientLogger(cfg.log)
	client, err := esdb.NewClient(cfg.esdb)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: %w", err)
	}
	s := &Store{cfg: cfg, log: cfg.log, done: make(chan struct{}), client: client}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if _, _, err := s.lastPosition(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close cancels the calls in progress (Follow included: they fail with
// domain.ErrStoreUnavailable), waits for them to let go of the client, then
// closes the connection. The client must not be closed while a call uses it:
// it would send on the channel Close closes.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.cancel()
	s.calls.Wait()
	return s.client.Close()
}

// Stream returns the name of the stream holding the events of a case.
func (s *Store) Stream(id domain.CaseID) string { return s.cfg.prefix + id.String() }

// acquire returns the current client for a call, and the function to call
// once the call no longer uses it (its reads included: a read's Recv may
// use the client). ctx is ctx ended by Close too.
func (s *Store) acquire(ctx context.Context) (*esdb.Client, context.Context, func(), error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, nil, errClosed
	}
	s.calls.Add(1)
	c := s.client
	s.mu.Unlock()
	ctx, cancel := s.bound(ctx)
	return c, ctx, func() { cancel(); s.calls.Done() }, nil
}

// bound returns ctx, also cancelled by Close.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// renew replaces a client that closed itself: the client gives up for good
// when its discovery of the server fails (about a second of attempts), so a
// server down for longer would leave the store unusable after it is back.
// The old client is not closed: it has given up already, and closing it
// while calls still hold it is unsafe.
func (s *Store) renew(old *esdb.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.client != old {
		return
	}
	c, err := esdb.NewClient(s.cfg.esdb)
	if err != nil {
		s.log.Error("kurrentdb: new client", "err", err)
		return
	}
	s.client = c
	s.log.Info("kurrentdb: new client after the previous one gave up reaching the server")
}

func (s *Store) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Append records events as one KurrentDB append to the case's stream,
// expecting the stream at revision expectedVersion-1 (no stream for a new
// case), then settles what the append did by reading the case back. See the
// package documentation.
func (s *Store) Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	if err := domain.CheckBatch(expectedVersion, events); err != nil {
		return domain.AppendResult{}, err
	}
	if len(events) > MaxBatch {
		return domain.AppendResult{}, fmt.Errorf("%w: %d events, at most %d in one append", domain.ErrInvalidBatch, len(events), MaxBatch)
	}
	attempt := uuid.New()
	data := make([]esdb.EventData, len(events))
	for i, e := range events {
		d, err := encodeEvent(e, expectedVersion+1, attempt)
		if err != nil {
			return domain.AppendResult{}, fmt.Errorf("%w: %w", domain.ErrInvalidBatch, err)
		}
		data[i] = d
	}
	c, cctx, release, err := s.acquire(ctx)
	if err != nil {
		return domain.AppendResult{}, err
	}
	var expected esdb.ExpectedRevision = esdb.NoStream{}
	if expectedVersion > 0 {
		expected = esdb.Revision(expectedVersion - 1)
	}
	_, err = c.AppendToStream(cctx, s.Stream(events[0].CaseID), esdb.AppendToStreamOptions{ExpectedRevision: expected, RequiresLeader: true}, data...)
	release()
	if err != nil && !isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
		return domain.AppendResult{}, s.fail(ctx, "append", c, err)
	}
	if err != nil {
		attempt = uuid.Nil // nothing was written by this call
	}
	return s.settle(ctx, expectedVersion, events, attempt)
}

// settle reads what the case holds after expectedVersion once the server
// answered an append: events written by this call (attempt) are a new
// append; the batch written by an earlier call (the server answers a retry
// at the same place as a success, or a conflict when the case moved on) is
// the original result with Duplicate set; the batch's ids with other content
// is ErrIdempotencyMismatch; anything else is ErrVersionConflict.
func (s *Store) settle(ctx context.Context, expectedVersion uint64, events []domain.Event, attempt uuid.UUID) (domain.AppendResult, error) {
	n := len(events)
	id := events[0].CaseID
	limit := 0 // after a conflict, the whole rest of the case: a batch id may be anywhere
	if attempt != uuid.Nil {
		limit = n
	}
	recorded, err := s.read(ctx, id, expectedVersion, limit)
	if err != nil {
		return domain.AppendResult{}, err
	}
	if attempt != uuid.Nil && len(recorded) == n && recorded[n-1].attempt == attempt && recorded[n-1].ID == events[n-1].ID {
		return domain.AppendResult{Version: expectedVersion + uint64(n), Position: recorded[n-1].Position}, nil
	}
	if res, ok, err := domain.MatchRecorded(expectedVersion, events, eventsOf(recorded)); ok || err != nil {
		return res, err
	}
	if attempt != uuid.Nil {
		// The server said written, the stream (read from the leader) does not
		// hold the batch: the outcome is unknown; a retry settles it.
		return domain.AppendResult{}, fmt.Errorf("kurrentdb: append to case %s: %w: the server acknowledged events the case does not hold", id, domain.ErrStoreUnavailable)
	}
	return domain.AppendResult{}, fmt.Errorf("%w: case %s is not at version %d", domain.ErrVersionConflict, id, expectedVersion)
}

// ReadCase returns the events of a case after a sequence, read from its
// stream (from the leader), page by page.
func (s *Store) ReadCase(ctx context.Context, id domain.CaseID, after uint64) ([]domain.Event, error) {
	recorded, err := s.read(ctx, id, after, 0)
	if err != nil {
		return nil, err
	}
	return eventsOf(recorded), nil
}

// eventsOf returns the domain events of stored events.
func eventsOf(recorded []stored) []domain.Event {
	events := make([]domain.Event, len(recorded))
	for i, r := range recorded {
		events[i] = r.Event
	}
	return events
}

// read returns the events of a case after a sequence, at most limit of
// them (0 for all).
func (s *Store) read(ctx context.Context, id domain.CaseID, after uint64, limit int) ([]stored, error) {
	c, cctx, release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	stream := s.Stream(id)
	var out []stored
	for {
		page := s.cfg.pageSize
		if limit > 0 {
			page = min(page, limit-len(out))
		}
		from := after + uint64(len(out)) // the revision of sequence n+1 is n
		rs, err := c.ReadStream(cctx, stream, esdb.ReadStreamOptions{From: esdb.Revision(from), RequiresLeader: true}, uint64(page))
		if err != nil {
			return nil, s.fail(ctx, "read case", c, err)
		}
		got, err := s.drain(ctx, c, rs, &out)
		rs.Close()
		if err != nil {
			return nil, err
		}
		if got < page || limit > 0 && len(out) >= limit {
			return out, nil
		}
	}
}

// drain appends the events of a stream read to out and returns how many it
// read.
func (s *Store) drain(ctx context.Context, c *esdb.Client, rs *esdb.ReadStream, out *[]stored) (int, error) {
	n := 0
	for {
		re, err := rs.Recv()
		switch {
		case errors.Is(err, io.EOF), isCode(err, esdb.ErrorCodeResourceNotFound):
			return n, nil // the end, or a case without events
		case err != nil:
			return n, s.fail(ctx, "read case", c, err)
		}
		e, err := decodeEvent(s.cfg.prefix, re.OriginalEvent())
		if err != nil {
			return n, err
		}
		*out = append(*out, e)
		n++
	}
}
