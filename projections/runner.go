package projections

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maillage/maillage/domain"
)

// Source is what the runner reads: the store's global order, and one case's
// events for fresh per-case reads. domain.EventStore implements it.
type Source interface {
	// ReadAll yields the events after a position, in global order, until
	// the end of what is recorded now.
	ReadAll(ctx context.Context, after domain.Position) iter.Seq2[domain.Event, error]
	// Follow calls handle for every event after a position, in global
	// order, then for new ones, until ctx ends or handle fails.
	Follow(ctx context.Context, after domain.Position, handle func(domain.Event) error) error
	// ReadCase returns a case's events after a sequence.
	ReadCase(ctx context.Context, id domain.CaseID, after uint64) ([]domain.Event, error)
}

// Errors of the runner's reads.
var (
	// ErrBehind: the read models did not reach the position a read asked
	// for (ReadOptions.MinPosition), or had not caught up with the store
	// for a read across cases, within the runner's wait (WithMaxWait). The
	// read may be retried.
	ErrBehind = errors.New("read models behind the requested position")
	// ErrStopped: the runner stopped on an event it could not apply (see
	// Err); reads across cases are refused until it is fixed and restarted.
	ErrStopped = errors.New("read models stopped")
	// ErrRunning: Rebuild was called on a started runner.
	ErrRunning = errors.New("runner already started")
)

// Runner feeds the read models from the store's global order, from a
// durable checkpoint (a snapshot, see WithSnapshot), and answers reads.
//
// Freshness: a read may ask for at least a position (ReadOptions.MinPosition:
// read-your-writes across processes). Besides, once the runner has caught
// up, every read waits until it holds every append this process made
// through Track, so that a consent withdrawn or an order imposed through
// this server binds the next read at once; while it catches up, a read of
// one case first brings that case up to date from its stream. The wait is
// bounded (WithMaxWait, then ErrBehind).
//
// Runner is safe for concurrent use.
type Runner struct {
	src           Source
	log           *slog.Logger
	now           func() time.Time
	rules         deadlineRules
	snapshotPath  string
	snapshotEvery time.Duration
	maxWait       time.Duration
	open          opener

	models atomic.Pointer[models]

	mu           sync.Mutex
	pos          domain.Position
	anchor       anchor // the event at pos
	lastRecorded time.Time
	lastApplied  time.Time
	caughtUp     bool
	err          error
	advanced     chan struct{} // closed and replaced when pos moves, while someone waits
	waiters      int
	startedAt    time.Time
	started      bool
	savedPos     domain.Position
	appended     domain.Position // the last position this process's appends were acknowledged at (Track)

	watch watchSet // see watch.go

	saveMu sync.Mutex
	snap   snapshotFiles // guarded by saveMu
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// anchor identifies the event at the checkpoint, so that a snapshot is only
// used on the store it was made from.
type anchor struct {
	caseID   domain.CaseID
	sequence uint64
	chain    domain.Hash
}

// Option configures a Runner.
type Option func(*Runner) error

// WithLogger sets the logger (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(r *Runner) error {
		if l == nil {
			return errors.New("projections: nil logger")
		}
		r.log = l
		return nil
	}
}

// WithClock sets the clock the policy and the deadlines are evaluated
// against (tests set it).
func WithClock(now func() time.Time) Option {
	return func(r *Runner) error {
		if now == nil {
			return errors.New("projections: nil clock")
		}
		r.now = now
		return nil
	}
}

// WithSnapshot keeps the read models and their checkpoint in a file and a
// delta file next to it (path + ".delta"): loaded at Start (when they match
// the store), with what changed appended to the delta file every
// WithSnapshotInterval and at Close, and the whole written again now and
// then (see snapshot.go). Without it the runner rebuilds from the store's
// beginning at each start.
func WithSnapshot(path string) Option {
	return func(r *Runner) error {
		r.snapshotPath = path
		return nil
	}
}

