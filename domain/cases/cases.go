// Package cases is the application service of the write and read paths:
// it loads a case from the event store, decides a command with the domain
// rules, seals and appends the events with the expected version, and reads a
// case as one viewer may see it. It depends only on the domain and its
// EventStore port, so every adapter (HTTP, benchmarks, tests) records and
// reads cases the same way.
package cases

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

// Service records commands on cases and reads cases per viewer.
type Service struct {
	store   domain.EventStore
	now     func() time.Time
	rand    io.Reader
	log     *slog.Logger
	keys    personal.Keys // nil: events recorded as decided (see WithPersonalData)
	onErase []func(context.Context, domain.CaseID) error

	mu    sync.Mutex
	cases map[domain.CaseID]*caseEntry // cache of folded cases, refreshed from the store on each use
	limit int
}

// caseEntry caches a case's events and state; its mutex serialises commands
// on one case in this process (other processes are kept out by the store's
// optimistic concurrency).
type caseEntry struct {
	mu     sync.Mutex
	state  *domain.State
	events []domain.Event
	// fullViews[i], when set, is the JSON of events[i]'s full view, and
	// redactedViews the JSON of redacted views (see TimelineJSON); dropped
	// with the events.
	fullViews     [][]byte
	redactedViews map[redactedKey][]byte
	sizeHint      int // running mean of a full view's JSON length, to size answers
	used          time.Time
	synced        bool // read from the store at least once
	erased        bool // read again since its personal data was erased
}

// Option configures a Service.
type Option func(*Service) error

