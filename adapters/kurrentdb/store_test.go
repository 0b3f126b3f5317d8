package kurrentdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"testing"

	"github.com/maillage/maillage/adapters/kurrentdb"
	"github.com/maillage/maillage/adapters/kurrentdb/kurrentdbtest"
	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

var quiet = slog.New(slog.DiscardHandler)

// open opens a store, closed when the test ends unless closed before.
func open(t *testing.T, opts ...kurrentdb.Option) *kurrentdb.Store {
	t.Helper()
	s, err := kurrentdb.Open(t.Context(), append([]kurrentdb.Option{kurrentdb.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the store conformance suite against the in-process
// test double, with small pages so that paging is exercised; Restart
// restarts the double (same storage) and the store.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		d := kurrentdbtest.Start(t)
		current := open(t, kurrentdb.WithURL(d.URL()), kurrentdb.WithPageSize(7))
		return storetest.Harness{
			Store: current,
			Restart: func(t *testing.T) domain.EventStore {
				if err := current.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				if err := d.Restart(); err != nil {
					t.Fatal(err)
				}
				current = open(t, kurrentdb.WithURL(d.URL()), kurrentdb.WithPageSize(7))
				return current
			},
		}
	})
}

// TestConformanceRealServer runs the suite against the KurrentDB server at
// MAILLAGE_KURRENTDB_URL (a connection string whose user reads $all), each
// test in case streams of its own prefix, so that runs and tests do not see
// each other's events. Restart closes and reopens the store (the server
// stays up).
//
//	docker run -d --name kurrentdb -p 2113:2113 docker.kurrent.io/kurrent-latest/kurrentdb:latest --insecure --run-projections=None
//	MAILLAGE_KURRENTDB_URL='esdb://127.0.0.1:2113?tls=false' go test ./adapters/kurrentdb/ -run RealServer -v
func TestConformanceRealServer(t *testing.T) {
	url := os.Getenv("MAILLAGE_KURRENTDB_URL")
	if url == "" {
		t.Skip("MAILLAGE_KURRENTDB_URL is not set: the suite runs against the test double only")
	}
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		opts := []kurrentdb.Option{kurrentdb.WithURL(url), kurrentdb.WithStreamPrefix(uniquePrefix(t))}
		current := open(t, opts...)
		return storetest.Harness{
			Store: current,
			Restart: func(t *testing.T) domain.EventStore {
				if err := current.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				current = open(t, opts...)
				return current
			},
		}
	})
}

func uniquePrefix(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "maillagetest" + hex.EncodeToString(b) + "-"
}

func TestPositions(t *testing.T) {
	for _, tc := range []struct {
		commit uint64
		index  int
	}{{1, 0}, {12345, 3}, {1<<48 - 1, 1<<16 - 1}} {
		p, err := kurrentdb.EncodePosition(tc.commit, tc.index)
		if err != nil {
			t.Fatal(err)
		}
		if c, i := kurrentdb.SplitPosition(p); c != tc.commit || i != tc.index {
			t.Fatalf("SplitPosition(EncodePosition(%d, %d)) = %d, %d", tc.commit, tc.index, c, i)
		}
	}
	// Later records, and later events of one record, have greater positions.
	a, _ := kurrentdb.EncodePosition(100, 5)
	b, _ := kurrentdb.EncodePosition(101, 0)
	c, _ := kurrentdb.EncodePosition(101, 1)
	if !(a < b && b < c) {
		t.Fatalf("positions out of order: %d %d %d", a, b, c)
	}
	for _, bad := range []struct {
		commit uint64
		index  int
	}{{1 << 48, 0}, {5, -1}, {5, 1 << 16}} {
		if _, err := kurrentdb.EncodePosition(bad.commit, bad.index); err == nil {
			t.Fatalf("EncodePosition(%d, %d): no error", bad.commit, bad.index)
		}
	}
}

func TestOpenFails(t *testing.T) {
	if _, err := kurrentdb.Open(t.Context()); err == nil {
		t.Fatal("Open without WithURL: no error")
	}
	if _, err := kurrentdb.Open(t.Context(), kurrentdb.WithURL("http://nope")); err == nil {
		t.Fatal("Open with a bad URL: no error")
	}
	d := kurrentdbtest.Start(t)
	d.Stop()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := kurrentdb.Open(ctx, kurrentdb.WithURL(d.URL()), kurrentdb.WithLogger(quiet)); !isUnavailable(err) {
		t.Fatalf("Open on a stopped server: %v, want ErrStoreUnavailable", err)
	}
}

func isUnavailable(err error) bool { return errors.Is(err, domain.ErrStoreUnavailable) }
