package jetstream

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

// TestReadCaseAfterAKnownHead checks ReadCase from a case head the store
// knows while another store (another process) appends to the case: nothing,
// fewer messages than the single gets read (directProbes), and more, which
// the batches read, with messages of other cases in between.
func TestReadCaseAfterAKnownHead(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			srv := startServer(t)
			var opts []Option
			if !direct {
				opts = append(opts, withoutDirectGet())
			}
			a, b := openURL(t, srv.ClientURL(), opts...), openURL(t, srv.ClientURL(), opts...)
			ctx := t.Context()
			c, other := storetest.NewCase(), storetest.NewCase()
			appendTo := func(s *Store, c *storetest.Case, n int) []domain.Event {
				t.Helper()
				events := c.Next(n)
				if _, err := s.Append(ctx, c.Version, events); err != nil {
					t.Fatalf("append at %d: %v", c.Version, err)
				}
				c.Commit(events)
				return events
			}
			appendTo(a, c, 1)
			known := c.Version
			if evs, err := a.ReadCase(ctx, c.ID, known); err != nil || len(evs) != 0 {
				t.Fatalf("ReadCase after the head a appended: %d events, %v", len(evs), err)
			}
			for _, messages := range []int{0, 1, 2, directProbes, directProbes + 1, 2*directProbes + 3} {
				var want []domain.Event
				for i := range messages {
					appendTo(b, other, 1)
					want = append(want, appendTo(b, c, 1+i%2)...)
				}
				appendTo(b, other, 1)
				got, err := a.ReadCase(ctx, c.ID, known)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%d messages appended by another store after version %d: read %d events, want %d", messages, known, len(got), len(want))
				}
				for i := range got {
					if got[i].ID != want[i].ID || got[i].Sequence != want[i].Sequence || (i > 0 && got[i].Position <= got[i-1].Position) {
						t.Fatalf("event %d: sequence %d (position %d), want %d", i, got[i].Sequence, got[i].Position, want[i].Sequence)
					}
				}
				// From a version inside what was appended: the tail only.
				if len(want) > 1 {
					tail, err := a.ReadCase(ctx, c.ID, want[0].Sequence)
					if err != nil || len(tail) != len(want)-1 || tail[0].ID != want[1].ID {
						t.Fatalf("ReadCase after %d: %d events, %v", want[0].Sequence, len(tail), err)
					}
				}
				known = c.Version
			}
			all, err := a.ReadCase(ctx, c.ID, 0)
			if err != nil || uint64(len(all)) != c.Version || all[len(all)-1].ChainHash != c.Head {
				t.Fatalf("ReadCase from 0: %d events (want %d), %v", len(all), c.Version, err)
			}
		})
	}
}

// BenchmarkReadCaseNothingNew asks, from concurrent readers, whether a case
// the store knows the head of moved (ReadCase after its version): the
// freshness check of every read of a cached case.
func BenchmarkReadCaseNothingNew(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	cs := make([]*storetest.Case, 64)
	for i := range cs {
		cs[i] = storetest.NewCase()
		for range 10 {
			events := cs[i].Next(2)
			if _, err := s.Append(ctx, cs[i].Version, events); err != nil {
				b.Fatal(err)
			}
			cs[i].Commit(events)
		}
	}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := cs[n.Add(1)%int64(len(cs))]
		for pb.Next() {
			events, err := s.ReadCase(ctx, c.ID, c.Version)
			if err != nil || len(events) != 0 {
				b.Fatalf("%d events, %v", len(events), err)
			}
		}
	})
}

// TestASoleWriterReadsWhatItDoesNotKnow checks when ReadCase trusts the
// head it learnt. An embedded server without a listener has no writer but
// the store, so after its own append a read does not ask the server; a
// message the store did not append (here published below it, standing in
// for an append whose acknowledgement was lost) is therefore not seen,
// until an append of unknown outcome marks the case uncertain. With a
// listener (other processes may append) every read asks.
func TestASoleWriterReadsWhatItDoesNotKnow(t *testing.T) {
	for _, listen := range []bool{false, true} {
		t.Run(fmt.Sprintf("listen=%v", listen), func(t *testing.T) {
			ctx := t.Context()
			opts := []Option{WithEmbedded(t.TempDir()), WithLogger(quiet)}
			if listen {
				opts = append(opts, WithListen("127.0.0.1:0"))
			}
			s, err := Open(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c := storetest.NewCase()
			first := c.Next(1)
			if _, err := s.Append(ctx, 0, first); err != nil {
				t.Fatal(err)
			}
			c.Commit(first)
			// The next event, stored without the store's Append.
			unseen := c.Next(1)
			data, err := encodeEvents(FormatBinary, unseen)
			if err != nil {
				t.Fatal(err)
			}
			msg := nats.NewMsg(s.Subject(c.ID))
			msg.Data = data
			msg.Header.Set(HeaderCase, c.ID.String())
			msg.Header.Set(HeaderFirstSeq, "2")
			msg.Header.Set(HeaderVersion, "2")
			msg.Header.Set(HeaderFormat, FormatBinary)
			if _, err := s.JetStream().PublishMsg(ctx, msg); err != nil {
				t.Fatal(err)
			}
			got, err := s.ReadCase(ctx, c.ID, 1)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[listen]; len(got) != want {
				t.Fatalf("read after the head it appended: %d events, want %d", len(got), want)
			}
			if listen {
				return
			}
			// An append whose caller gave up: its outcome is unknown.
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := s.Append(cancelled, 1, unseen); err == nil {
				t.Fatal("append with a cancelled context succeeded")
			}
			got, err = s.ReadCase(ctx, c.ID, 1)
			if err != nil || len(got) != 1 || got[0].ID != unseen[0].ID {
				t.Fatalf("read after an append of unknown outcome: %d events, %v; want the unseen one", len(got), err)
			}
		})
	}
}
