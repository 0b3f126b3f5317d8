package main

import (
	"io"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/kurrentdb/kurrentdbtest"
	"github.com/maillage/maillage/domain/cases"
)

func TestStoreFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		ok       bool
		replicas int
	}{
		{nil, true, 1},
		{[]string{"--nats", "nats://a:4222"}, true, 1},
		{[]string{"--nats", "nats://a:4222,nats://b:4222,nats://c:4222"}, true, 3},
		{[]string{"--nats", "nats://lb:4222", "--nats-replicas", "3"}, true, 3},
		{[]string{"--nats", "nats://a,nats://b,nats://c", "--nats-replicas", "1"}, true, 1},
		{[]string{"--store", "kurrentdb", "--kurrentdb", "esdb://k:2113?tls=false"}, true, 1},
		{[]string{"--store", "kurrentdb"}, false, 0},
		{[]string{"--kurrentdb", "esdb://k:2113"}, false, 0},
		{[]string{"--store", "postgres"}, false, 0},
		{[]string{"--nats-replicas", "3"}, false, 0},
		{[]string{"--nats", "nats://a", "--nats-replicas", "6"}, false, 0},
	} {
		m := NewMain(io.Discard, io.Discard)
		err := m.ParseFlags(tc.args)
		if (err == nil) != tc.ok {
			t.Fatalf("serve %v: %v, want ok %v", tc.args, err, tc.ok)
		}
		if err == nil && m.natsReplicas() != tc.replicas {
			t.Fatalf("serve %v: %d NATS replicas, want %d", tc.args, m.natsReplicas(), tc.replicas)
		}
	}
	t.Setenv("MAILLAGE_NATS_REPLICAS", "three")
	if err := NewMain(io.Discard, io.Discard).ParseFlags(nil); err == nil {
		t.Fatal("MAILLAGE_NATS_REPLICAS=three: no error")
	}
}

// TestServeOnKurrentDBKeepsCasesAcrossRestarts records through a server
// whose store of record is KurrentDB (its test double), restarts the server
// on another data directory, and reads the case back: the history is in
// KurrentDB, not in the process.
func TestServeOnKurrentDBKeepsCasesAcrossRestarts(t *testing.T) {
	d := kurrentdbtest.Start(t)
	nats := startNATSCluster(t, 3).URLs()
	flags := []string{"--store", "kurrentdb", "--kurrentdb", d.URL(), "--nats", nats}
	var retries atomic.Int64
	id := uuid.New()
	first := startMain(t, flags...)
	var want []uuid.UUID
	for i, req := range []cases.Request{openCase(id), observation(id, "a"), observation(id, "b")} {
		res, err := recordRetrying(t.Context(), first.cases, req, &retries)
		if err != nil || res.Version != uint64(i)+1 {
			t.Fatalf("record %d: %+v, %v", i, res, err)
		}
		want = append(want, res.Events[0].ID)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := startMain(t, flags...)
	tl, err := second.cases.Timeline(t.Context(), id, auditor, 0, 10)
	if err != nil || tl.Version != 3 || len(tl.Events) != 3 {
		t.Fatalf("timeline on the second server: version %d, %d events, %v", tl.Version, len(tl.Events), err)
	}
	history, err := second.events.ReadCase(t.Context(), id, 0)
	if err != nil || len(history) != 3 {
		t.Fatalf("ReadCase: %d events, %v", len(history), err)
	}
	for i, e := range history {
		if e.ID != want[i] {
			t.Fatalf("event %d is %s, recorded %s", i, e.ID, want[i])
		}
	}
}