// WithSnapshotInterval sets how often a started runner checkpoints its
// snapshot when it moved (default 5 seconds; 0: only at Close). What a
// crash loses is read again from the store at the next start: about an
// interval's worth of events.
func WithSnapshotInterval(d time.Duration) Option {
	return func(r *Runner) error {
		if d < 0 {
			return fmt.Errorf("projections: negative snapshot interval %s", d)
		}
		r.snapshotEvery = d
		return nil
	}
}

// WithMaxWait bounds how long a read waits for the read models to reach
// the position it asks for (default 2 seconds).
func WithMaxWait(d time.Duration) Option {
	return func(r *Runner) error {
		if d <= 0 {
			return fmt.Errorf("projections: max wait %s: want more than 0", d)
		}
		r.maxWait = d
		return nil
	}
}

// WithDeadlineHorizon sets how far ahead consents and orders about to expire
// are listed, and the default horizon of the deadline reads (default 30
// days).
func WithDeadlineHorizon(d time.Duration) Option {
	return func(r *Runner) error {
		if d < 24*time.Hour {
			return fmt.Errorf("projections: deadline horizon %s: want at least a day", d)
		}
		r.rules.horizon = d
		return nil
	}
}

// WithSynthesisInterval sets how long a case may go without a synthesis
// meeting before it is a deadline (default 183 days).
func WithSynthesisInterval(d time.Duration) Option {
	return func(r *Runner) error {
		if d < 24*time.Hour {
			return fmt.Errorf("projections: synthesis interval %s: want at least a day", d)
		}
		r.rules.synthesisInterval = d
		return nil
	}
}

// NewRunner returns a runner over src; Start it, or Rebuild it.
func NewRunner(src Source, opts ...Option) (*Runner, error) {
	r := &Runner{src: src, log: slog.New(slog.DiscardHandler), now: time.Now, snapshotEvery: 5 * time.Second, maxWait: 2 * time.Second,
		rules: deadlineRules{horizon: 30 * 24 * time.Hour, synthesisInterval: 183 * 24 * time.Hour}, advanced: make(chan struct{})}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	r.models.Store(newModels(r.open))
	r.startedAt = r.now()
	return r, nil
}

func (r *Runner) m() *models { return r.models.Load() }

// Start loads the snapshot when there is one that matches the store, then
// follows the store in the background: first what is already recorded
// (catching up), then new events, until Close. A store that fails is
// retried; an event the models cannot apply stops the runner (see Err).
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return ErrRunning
	}
	r.started, r.startedAt = true, r.now()
	r.mu.Unlock()
	if r.snapshotPath != "" {
		start := time.Now()
		switch err := r.loadSnapshot(ctx); {
		case errors.Is(err, errNoSnapshot):
			r.log.Info("projections: no snapshot, building the read models from the store")
		case err != nil:
			r.log.Warn("projections: snapshot not used, rebuilding the read models from the store", "err", err)
			r.reset()
		default:
			cases, events := r.m().counts()
			r.saveMu.Lock()
			segments := r.snap.segments
			r.saveMu.Unlock()
			r.log.Info("projections: snapshot loaded", "position", r.Position(), "segments", segments, "cases", cases, "events", events, "took", time.Since(start))
		}
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go r.run(ctx)
	if r.snapshotPath != "" && r.snapshotEvery > 0 {
		r.wg.Add(1)
		go r.snapshotLoop(ctx)
	}
	return nil
}

func (r *Runner) reset() {
	r.models.Store(newModels(r.open))
	r.mu.Lock()
	r.pos, r.anchor, r.savedPos = 0, anchor{}, 0
	r.mu.Unlock()
}

// Close stops following and checkpoints the snapshot (when configured and
// the read models moved since it was last written or loaded).
func (r *Runner) Close() error {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return nil
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	if r.snapshotPath == "" {
		return nil
	}
	return r.checkpoint()
}

