package kurrentdbtest_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/kurrentdb/kurrentdbtest"
)

// client connects the KurrentDB client to the double.
func client(t *testing.T, d *kurrentdbtest.TestDouble) *esdb.Client {
	t.Helper()
	conf, err := esdb.ParseConnectionString(d.URL())
	if err != nil {
		t.Fatal(err)
	}
	conf.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func event(id uuid.UUID, data string) esdb.EventData {
	return esdb.EventData{EventID: id, EventType: "Tested", ContentType: esdb.ContentTypeJson, Data: []byte(data)}
}

func readStream(t *testing.T, c *esdb.Client, stream string, from uint64) ([]*esdb.RecordedEvent, error) {
	t.Helper()
	rs, err := c.ReadStream(t.Context(), stream, esdb.ReadStreamOptions{From: esdb.Revision(from)}, 100)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e.OriginalEvent())
	}
}

func isCode(err error, code esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == code
}

// TestTheDoubleBehavesAsKurrentDB checks, through the real client, the
// server behaviour adapters/kurrentdb relies on.
func TestTheDoubleBehavesAsKurrentDB(t *testing.T) {
	d := kurrentdbtest.Start(t)
	c := client(t, d)
	ctx := t.Context()
	a, b, x := uuid.New(), uuid.New(), uuid.New()

	if _, err := readStream(t, c, "s-1", 0); !isCode(err, esdb.ErrorCodeResourceNotFound) {
		t.Fatalf("read of an unknown stream: %v, want ResourceNotFound", err)
	}
	w, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, event(a, `{"n":1}`), event(b, `{"n":2}`))
	if err != nil || w.NextExpectedVersion != 1 {
		t.Fatalf("append: %+v, %v", w, err)
	}
	got, err := readStream(t, c, "s-1", 0)
	if err != nil || len(got) != 2 || got[0].EventID != a || got[1].EventNumber != 1 {
		t.Fatalf("read: %d events, %v", len(got), err)
	}
	if got[0].Position.Commit == 0 || got[0].Position.Commit != got[0].Position.Prepare || got[1].Position.Commit <= got[0].Position.Commit {
		t.Fatalf("positions %+v %+v: want commit = prepare, growing", got[0].Position, got[1].Position)
	}
	if w.CommitPosition != got[1].Position.Commit {
		t.Fatalf("append answered position %d, the last event is at %d", w.CommitPosition, got[1].Position.Commit)
	}

	// The same ids at the same place: success, nothing written, whatever
	// the content.
	again, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, event(a, `{"other":1}`), event(b, `{}`))
	if err != nil || again.CommitPosition != w.CommitPosition {
		t.Fatalf("idempotent append: %+v, %v; want the original position %d", again, err, w.CommitPosition)
	}
	// Ids matching in part, new ids, a stale or future revision: conflicts.
	for name, tc := range map[string]struct {
		expected esdb.ExpectedRevision
		events   []esdb.EventData
	}{
		"part":   {esdb.NoStream{}, []esdb.EventData{event(a, `{}`), event(x, `{}`)}},
		"new":    {esdb.Revision(0), []esdb.EventData{event(x, `{}`)}},
		"future": {esdb.Revision(5), []esdb.EventData{event(x, `{}`)}},
		"exists": {esdb.StreamExists{}, nil},
	} {
		if name == "exists" {
			if _, err := c.AppendToStream(ctx, "s-2", esdb.AppendToStreamOptions{ExpectedRevision: esdb.StreamExists{}}, event(x, `{}`)); !isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
				t.Fatalf("%s: %v, want WrongExpectedVersion", name, err)
			}
			continue
		}
		if _, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: tc.expected}, tc.events...); !isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
			t.Fatalf("%s: %v, want WrongExpectedVersion", name, err)
		}
	}
	if got, _ := readStream(t, c, "s-1", 0); len(got) != 2 || string(got[0].Data) != `{"n":1}` {
		t.Fatalf("after refused appends: %d events", len(got))
	}

	// $all cannot be read from the middle of a record.
	rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{From: esdb.Position{Commit: got[0].Position.Commit + 1, Prepare: got[0].Position.Commit + 1}}, 10)
	if err == nil {
		_, err = rs.Recv()
		rs.Close()
	}
	if err == nil {
		t.Fatal("read of $all from the middle of a record: no error")
	}

	// A filtered subscription from a record: the records after it that pass
	// the filter, checkpoints, then new records.
	for range 40 {
		if _, err := c.AppendToStream(ctx, "noise", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, event(uuid.New(), `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := c.SubscribeToAll(sctx, esdb.SubscribeToAllOptions{From: got[0].Position,
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"s-"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := c.AppendToStream(ctx, "s-3", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, event(x, `{}`)); err != nil {
		t.Fatal(err)
	}
	var seen []uuid.UUID
	checkpoints := 0
	for len(seen) < 2 {
		ev := sub.Recv()
		switch {
		case ev.EventAppeared != nil:
			seen = append(seen, ev.EventAppeared.OriginalEvent().EventID)
		case ev.CheckPointReached != nil:
			checkpoints++
		case ev.SubscriptionDropped != nil:
			t.Fatalf("dropped: %v", ev.SubscriptionDropped.Error)
		}
	}
	if seen[0] != b || seen[1] != x || checkpoints == 0 {
		t.Fatalf("subscription: %v with %d checkpoints, want %s then %s and a checkpoint", seen, checkpoints, b, x)
	}

	// Storage outlives a restart, which drops subscriptions.
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	for ev := sub.Recv(); ev.SubscriptionDropped == nil; ev = sub.Recv() {
		if ev.EventAppeared != nil {
			t.Fatalf("event after the restart on the old subscription")
		}
	}
	var after []*esdb.RecordedEvent
	for range 50 { // the client reconnects
		if after, err = readStream(t, c, "s-1", 0); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(after) != 2 {
		t.Fatalf("after a restart: %d events, %v", len(after), err)
	}
}
