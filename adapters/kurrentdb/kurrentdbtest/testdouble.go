// Package kurrentdbtest provides TestDouble, a test double of a KurrentDB
// node for the tests of adapters/kurrentdb and of the programs using it:
// KurrentDB cannot run on the CI machines. It is an in-process gRPC server
// implementing the Streams service (Append; Read of a stream, of $all and
// subscriptions to $all) from the KurrentDB client's own protobuf
// definitions (github.com/EventStore/EventStore-Client-Go/v4/protos), with
// the behaviour of a single node that this project relies on:
//
//   - appends are atomic; an implicit transaction gives each event its own
//     log position as commit and prepare position; positions are byte
//     offsets that grow with the size of the records;
//   - optimistic concurrency on the expected revision (no stream, a
//     revision, stream exists, any), answered with WrongExpectedVersion;
//   - KurrentDB's idempotency: an append at an expected revision the stream
//     has passed, whose event ids are the ones recorded at that place, is
//     answered as a success with the original position and writes nothing,
//     whatever the content; ids matching only in part is WrongExpectedVersion.
//     With Any it does no de-duplication (the server's is best-effort there);
//   - reads of a stream (StreamNotFound for an unknown one) and of $all,
//     forwards and backwards, with $all positions on both; a read of $all
//     from a position that is not a record's fails, as the real log cannot
//     be read from the middle of a record;
//   - subscriptions to $all from a position (exclusive), with a stream or
//     event type prefix filter and a checkpoint every window*multiplier
//     records considered, caught-up notice, then live events;
//   - a system record ($statsCollected in $stats-testdouble) at each start,
//     so that $all holds records of other streams, as a real server's does.
//
// It keeps its storage in memory across Stop and Start (Restart), so tests
// of persistence and of reconnection run against it. Everything else (the
// other services, users and ACLs, links, deletes, TLS, clusters) is not
// implemented: ServerFeatures answers Unimplemented, which the client takes
// for an old server. It is not a KurrentDB: the conformance suite also runs
// against a real server when MAILLAGE_KURRENTDB_URL is set.
package kurrentdbtest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
)

// TestDouble is an in-memory stand-in for one KurrentDB node, reached over
// gRPC on 127.0.0.1. It is safe for concurrent use.
type TestDouble struct {
	api.UnimplementedStreamsServer

	mu      sync.Mutex
	addr    string // fixed at the first Start, kept across restarts
	srv     *grpc.Server
	log     []*record // $all, in order
	streams map[string][]*record
	end     uint64        // log position of the next record
	changed chan struct{} // closed and replaced on every write
	starts  int
}

// record is one event of the log.
type record struct {
	stream      string
	revision    uint64
	id          uuid.UUID
	eventType   string
	contentType string
	created     int64 // .NET ticks (100 ns) since the Unix epoch
	data, meta  []byte
	pos         uint64 // commit and prepare position
}

// New returns a stopped test double with empty storage.
func New() *TestDouble {
	return &TestDouble{streams: map[string][]*record{}, changed: make(chan struct{})}
}

// Start returns a started test double on a free port of 127.0.0.1, stopped
// when the test ends.
func Start(t testing.TB) *TestDouble {
	t.Helper()
	d := New()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

// Start serves on 127.0.0.1: on a free port the first time, on the same
// address after a Stop. It writes a system record, as a server does when it
// starts.
func (d *TestDouble) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.srv != nil {
		return errors.New("kurrentdbtest: already started")
	}
	addr := d.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kurrentdbtest: listen on %s: %w", addr, err)
	}
	d.addr = lis.Addr().String()
	d.srv = grpc.NewServer()
	api.RegisterStreamsServer(d.srv, d)
	srv := d.srv
	go srv.Serve(lis) //nolint:errcheck // Serve returns when Stop closes the listener
	d.starts++
	d.writeLocked("$stats-testdouble", "$statsCollected", "application/json",
		fmt.Appendf(nil, `{"start":%d,"at":%q}`, d.starts, time.Now().UTC().Format(time.RFC3339Nano)), nil, uuid.New())
	d.notifyLocked()
	return nil
}

// Stop closes every connection and subscription at once, as a crash or a
// network cut would, keeping the storage. Calls fail until Start.
func (d *TestDouble) Stop() {
	d.mu.Lock()
	srv := d.srv
	d.srv = nil
	d.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Restart stops the double and starts it again on the same address with the
// same storage.
func (d *TestDouble) Restart() error {
	d.Stop()
	return d.Start()
}

// URL is the connection string of the double for the KurrentDB client.
func (d *TestDouble) URL() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return "esdb://" + d.addr + "?tls=false"
}

// Len returns how many records $all holds, system records included.
func (d *TestDouble) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.log)
}

// writeLocked appends one record to a stream. d.mu is held.
func (d *TestDouble) writeLocked(stream, eventType, contentType string, data, meta []byte, id uuid.UUID) *record {
	r := &record{
		stream:      stream,
		revision:    uint64(len(d.streams[stream])),
		eventType:   eventType,
		contentType: contentType,
		created:     time.Now().UnixNano() / 100,
		data:        data,
		meta:        meta,
		pos:         d.end,
		id:          id,
	}
	// A record's size on disk, roughly: a header, then its variable parts.
	d.end += uint64(90 + len(stream) + len(eventType) + len(data) + len(meta))
	d.log = append(d.log, r)
	d.streams[stream] = append(d.streams[stream], r)
	return r
}

// notifyLocked wakes the subscriptions up after a write. d.mu is held.
func (d *TestDouble) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}