func (r *Runner) run(ctx context.Context) {
	defer r.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		err := r.catchUp(ctx)
		if err == nil {
			err = r.src.Follow(ctx, r.Position(), r.handle)
		}
		if ctx.Err() != nil {
			return
		}
		var pe *ProjectionError
		if errors.As(err, &pe) {
			r.log.Error("projections: stopped on an event they cannot apply; fix it and restart",
				"case", pe.CaseID, "sequence", pe.Sequence, "type", pe.Type, "position", pe.Position, "err", pe.Err)
			return
		}
		r.log.Warn("projections: reading the store failed, retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// catchUp applies what the store holds now, once.
func (r *Runner) catchUp(ctx context.Context) error {
	if r.CaughtUp() {
		return nil
	}
	start := time.Now()
	for e, err := range r.src.ReadAll(ctx, r.Position()) {
		if err != nil {
			return err
		}
		if err := r.handle(e); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.caughtUp = true
	r.wakeLocked()
	r.mu.Unlock()
	cases, events := r.m().counts()
	r.log.Info("projections: caught up with the store", "position", r.Position(), "cases", cases, "events", events, "took", time.Since(start))
	// Cases restored from the snapshot are folded when first read; the
	// reads across cases would fold them all at once, so they are folded
	// now, in the background, one at a time.
	m := r.m()
	r.wg.Go(func() {
		if err := m.warmAll(ctx); err != nil {
			r.log.Error("projections: folding a case restored from the snapshot failed", "err", err)
		}
	})
	return nil
}

// handle applies one event of the global order.
func (r *Runner) handle(e domain.Event) error {
	if e.Position <= r.Position() {
		return nil // delivered again
	}
	if err := r.m().apply(e); err != nil {
		r.mu.Lock()
		r.err = err
		r.wakeLocked()
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	r.pos, r.anchor = e.Position, anchor{caseID: e.CaseID, sequence: e.Sequence, chain: e.ChainHash}
	r.lastRecorded, r.lastApplied = e.RecordedAt, r.now()
	r.wakeLocked()
	r.mu.Unlock()
	r.watch.notify(e.CaseID)
	return nil
}

func (r *Runner) wakeLocked() {
	if r.waiters > 0 {
		close(r.advanced)
		r.advanced = make(chan struct{})
	}
}

// Position is the checkpoint: every event of the store up to it is in the
// read models.
func (r *Runner) Position() domain.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// CaughtUp reports whether the runner has applied what the store held when
// it started, and now follows new events.
func (r *Runner) CaughtUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.caughtUp
}

// Lag is how far behind the store the read models are: while catching up,
// the time since the last applied event was recorded (or since the start);
// once caught up, how long after its recording the last event was applied.
func (r *Runner) Lag() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.caughtUp {
		from := r.lastRecorded
		if from.IsZero() {
			from = r.startedAt
		}
		return max(0, r.now().Sub(from))
	}
	if r.lastRecorded.IsZero() {
		return 0
	}
	return max(0, r.lastApplied.Sub(r.lastRecorded))
}

// Err returns the *ProjectionError the runner stopped on (which case,
// sequence, type and why), or nil while it runs.
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// WaitFor waits until the read models hold every event up to p, ctx ends
// (ErrBehind), or the runner stops (ErrStopped).
func (r *Runner) WaitFor(ctx context.Context, p domain.Position) error {
	return r.waitUntil(ctx, func() bool { return r.pos >= p })
}

func (r *Runner) waitUntil(ctx context.Context, done func() bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if done() {
			return nil
		}
		if r.err != nil {
			return fmt.Errorf("%w: %w", ErrStopped, r.err)
		}
		ch := r.advanced
		r.waiters++
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		r.mu.Lock()
		r.waiters--
		if ctx.Err() != nil && !done() {
			return fmt.Errorf("%w: at position %d: %w", ErrBehind, r.pos, ctx.Err())
		}
	}
}

// ReadOptions qualify a read.
type ReadOptions struct {
	// AsOf, when set, reads the case as it was then (plan, chronology,
	// who-sees-what): the events recorded at or before it, the policy
	// evaluated at that time. A time after now reads now.
	AsOf time.Time
	// MinPosition, when set, waits (at most WithMaxWait) until the read
	// models hold every event up to it: pass the position a write answered.
	MinPosition domain.Position
	// Horizon overrides the deadline horizon (WithDeadlineHorizon).
	Horizon time.Duration
}

// Plan returns the case's shared plan as v may see it. cases.ErrNotFound
// when v may not know the case; ErrBehind; a store error.
func (r *Runner) Plan(ctx context.Context, id domain.CaseID, v domain.Viewer, o ReadOptions) (Plan, error) {
	if err := r.freshCase(ctx, id, o); err != nil {
		return Plan{}, err
	}
	return r.m().plan(ctx, id, v, r.now(), o.AsOf)
}

// Chronology returns the case's multi-agency chronology as v may see it.
// Errors as Plan.
func (r *Runner) Chronology(ctx context.Context, id domain.CaseID, v domain.Viewer, o ReadOptions) (Chronology, error) {
	if err := r.freshCase(ctx, id, o); err != nil {
		return Chronology{}, err
	}
	return r.m().chronology(ctx, id, v, r.now(), o.AsOf)
}

// WhoSeesWhat returns, for the case's members and family, what they see
// and why. Errors as Plan, and a *domain.Error (EForbidden) for family
// members and former members.
func (r *Runner) WhoSeesWhat(ctx context.Context, id domain.CaseID, v domain.Viewer, o ReadOptions) (WhoSeesWhat, error) {
	if err := r.freshCase(ctx, id, o); err != nil {
		return WhoSeesWhat{}, err
	}
	return r.m().whoSeesWhat(ctx, id, v, r.now(), o.AsOf)
}

// CaseDeadlines returns what is due on the case, now. Errors as
// WhoSeesWhat.
func (r *Runner) CaseDeadlines(ctx context.Context, id domain.CaseID, v domain.Viewer, o ReadOptions) (CaseDeadlines, error) {
	if err := r.freshCase(ctx, id, o); err != nil {
		return CaseDeadlines{}, err
	}
	return r.m().caseDeadlines(ctx, id, v, r.now(), r.rulesFor(o))
}

// InstitutionDeadlines returns what is overdue or due within the horizon on
// the open cases inst is a member of. ErrBehind, ErrStopped.
func (r *Runner) InstitutionDeadlines(ctx context.Context, inst domain.InstitutionID, o ReadOptions) (InstitutionDeadlines, error) {
	if err := r.freshAll(ctx, o); err != nil {
		return InstitutionDeadlines{}, err
	}
	pos := r.Position()
	d, err := r.m().institutionDeadlines(ctx, inst, r.now(), r.rulesFor(o))
	d.Position = pos
	return d, err
}

// MemberCases returns the cases inst is a current member of. ErrBehind,
// ErrStopped.
func (r *Runner) MemberCases(ctx context.Context, inst domain.InstitutionID, o ReadOptions) ([]MemberCase, error) {
	if err := r.freshAll(ctx, o); err != nil {
		return nil, err
	}
	return r.m().memberCases(ctx, inst, r.now())
}

// Observatory returns the anonymised aggregates per département of the
// closed months at the runner's clock (see Observatory); each month is
// computed once, then served as it was. ErrBehind, ErrStopped.
func (r *Runner) Observatory(ctx context.Context, o ReadOptions) (Observatory, error) {
	if err := r.freshAll(ctx, o); err != nil {
		return Observatory{}, err
	}
	return r.m().observatory(r.now()), nil
}

func (r *Runner) rulesFor(o ReadOptions) deadlineRules {
	rules := r.rules
	if o.Horizon > 0 {
		rules.horizon = o.Horizon
	}
	return rules
}

// Track returns store with every acknowledged Append noted, so that reads
// wait for the read models to hold it: give it to the case service.
func (r *Runner) Track(store domain.EventStore) domain.EventStore { return tracked{store, r} }

type tracked struct {
	domain.EventStore
	r *Runner
}

func (t tracked) Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	res, err := t.EventStore.Append(ctx, expectedVersion, events)
	if err == nil {
		t.r.mu.Lock()
		t.r.appended = max(t.r.appended, res.Position)
		t.r.mu.Unlock()
	}
	return res, err
}

