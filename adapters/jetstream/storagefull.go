package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// StorageGuard tells when the disk of the embedded server's data directory
// is full, refuses writes at once while it is (domain.ErrStorageFull), and
// brings the server back once space is freed, without a restart of the
// process.
//
// Why it is needed: when a write fails for lack of space, nats-server's
// file store keeps the write error and fails every later write to the
// stream, without answering the publisher (who waits for its timeout),
// for as long as the stream lives; nothing in the server resets it. The
// guard sees the error in the server's health report (or a publish refused
// for insufficient resources), and once the disk has space again it
// restarts the server's JetStream (ShutdownJetStream, EnableJetStream):
// the streams are opened again from disk, where every acknowledged message
// is (each was synced before its acknowledgement), and the consumers of the
// process's components recreate themselves as after a reconnection.
//
// With an external server (WithURL) the guard only recognises a server
// refusing writes for insufficient resources; it restarts nothing.
type StorageGuard struct {
	store      *Store
	log        *slog.Logger
	every      time.Duration
	resumeFree uint64

	full     atomic.Bool
	restart  atomic.Bool  // the server's streams hold a write error: restart JetStream to clear it
	lastFull atomic.Int64 // when it was last found full, Unix nanoseconds
	mu       sync.Mutex   // one check or recovery at a time
}

// StorageOption configures NewStorageGuard.
type StorageOption func(*StorageGuard) error

// WithStorageCheckEvery sets how often the guard checks the server and the
// disk (default one second).
func WithStorageCheckEvery(d time.Duration) StorageOption {
	return func(g *StorageGuard) error {
		if d < 10*time.Millisecond {
			return fmt.Errorf("jetstream: WithStorageCheckEvery: %s, want at least 10ms", d)
		}
		g.every = d
		return nil
	}
}

// WithResumeFree sets how much free space the data directory's disk needs
// before the guard lets writes in again (default 4 MiB).
func WithResumeFree(bytes uint64) StorageOption {
	return func(g *StorageGuard) error { g.resumeFree = bytes; return nil }
}

// NewStorageGuard returns the guard of s's storage; Run it.
func NewStorageGuard(s *Store, opts ...StorageOption) (*StorageGuard, error) {
	g := &StorageGuard{store: s, log: s.log, every: time.Second, resumeFree: 4 << 20}
	for _, o := range opts {
		if err := o(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Full reports whether writes are refused for lack of space.
func (g *StorageGuard) Full() bool { return g.full.Load() }

// errFull is what a write refused while the disk is full returns.
var errFull = fmt.Errorf("jetstream: %w: %w: the data directory's disk is full", domain.ErrStorageFull, domain.ErrStoreUnavailable)

// Write runs a write unless the disk is known to be full, and tells a write
// that failed for lack of space: either way its error wraps
// domain.ErrStorageFull (and domain.ErrStoreUnavailable).
func (g *StorageGuard) Write(write func() error) error {
	if g.full.Load() {
		return errFull
	}
	err := write()
	if err == nil || errors.Is(err, domain.ErrStorageFull) {
		return err
	}
	if insufficientResources(err) {
		g.setFull("the server refuses writes for insufficient storage", true)
	} else if errors.Is(err, domain.ErrStoreUnavailable) {
		g.check() // the server kept the write error if it was one
	}
	if g.full.Load() {
		return fmt.Errorf("%w: %w", errFull, err)
	}
	return err
}

// insufficientResources reports a publish the server refused because its
// storage limit (by default, from the free space at start) is reached:
// error code 10023, which nats.go does not name.
func insufficientResources(err error) bool {
	var apiErr *jetstream.APIError
	return (errors.As(err, &apiErr) && apiErr.ErrorCode == 10023) || strings.Contains(err.Error(), "insufficient resources")
}

func (g *StorageGuard) setFull(why string, restart bool) {
	if restart {
		g.restart.Store(true)
	}
	if !g.full.Swap(true) {
		g.lastFull.Store(time.Now().UnixNano())
		g.log.Error("storage full: writes are refused until space is freed in the data directory", "why", why, "dir", g.store.cfg.dataDir)
	}
}

// Run checks every period until ctx ends: while writes go, whether the
// server holds a write error for lack of space, or the disk has no space
// left; while the disk is full, whether space was freed, and then brings
// the server back.
func (g *StorageGuard) Run(ctx context.Context) {
	tick := time.NewTicker(g.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if g.full.Load() {
			g.recover(ctx)
		} else {
			g.check()
		}
	}
}

// check looks for a stream write error for lack of space in the server's
// health report, and at the disk's free space.
func (g *StorageGuard) check() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.store.srv == nil {
		return
	}
	if werr := g.outOfSpaceError(); werr != "" {
		g.setFull(werr, true)
		return
	}
	if free, ok := freeSpace(g.store.cfg.dataDir); ok && free == 0 {
		g.setFull("no space left on the data directory's disk", false)
	}
}

// outOfSpaceError returns the first stream write error of the server that
// is for lack of space (nats-server's own test: "no space left"), or "".
func (g *StorageGuard) outOfSpaceError() string {
	h := g.store.srv.Healthz(&server.HealthzOptions{Details: true})
	for _, e := range h.Errors {
		if strings.Contains(e.Error, "no space left") {
			return e.Error
		}
	}
	return ""
}

// recover lets writes in again once the disk has space, restarting the
// server's JetStream first when its streams hold a write error.
func (g *StorageGuard) recover(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.store.srv == nil {
		// An external server: its limit may have moved; try again now and
		// then.
		if time.Since(time.Unix(0, g.lastFull.Load())) > 10*g.every {
			g.full.Store(false)
		}
		return
	}
	if free, ok := freeSpace(g.store.cfg.dataDir); ok && free < g.resumeFree {
		return
	}
	if g.restart.Load() || g.outOfSpaceError() != "" {
		if err := g.restartJetStream(ctx); err != nil {
			g.log.Warn("storage: restarting JetStream after the disk was full failed; trying again", "err", err)
			return
		}
		if werr := g.outOfSpaceError(); werr != "" {
			g.log.Warn("storage: the server still holds a write error after restarting JetStream", "err", werr)
			return
		}
		g.restart.Store(false)
	}
	g.full.Store(false)
	g.log.Info("storage: space freed in the data directory, writes are accepted again", "full_for", time.Since(time.Unix(0, g.lastFull.Load())).Round(time.Second))
}

// restartJetStream reopens the server's streams from disk, clearing the
// write errors they keep, and waits until the events stream answers.
func (g *StorageGuard) restartJetStream(ctx context.Context) error {
	srv := g.store.srv
	g.log.Warn("storage: restarting the embedded server's JetStream to clear its write errors")
	if srv.JetStreamEnabled() {
		if err := srv.ShutdownJetStream(); err != nil {
			return fmt.Errorf("shutdown JetStream: %w", err)
		}
	}
	// As at start: the limit is derived again from the free space (plus
	// what the streams hold), under the same directory.
	if err := srv.EnableJetStream(&server.JetStreamConfig{StoreDir: g.store.cfg.dataDir}); err != nil {
		_ = srv.ShutdownJetStream() // a half-started JetStream is retried whole
		return fmt.Errorf("enable JetStream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, err := g.store.stream.Info(ctx); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("events stream after restarting JetStream: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}