// WithClock sets the clock (tests set it to check time-bounded rules).
func WithClock(now func() time.Time) Option {
	return func(s *Service) error {
		if now == nil {
			return errors.New("cases: nil clock")
		}
		s.now = now
		return nil
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(s *Service) error {
		if l == nil {
			return errors.New("cases: nil logger")
		}
		s.log = l
		return nil
	}
}

// WithCacheSize bounds how many cases are kept folded in memory (default 4096).
func WithCacheSize(n int) Option {
	return func(s *Service) error {
		if n < 1 {
			return fmt.Errorf("cases: cache size %d: want at least 1", n)
		}
		s.limit = n
		return nil
	}
}

// New returns a service over store.
func New(store domain.EventStore, opts ...Option) (*Service, error) {
	s := &Service{store: store, now: time.Now, rand: rand.Reader, log: slog.New(slog.DiscardHandler),
		cases: map[domain.CaseID]*caseEntry{}, limit: 4096}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// Request is a command on a case with its transport-level guards.
type Request struct {
	CaseID  domain.CaseID
	Command domain.Command
	// IdempotencyKey, when set, makes retries safe: the event ids are
	// derived from it (and the case and actor), so a retried request records
	// nothing new and gets the original answer.
	IdempotencyKey string
	// IfMatch, when set, is the case version the caller decided on; a case
	// at another version gives ErrPreconditionFailed.
	IfMatch *uint64
}

// Result is what a recorded (or replayed) command gave.
type Result struct {
	CaseID   domain.CaseID
	Version  uint64          // the case's version after the command
	Position domain.Position // global position of the command's last event
	Events   []domain.Event  // the recorded events
	Replayed bool            // true when an earlier identical request had recorded them
}

// Errors of the service; domain refusals come as *domain.Error.
var (
	// ErrPreconditionFailed: If-Match named a version the case is not at.
	ErrPreconditionFailed = errors.New("case version does not match If-Match")
	// ErrNotFound: no such case, or the caller may not know of it
	// (domain.ErrNotFound).
	ErrNotFound = domain.ErrNotFound
	// ErrIdempotencyKeyReused: the key was used before for another request.
	ErrIdempotencyKeyReused = errors.New("idempotency key already used for another request")
)

// Record decides and appends a command. Outcomes: the Result; a
// *domain.Error refusal (nothing written); ErrPreconditionFailed;
// domain.ErrVersionConflict when the case kept moving (after one transparent
// retry); ErrIdempotencyKeyReused; a store error.
func (s *Service) Record(ctx context.Context, req Request) (Result, error) {
	if req.Command.Type == domain.CaseOpened && req.CaseID == uuid.Nil {
		return Result{}, domain.Invalid("caseId", "identifiant de dossier manquant")
	}
	entry := s.entry(req.CaseID)
	entry.mu.Lock()
	defer entry.mu.Unlock()
	// A case this process holds is decided on its cached state, without a
	// read from the store first (under load each read waits behind the
	// store's fsyncs). The cache may be behind when another process records
	// on the case: a successful append proves it was not (the store checks
	// the expected version), and any other outcome is answered only once a
	// refresh shows the decision was taken on the current state.
	fresh := !entry.synced
	if fresh {
		if err := s.refresh(ctx, req.CaseID, entry); err != nil {
			return Result{}, err
		}
	}
	retried := false
	for {
		res, err := s.try(ctx, req, entry)
		if err == nil {
			return res, nil
		}
		if !fresh {
			version := entry.state.Version
			if err := s.refresh(ctx, req.CaseID, entry); err != nil {
				return Result{}, err
			}
			fresh = true
			if entry.state.Version != version {
				continue // decided on a stale state: decide again on the current one
			}
		}
		if errors.Is(err, domain.ErrVersionConflict) && req.IfMatch == nil && !retried {
			retried = true // the command may still be valid on the new state: decide again, once
			if err := s.refresh(ctx, req.CaseID, entry); err != nil {
				return Result{}, err
			}
			continue
		}
		if errors.Is(err, domain.ErrVersionConflict) && req.IfMatch != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
		}
		if errors.Is(err, ErrNotFound) && entry.state.Version == 0 {
			s.forget(req.CaseID, entry) // commands on ids of no case fill nothing
		}
		return res, err
	}
}

func (s *Service) try(ctx context.Context, req Request, entry *caseEntry) (Result, error) {
	st := entry.state
	if req.Command.Type != domain.CaseOpened && !domain.MayKnow(st, commandViewer(req.Command)) {
		// Answered like an unknown case, so nobody learns a case exists.
		return Result{}, ErrNotFound
	}
	ids := s.eventIDs(req, 1)
	if req.IdempotencyKey != "" {
		if seq, ok := st.EventIDs[ids[0]]; ok {
			return s.replay(req, entry, seq)
		}
	}
	if req.IfMatch != nil && *req.IfMatch != st.Version {
		return Result{}, fmt.Errorf("%w: the case is at version %d, not %d", ErrPreconditionFailed, st.Version, *req.IfMatch)
	}
	now := s.now()
	decided, err := domain.Decide(st, req.Command, now)
	if de := (*domain.Error)(nil); errors.As(err, &de) {
		// The requester is told only what they may see of the reason.
		return Result{}, domain.TellRefusal(st, entry.events, commandViewer(req.Command), now, de)
	}
	if err != nil {
		return Result{}, err
	}
	if len(decided) != 1 {
		ids = s.eventIDs(req, len(decided))
	}
	salts := make([][]byte, len(decided))
	for i := range salts {
		salts[i] = make([]byte, 16)
		if _, err := io.ReadFull(s.rand, salts[i]); err != nil {
			return Result{}, fmt.Errorf("salt: %w", err)
		}
	}
	sealed, err := s.sealPersonal(ctx, req.CaseID, decided, ids)
	if err != nil {
		return Result{}, err
	}
	events := domain.Seal(st, sealed, ids, salts, now)
	ar, err := s.store.Append(ctx, st.Version, events)
	if err != nil {
		return Result{}, err
	}
	if ar.Duplicate {
		// Recorded by an earlier attempt whose answer was lost: read it back.
		if err := s.refresh(ctx, req.CaseID, entry); err != nil {
			return Result{}, err
		}
		return s.replay(req, entry, events[0].Sequence)
	}
	if len(events) == 1 {
		// The batch's position is its one event's: keep it as the store
		// will give it back, without reading it.
		e := personal.Opened(events[0], decided[0].Payload)
		e.Position, e.RecordedAt, e.OccurredAt = ar.Position, e.RecordedAt.Round(0), e.OccurredAt.Round(0)
		entry.state.Apply(e)
		entry.events = append(entry.events, e)
		return Result{CaseID: req.CaseID, Version: ar.Version, Position: ar.Position, Events: entry.events[len(entry.events)-1:]}, nil
	}
	// Append returns the last event's position only: read the batch back so
	// the cache and the answer carry every event's position.
	if err := s.refresh(ctx, req.CaseID, entry); err != nil {
		return Result{}, err
	}
	return Result{CaseID: req.CaseID, Version: ar.Version, Position: ar.Position,
		Events: entry.events[events[0].Sequence-1 : ar.Version]}, nil
}

// commandViewer is the command's author as the access policy knows it.
func commandViewer(c domain.Command) domain.Viewer {
	return domain.Viewer{Role: c.Role, Institution: c.Actor.Institution, FamilyMember: c.Actor.FamilyMember}
}

// replay answers a retried request with what its first attempt recorded:
// the events whose ids derive from the same key.
func (s *Service) replay(req Request, entry *caseEntry, firstSeq uint64) (Result, error) {
	first := entry.events[firstSeq-1]
	payload, err := json.Marshal(req.Command.Payload)
	if err != nil {
		return Result{}, err
	}
	if first.Type != req.Command.Type || string(first.Payload) != string(payload) {
		return Result{}, ErrIdempotencyKeyReused
	}
	last := firstSeq
	for n := 2; ; n++ {
		seq, ok := entry.state.EventIDs[s.eventIDs(req, n)[n-1]]
		if !ok {
			break
		}
		last = seq
	}
	evs := entry.events[firstSeq-1 : last]
	return Result{CaseID: req.CaseID, Version: last, Position: evs[len(evs)-1].Position, Events: evs, Replayed: true}, nil
}

// idNamespace roots the event ids derived from idempotency keys.
var idNamespace = uuid.MustParse("6f1c3a52-2b7e-4d0a-9a51-4c3e8f0b7d21")

// eventIDs returns n event ids: derived from the idempotency key, the case
// and the actor when a key is given (so that two callers using the same key
// do not collide), random otherwise.
func (s *Service) eventIDs(req Request, n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		if req.IdempotencyKey == "" {
			ids[i] = uuid.New()
			continue
		}
		a := req.Command.Actor
		name := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%d", req.CaseID, a.Institution, a.Professional, a.FamilyMember, req.IdempotencyKey, i)
		ids[i] = uuid.NewSHA1(idNamespace, []byte(name))
	}
	return ids
}