// freshCase makes a read of one case see what it must: once caught up, it
// waits until the runner holds MinPosition and this process's appends;
// before (or once stopped on an event), it brings the case up to date from
// its stream itself.
func (r *Runner) freshCase(ctx context.Context, id domain.CaseID, o ReadOptions) error {
	if o.MinPosition > 0 {
		if err := r.bounded(ctx, func() bool { return r.pos >= o.MinPosition }); err != nil {
			return err
		}
	}
	r.mu.Lock()
	live := r.caughtUp && r.err == nil
	r.mu.Unlock()
	if live {
		err := r.bounded(ctx, func() bool { return r.pos >= r.appended })
		if !errors.Is(err, ErrStopped) {
			return err
		}
	}
	return r.pullCase(ctx, id)
}

// pullCase brings a case up to date with its stream: the events the runner
// has not applied yet are applied in the case's sequence order (the runner
// skips them when it reaches them).
func (r *Runner) pullCase(ctx context.Context, id domain.CaseID) error {
	var version uint64
	if c := r.m().get(id); c != nil {
		c.mu.Lock()
		version = uint64(c.log.n)
		c.mu.Unlock()
	}
	events, err := r.src.ReadCase(ctx, id, version)
	if err != nil {
		return err
	}
	for _, e := range events {
		if err := r.m().apply(e); err != nil {
			return err
		}
	}
	return nil
}

