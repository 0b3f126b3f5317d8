package feeds

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// Relay follows the event store in global order and publishes, for every
// event and every member of its case, what the policy lets that member see
// when it is sent, on the member's feed (docs/feeds.md). It is exactly-once
// in effect: every message states the subject sequence it expects to
// follow, and what a partner already holds is read back from its feed, so a
// relay that starts again after a crash, at any point, publishes what is
// missing and nothing twice. Run one relay per feed server.
type Relay struct {
	store   domain.EventStore
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     config
	log     *slog.Logger
	metrics *metrics
	seed    maphash.Seed

	mu      sync.Mutex
	done    domain.Position               // every event up to it is relayed
	changed chan struct{}                 // closed and replaced when done moves
	feeds   map[domain.InstitutionID]bool // feeds known to exist
	current *run                          // the pass in progress, nil between passes

	ensureMu sync.Mutex // serialises the creation of feeds

	stop    context.CancelFunc
	stopped chan error
}

// maxRetryWait bounds the wait between attempts after failures in a row.
const maxRetryWait = 30 * time.Second

// errCrashed is what Run returns when a test stopped the relay dead.
var errCrashed = errors.New("feeds: relay stopped dead (test)")

// NewRelay returns a relay from store to the feed server nc is connected to
// (account FEEDS: Server.Conn). Start it with Run or Start.
func NewRelay(store domain.EventStore, nc *nats.Conn, opts ...Option) (*Relay, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if store == nil || nc == nil {
		return nil, errors.New("feeds: NewRelay: nil store or connection")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("feeds: %w", err)
	}
	m, err := newMetrics(cfg.registerer)
	if err != nil {
		return nil, err
	}
	return &Relay{store: store, nc: nc, js: js, cfg: cfg, log: cfg.log, metrics: m, seed: maphash.MakeSeed(),
		changed: make(chan struct{}), feeds: map[domain.InstitutionID]bool{}}, nil
}

// Start runs the relay in the background until Stop.
func (r *Relay) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.stopped = cancel, make(chan error, 1)
	go func() { r.stopped <- r.Run(ctx) }()
}

// Stop ends a relay started with Start, after the events in progress are
// relayed and the position is saved.
func (r *Relay) Stop() error {
	if r.stop == nil {
		return nil
	}
	r.stop()
	err := <-r.stopped
	r.stop = nil
	return err
}