// entry returns the cache entry of a case, evicting the least recently used
// one when the cache is full.
func (s *Service) entry(id domain.CaseID) *caseEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cases[id]
	if !ok {
		if len(s.cases) >= s.limit {
			s.evictLocked()
		}
		e = &caseEntry{state: domain.NewState(id)}
		s.cases[id] = e
	}
	e.used = s.now()
	return e
}

// forget drops the cache entry of an id that holds no case, so that asking
// for unknown ids fills nothing. The caller holds entry.mu.
func (s *Service) forget(id domain.CaseID, entry *caseEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cases[id] == entry {
		delete(s.cases, id)
	}
}

func (s *Service) evictLocked() {
	var oldest domain.CaseID
	var at time.Time
	for id, e := range s.cases {
		if at.IsZero() || e.used.Before(at) {
			oldest, at = id, e.used
		}
	}
	delete(s.cases, oldest)
}

// refresh brings a cached case up to date with the store. The caller holds
// entry.mu.
func (s *Service) refresh(ctx context.Context, id domain.CaseID, entry *caseEntry) error {
	evs, err := s.store.ReadCase(ctx, id, entry.state.Version)
	if err != nil {
		return err
	}
	// Grown once to its exact size: growing by appends one by one leaves up
	// to as much capacity unused as is used, for as long as the case is held.
	entry.events = slices.Grow(entry.events, len(evs))
	for _, e := range evs {
		if e.Sequence != entry.state.Version+1 {
			return fmt.Errorf("case %s: store returned sequence %d after %d", id, e.Sequence, entry.state.Version)
		}
		e = ownBytes(e)
		entry.state.Apply(e)
		entry.events = append(entry.events, e)
	}
	entry.synced = true
	return nil
}

// ownBytes gives the event's byte fields (salt, payload, sealed payload)
// memory of their own, in one allocation. A store may return them as slices
// of a larger buffer (the JetStream adapter decodes a message's events in
// place, so they share its body with everything else it held): held for as
// long as the case is cached, such a slice keeps the whole buffer alive.
func ownBytes(e domain.Event) domain.Event {
	n := len(e.Salt) + len(e.Payload) + len(e.SealedPayload)
	if n == 0 {
		return e
	}
	buf := make([]byte, 0, n)
	own := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	e.Salt, e.Payload, e.SealedPayload = own(e.Salt), own(e.Payload), own(e.SealedPayload)
	return e
}

// Load returns a case's events, as recorded now, and a state folded from
// them that the caller owns. The events must not be modified.
func (s *Service) Load(ctx context.Context, id domain.CaseID) (*domain.State, []domain.Event, error) {
	entry := s.entry(id)
	entry.mu.Lock()
	if err := s.dropIfErased(ctx, id, entry); err != nil {
		entry.mu.Unlock()
		return nil, nil, err
	}
	if err := s.refresh(ctx, id, entry); err != nil {
		entry.mu.Unlock()
		return nil, nil, err
	}
	// Capacity capped: a later append to the cache never writes into what
	// the caller holds.
	events := entry.events[:len(entry.events):len(entry.events)]
	entry.mu.Unlock()
	return domain.Fold(id, events), events, nil
}