// freshAll waits for the first catch-up, MinPosition and this process's
// appends: a read across cases needs them all.
func (r *Runner) freshAll(ctx context.Context, o ReadOptions) error {
	return r.bounded(ctx, func() bool { return r.caughtUp && r.pos >= max(o.MinPosition, r.appended) })
}

func (r *Runner) bounded(ctx context.Context, done func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.maxWait)
	defer cancel()
	return r.waitUntil(ctx, done)
}

// RebuildStats describe a rebuild.
type RebuildStats struct {
	Events   int
	Cases    int
	Position domain.Position
	Took     time.Duration
}

// EventsPerSecond is the rebuild's rate.
func (s RebuildStats) EventsPerSecond() float64 {
	if s.Took <= 0 {
		return 0
	}
	return float64(s.Events) / s.Took.Seconds()
}

// Rebuild builds the read models from scratch from everything the store
// holds now, calling progress every few thousand events and at the end. It
// is for a runner that is not started (ErrRunning otherwise), e.g. the
// `maillage projections rebuild` command, which then saves the snapshot.
func (r *Runner) Rebuild(ctx context.Context, progress func(events int, pos domain.Position)) (RebuildStats, error) {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return RebuildStats{}, ErrRunning
	}
	r.mu.Unlock()
	start := time.Now()
	r.reset()
	n := 0
	for e, err := range r.src.ReadAll(ctx, 0) {
		if err != nil {
			return RebuildStats{}, err
		}
		if err := r.handle(e); err != nil {
			return RebuildStats{}, err
		}
		if n++; progress != nil && n%4096 == 0 {
			progress(n, e.Position)
		}
	}
	r.mu.Lock()
	r.caughtUp = true
	r.wakeLocked()
	r.mu.Unlock()
	stats := RebuildStats{Events: n, Position: r.Position(), Took: time.Since(start)}
	stats.Cases, _ = r.m().counts()
	if progress != nil {
		progress(n, stats.Position)
	}
	return stats, nil
}