// Run relays until ctx ends (then returns nil). After a failure (store or
// feed server unreachable, access log refusing) it starts again from its
// checkpoint after WithRetryAfter.
func (r *Relay) Run(ctx context.Context) error {
	if r.cfg.registerer != nil {
		go r.probeLag(ctx)
	}
	wait := r.cfg.retryAfter
	for {
		from := r.Done()
		err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errCrashed) {
			return err
		}
		if r.Done() != from {
			wait = r.cfg.retryAfter // it got somewhere: not a lasting failure
		}
		r.metrics.errors.Inc()
		r.log.Error("feed relay failed; starting again from its checkpoint", "err", err, "after", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// Done returns the position up to which every event is relayed.
func (r *Relay) Done() domain.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// WaitFor waits until every event up to pos is relayed, or ctx ends.
func (r *Relay) WaitFor(ctx context.Context, pos domain.Position) error {
	for {
		r.mu.Lock()
		done, changed := r.done, r.changed
		r.mu.Unlock()
		if done >= pos {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("feeds: relay at %d, waiting for %d: %w", done, pos, ctx.Err())
		}
	}
}

func (r *Relay) setDone(p domain.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = p
	close(r.changed)
	r.changed = make(chan struct{})
	r.metrics.position.Set(float64(p))
}

// crashed reports whether a test wants the relay stopped dead here.
func (r *Relay) crashed(p crashPoint, e domain.Event) bool {
	return r.cfg.crash != nil && r.cfg.crash(p, e)
}

// runOnce relays from the checkpoint until ctx ends or something fails.
func (r *Relay) runOnce(parent context.Context) error {
	kv, err := r.js.CreateOrUpdateKeyValue(parent, jetstream.KeyValueConfig{
		Bucket: CheckpointBucket, Description: "maillage feed relay checkpoint", History: 1, Storage: jetstream.FileStorage,
		Replicas: r.cfg.replicas,
	})
	if err != nil {
		return fmt.Errorf("feeds: checkpoint bucket: %w", err)
	}
	start, err := loadCheckpoint(parent, kv)
	if err != nil {
		return err
	}
	boundaries, err := r.js.CreateOrUpdateKeyValue(parent, jetstream.KeyValueConfig{
		Bucket: BoundaryBucket, Description: "maillage feed relay: next consent or order boundary per case", History: 1,
		Storage: jetstream.FileStorage, Replicas: r.cfg.replicas,
	})
	if err != nil {
		return fmt.Errorf("feeds: boundary bucket: %w", err)
	}
	r.setDone(start)
	r.mu.Lock()
	clear(r.feeds) // checked again: one may have been removed by hand
	r.mu.Unlock()
	r.log.Info("feed relay starting", "position", start)

	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	run := newRun(ctx, r, start)
	run.boundaries = boundaries
	r.mu.Lock()
	r.current = run
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.current = nil
		r.mu.Unlock()
	}()
	var workers sync.WaitGroup
	for i := range run.shards {
		workers.Add(1)
		go func() {
			defer workers.Done()
			if err := run.work(ctx, i); err != nil {
				cancel(err)
			}
		}()
	}
	saved := make(chan error, 1)
	go func() {
		err := run.checkpointLoop(ctx, kv)
		if errors.Is(err, errCrashed) {
			cancel(err)
		}
		saved <- err
	}()

	// The sweeper sends to the shards: it stops before they are closed.
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		run.sweepBoundaries(sweepCtx)
	}()
	err = r.store.Follow(ctx, start, run.dispatch)
	stopSweep()
	<-swept
	for _, ch := range run.shards {
		close(ch)
	}
	workers.Wait()
	cancel(err)
	if cerr := <-saved; cerr != nil && !errors.Is(cerr, context.Canceled) && !errors.Is(err, errCrashed) {
		err = errors.Join(err, cerr)
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if errors.Is(err, errCrashed) {
		return errCrashed
	}
	// A clean stop or a failure: save what is relayed, so a restart reads
	// less again (a crash would not, and loses nothing either).
	if r.nc.IsConnected() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if serr := saveCheckpoint(sctx, kv, r.Done()); serr != nil {
			r.log.Warn("feed relay: saving the checkpoint on the way out", "err", serr)
		}
	}
	if parent.Err() != nil {
		return nil
	}
	return err
}

// checkpointKey is the key of the relay's position in CheckpointBucket.
const checkpointKey = "position"

func loadCheckpoint(ctx context.Context, kv jetstream.KeyValue) (domain.Position, error) {
	e, err := kv.Get(ctx, checkpointKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("feeds: read checkpoint: %w", err)
	}
	p, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("feeds: checkpoint %q: %w", e.Value(), err)
	}
	return domain.Position(p), nil
}

func saveCheckpoint(ctx context.Context, kv jetstream.KeyValue, p domain.Position) error {
	if _, err := kv.Put(ctx, checkpointKey, []byte(strconv.FormatUint(uint64(p), 10))); err != nil {
		return fmt.Errorf("feeds: save checkpoint: %w", err)
	}
	return nil
}

// checkpointLoop saves the relayed position every checkpointEvery while it
// moves, until ctx ends.
func (run *run) checkpointLoop(ctx context.Context, kv jetstream.KeyValue) error {
	r := run.r
	t := time.NewTicker(r.cfg.checkpointEvery)
	defer t.Stop()
	saved := run.start
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		done := r.Done()
		if done == saved {
			continue
		}
		if err := saveCheckpoint(ctx, kv, done); err != nil {
			return err
		}
		saved = done
		if r.crashed(crashAfterCheckpoint, domain.Event{Position: done}) {
			return errCrashed
		}
	}
}

// lagCountLimit bounds the count of events not yet relayed.
const lagCountLimit = 10000

// probeLag measures, every lagEvery, how many events are recorded after the
// relayed position and how old the first of them is.
func (r *Relay) probeLag(ctx context.Context) {
	t := time.NewTicker(r.cfg.lagEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, oldest := 0, time.Time{}
		for e, err := range r.store.ReadAll(ctx, r.Done()) {
			if err != nil {
				break
			}
			if n == 0 {
				oldest = e.RecordedAt
			}
			if n++; n >= lagCountLimit {
				break
			}
		}
		r.metrics.lagEvents.Set(float64(n))
		if n == 0 {
			r.metrics.lagSeconds.Set(0)
		} else {
			r.metrics.lagSeconds.Set(max(0, r.cfg.now().Sub(oldest).Seconds()))
		}
	}
}
