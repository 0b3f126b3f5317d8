package jetstream

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

var quiet = slog.New(slog.DiscardHandler)

// embeddedOpener opens stores on an embedded server in a fresh directory,
// with a 1s de-duplication window; Restart closes the store and its server
// and opens them again on the same directory.
func embeddedOpener(extra ...Option) storetest.Opener {
	return func(t *testing.T) storetest.Harness {
		dir := t.TempDir()
		const window = time.Second
		opts := append([]Option{WithEmbedded(dir), WithDedupWindow(window), WithLogger(quiet)}, extra...)
		open := func(t *testing.T) *Store {
			t.Helper()
			s, err := Open(t.Context(), opts...)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return s
		}
		current := open(t)
		t.Cleanup(func() {
			if err := current.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return storetest.Harness{
			Store: current,
			Restart: func(t *testing.T) domain.EventStore {
				if err := current.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				current = open(t)
				return current
			},
			DedupWindow: window,
		}
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, embeddedOpener())
}

// TestConformanceWithoutDirectGet runs the suite reading as on replicated
// streams: consumers and the leader's message API instead of direct gets.
func TestConformanceWithoutDirectGet(t *testing.T) {
	storetest.Run(t, embeddedOpener(withoutDirectGet()))
}

// TestConformanceJSON runs the suite writing JSON bodies.
func TestConformanceJSON(t *testing.T) {
	storetest.Run(t, embeddedOpener(WithFormat(FormatJSON)))
}

// TestMixedFormats reads a stream holding messages of both formats.
func TestMixedFormats(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	c := storetest.NewCase()
	var want []domain.Event
	for i, format := range []string{FormatJSON, FormatBinary, FormatJSON} {
		s, err := Open(ctx, WithEmbedded(dir), WithLogger(quiet), WithFormat(format))
		if err != nil {
			t.Fatal(err)
		}
		events := c.Next(1 + i)
		if _, err := s.Append(ctx, c.Version, events); err != nil {
			t.Fatal(err)
		}
		c.Commit(events)
		want = append(want, events...)
		got, err := s.ReadCase(ctx, c.ID, 0)
		if err != nil || len(got) != len(want) {
			t.Fatalf("ReadCase: %d events, %v", len(got), err)
		}
		for i := range want {
			if d := storetest.DiffEvent(want[i], got[i]); d != "" {
				t.Fatal(d)
			}
		}
		s.Close()
	}
}

// TestCloseWhileFollowing checks that Close ends a Follow in progress.
func TestCloseWhileFollowing(t *testing.T) {
	s, err := Open(t.Context(), WithEmbedded(t.TempDir()), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan domain.Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(context.Background(), 0, func(e domain.Event) error { got <- e; return nil })
	}()
	c := storetest.NewCase()
	if _, err := s.Append(t.Context(), 0, c.Next(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("Follow did not deliver the event")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, domain.ErrStoreUnavailable) {
			t.Fatalf("Follow after Close: %v, want ErrStoreUnavailable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Follow did not return after Close")
	}
	if _, err := s.Append(t.Context(), 1, storetest.NewEvents(c.ID, 1, domain.Hash{1}, 1)); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("append after Close: %v, want ErrStoreUnavailable", err)
	}
}

// startServer starts a nats-server on a random port, as an external server.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func openURL(t *testing.T, url string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), append([]Option{WithURL(url), WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestExternalServer(t *testing.T) {
	srv := startServer(t)
	s := openURL(t, srv.ClientURL())
	if s.Server() != nil {
		t.Fatal("Server() of a store on an external server is not nil")
	}
	ctx := t.Context()
	c := storetest.NewCase()
	events := c.Next(3)
	res, err := s.Append(ctx, 0, events)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 3 || res.Position != EncodePosition(1, 2) {
		t.Fatalf("append: got %+v, want version 3 at position 1<<16|2", res)
	}
	got, err := s.ReadCase(ctx, c.ID, 0)
	if err != nil || len(got) != 3 {
		t.Fatalf("ReadCase: %d events, %v", len(got), err)
	}
	for i := range events {
		if d := storetest.DiffEvent(events[i], got[i]); d != "" {
			t.Fatal(d)
		}
		if got[i].Position != EncodePosition(1, i) {
			t.Fatalf("event %d: position %d, want %d", i, got[i].Position, EncodePosition(1, i))
		}
	}
}

// TestTwoStores checks two stores (two processes) appending to the same
// case: each one's cached case head goes stale.
func TestTwoStores(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	a, b := openURL(t, srv.ClientURL()), openURL(t, srv.ClientURL())
	c := storetest.NewCase()
	mustAppend := func(s *Store, n int) {
		t.Helper()
		events := c.Next(n)
		res, err := s.Append(ctx, c.Version, events)
		if err != nil || res.Version != c.Version+uint64(n) || res.Duplicate {
			t.Fatalf("append at %d: %+v, %v", c.Version, res, err)
		}
		c.Commit(events)
	}
	mustAppend(a, 1) // a learns (1, seq 1)
	mustAppend(b, 2) // b reads the head: (1, 1), appends (3, 2)
	mustAppend(a, 1) // a's cache says 1, expected 3: refresh, then append
	// b's cache says 3 = expected, but the case is at 4: the publish fails
	// and b finds the conflict.
	stale := storetest.NewEvents(c.ID, 3, domain.Hash{1}, 1)
	if _, err := b.Append(ctx, 3, stale); !errors.Is(err, domain.ErrVersionConflict) {
		t.Fatalf("append at a stale version: %v, want ErrVersionConflict", err)
	}
	mustAppend(b, 1)
	// a retries b's last batch (same ids): a duplicate.
	events, err := a.ReadCase(ctx, c.ID, 4)
	if err != nil || len(events) != 1 {
		t.Fatalf("ReadCase: %d events, %v", len(events), err)
	}
	res, err := a.Append(ctx, 4, events)
	if err != nil || !res.Duplicate || res.Version != 5 || res.Position != events[0].Position {
		t.Fatalf("retry through another store: %+v, %v", res, err)
	}
	all, err := a.ReadCase(ctx, c.ID, 0)
	if err != nil || len(all) != 5 {
		t.Fatalf("ReadCase: %d events, %v", len(all), err)
	}
}

// TestExpectedLastSubjectSequenceZero checks the nats-server behaviour the
// store relies on: Nats-Expected-Last-Subject-Sequence 0 means "no message on
// this subject yet", and a stale value fails with code 10071 even when the
// message id is a duplicate (the check comes before de-duplication on a
// single server).
func TestExpectedLastSubjectSequenceZero(t *testing.T) {
	s, err := Open(t.Context(), WithEmbedded(t.TempDir()), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	subj := s.Subject(uuid.New())
	publish := func(id string, last uint64) (*jetstream.PubAck, error) {
		return s.JetStream().Publish(ctx, subj, []byte("x"), jetstream.WithMsgID(id), jetstream.WithExpectLastSequencePerSubject(last))
	}
	if _, err := s.JetStream().Publish(ctx, s.Subject(uuid.New()), []byte("other subject")); err != nil {
		t.Fatal(err)
	}
	ack, err := publish("a", 0)
	if err != nil {
		t.Fatalf("first message of a subject with expected last sequence 0: %v", err)
	}
	if _, err := publish("b", 0); !isWrongLastSequence(err) {
		t.Fatalf("second message with expected last sequence 0: %v, want wrong last sequence", err)
	}
	// A retry of the first message, same id and same stale expectation: the
	// sequence check fails first.
	if _, err := publish("a", 0); !isWrongLastSequence(err) {
		t.Fatalf("retry with a stale expectation: %v, want wrong last sequence", err)
	}
	// With the right expectation, the duplicate id is reported.
	dup, err := publish("a", ack.Sequence)
	if err != nil || !dup.Duplicate || dup.Sequence != ack.Sequence {
		t.Fatalf("duplicate id with the right expectation: %+v, %v", dup, err)
	}
}

// TestDuplicateAck covers an append the server drops as a duplicate of its
// first event's id: the same batch gives the original result, another batch
// reusing the id is a mismatch.
func TestDuplicateAck(t *testing.T) {
	s, err := Open(t.Context(), WithEmbedded(t.TempDir()), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	c := storetest.NewCase()
	events := c.Next(2)
	res, err := s.Append(ctx, 0, events)
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := SplitPosition(res.Position)
	got, err := s.duplicateOf(ctx, seq, 0, events)
	if err != nil || got != (domain.AppendResult{Version: 2, Position: res.Position, Duplicate: true}) {
		t.Fatalf("duplicate of the same batch: %+v, %v", got, err)
	}
	other := storetest.NewCase()
	reuse := other.Next(1)
	reuse[0].ID = events[0].ID
	if _, err := s.duplicateOf(ctx, seq, 0, reuse); !errors.Is(err, domain.ErrIdempotencyMismatch) {
		t.Fatalf("duplicate id in another case: %v", err)
	}
	// Through Append: the server drops the message as a duplicate.
	if _, err := s.Append(ctx, 0, reuse); !errors.Is(err, domain.ErrIdempotencyMismatch) {
		t.Fatalf("append reusing a recorded id in another case: %v", err)
	}
	if got, _ := s.ReadCase(ctx, other.ID, 0); len(got) != 0 {
		t.Fatalf("the reusing batch was recorded: %d events", len(got))
	}
}

func TestPositions(t *testing.T) {
	s, err := Open(t.Context(), WithEmbedded(t.TempDir()), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	a, b := storetest.NewCase(), storetest.NewCase()
	for _, step := range []struct {
		c *storetest.Case
		n int
	}{{a, 3}, {b, 1}, {a, 2}} {
		events := step.c.Next(step.n)
		if _, err := s.Append(ctx, step.c.Version, events); err != nil {
			t.Fatal(err)
		}
		step.c.Commit(events)
	}
	var got []domain.Position
	for e, err := range s.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Position)
	}
	want := []domain.Position{1<<16 | 0, 1<<16 | 1, 1<<16 | 2, 2 << 16, 3 << 16, 3<<16 | 1}
	if len(got) != len(want) {
		t.Fatalf("positions %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("positions %v, want %v", got, want)
		}
	}
	if seq, i := SplitPosition(3<<16 | 1); seq != 3 || i != 1 {
		t.Fatalf("SplitPosition: %d, %d", seq, i)
	}
}

func TestBatchLimits(t *testing.T) {
	s, err := Open(t.Context(), WithEmbedded(t.TempDir()), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id := uuid.New()
	big := make([]domain.Event, MaxBatch+1)
	for i := range big {
		big[i] = domain.Event{ID: uuid.New(), CaseID: id, Sequence: uint64(i) + 1}
	}
	if _, err := s.Append(t.Context(), 0, big); !errors.Is(err, domain.ErrInvalidBatch) {
		t.Fatalf("%d events: %v, want ErrInvalidBatch", len(big), err)
	}
	// Too many bytes for one message.
	huge := storetest.NewEvents(id, 0, domain.Hash{}, 1)
	huge[0].Payload = []byte(`"` + strings.Repeat("a", 2<<20) + `"`)
	if _, err := s.Append(t.Context(), 0, huge); !errors.Is(err, domain.ErrInvalidBatch) {
		t.Fatalf("a 2 MB event: %v, want ErrInvalidBatch", err)
	}
}

func TestUnavailable(t *testing.T) {
	srv := startServer(t)
	s := openURL(t, srv.ClientURL())
	c := storetest.NewCase()
	first := c.Next(1)
	if _, err := s.Append(t.Context(), 0, first); err != nil {
		t.Fatal(err)
	}
	c.Commit(first)
	srv.Shutdown()
	srv.WaitForShutdown()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := s.Append(ctx, 1, c.Next(1)); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("append with the server down: %v, want ErrStoreUnavailable", err)
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel2()
	if _, err := s.ReadCase(ctx2, c.ID, 0); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("ReadCase with the server down: %v, want ErrStoreUnavailable", err)
	}
	if _, err := Open(t.Context(), WithURL("nats://127.0.0.1:1"), WithLogger(quiet)); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("open without a server: %v, want ErrStoreUnavailable", err)
	}
}

func TestOptions(t *testing.T) {
	bad := map[string][]Option{
		"none":               nil,
		"both":               {WithEmbedded("x"), WithURL("nats://localhost")},
		"empty dir":          {WithEmbedded("")},
		"empty url":          {WithURL(" ")},
		"replicas 0":         {WithURL("nats://localhost"), WithReplicas(0)},
		"embedded replicas":  {WithEmbedded("x"), WithReplicas(3)},
		"short window":       {WithEmbedded("x"), WithDedupWindow(time.Millisecond)},
		"nil logger":         {WithEmbedded("x"), WithLogger(nil)},
		"stream name":        {WithEmbedded("x"), WithStreamName("a.b")},
		"prefix wildcard":    {WithEmbedded("x"), WithSubjectPrefix("a.*")},
		"prefix empty token": {WithEmbedded("x"), WithSubjectPrefix("a..b")},
		"listen external":    {WithURL("nats://localhost"), WithListen("127.0.0.1:0")},
		"listen bad":         {WithEmbedded("x"), WithListen("nope")},
		"unsynced external":  {WithURL("nats://localhost"), WithUnsyncedWrites()},
	}
	for name, opts := range bad {
		if s, err := Open(t.Context(), opts...); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
	// Custom names and a listener.
	s, err := Open(t.Context(), WithEmbedded(t.TempDir()), WithLogger(quiet), WithStreamName("EV"), WithSubjectPrefix("x.ev"), WithListen("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Server() == nil || s.Server().Addr() == nil {
		t.Fatal("embedded server without a listener")
	}
	if !s.Server().JetStreamConfig().SyncAlways {
		t.Fatal("embedded server without fsync on every write")
	}
	nc, err := nats.Connect(s.Server().ClientURL())
	if err != nil {
		t.Fatalf("connect over TCP: %v", err)
	}
	// Only the benchmarks' loading turns the fsync off, and it says so.
	unsynced, err := Open(t.Context(), WithEmbedded(t.TempDir()), WithLogger(quiet), WithUnsyncedWrites())
	if err != nil {
		t.Fatal(err)
	}
	if unsynced.Server().JetStreamConfig().SyncAlways {
		t.Error("WithUnsyncedWrites: the embedded server still fsyncs every write")
	}
	unsynced.Close()
	nc.Close()
	c := storetest.NewCase()
	if _, err := s.Append(t.Context(), 0, c.Next(1)); err != nil {
		t.Fatal(err)
	}
	info, err := s.JetStream().Stream(t.Context(), "EV")
	if err != nil || info.CachedInfo().State.Msgs != 1 || info.CachedInfo().Config.Subjects[0] != "x.ev.*" {
		t.Fatalf("stream EV: %v", err)
	}
}
