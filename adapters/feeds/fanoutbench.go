package feeds

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// FanoutConfig shapes RunFanoutBench.
type FanoutConfig struct {
	// Store is where events are appended; the relay follows it. Use a store
	// of its own: the benchmark relays everything in it.
	Store domain.EventStore
	// Feeds is a connection to a feed server (Server.Conn) no other relay
	// publishes to.
	Feeds *nats.Conn
	// Rate is how many events are appended per second while measuring
	// (default 200), Duration for how long (default 10s).
	Rate     float64
	Duration time.Duration
	// Cases is how many cases events go to (default 200); each has between
	// MinMembers and MaxMembers members, its coordinator included (default 5
	// and 20), drawn from Institutions partner institutions (default 40).
	Cases                  int
	MinMembers, MaxMembers int
	Institutions           int
	// Writers is how many appends may be in flight at once (default 16).
	Writers int
	// Seed makes the territory and the choices repeatable (default 1).
	Seed int64
	// Progress receives a line per phase (nil: nothing).
	Progress io.Writer
	// RelayOptions are passed to the relay (WithShards, WithRegisterer...).
	RelayOptions []Option
}

func (c FanoutConfig) withDefaults() FanoutConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Rate <= 0 {
		c.Rate = 200
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	def(&c.Cases, 200)
	def(&c.MinMembers, 5)
	def(&c.MaxMembers, 20)
	def(&c.Institutions, 40)
	def(&c.Writers, 16)
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// FanoutResult is what RunFanoutBench measured.
type FanoutResult struct {
	Duration     time.Duration // of the measured phase
	TargetRate   float64       // events per second asked for
	Events       int           // events appended while measuring
	AppendRate   float64       // events appended per second
	Members      float64       // mean members per case
	Deliveries   int           // first deliveries received for those events, all members
	DeliveryRate float64       // deliveries per second, until the last one
	// Latency from an append's acknowledgement to the delivery of its event
	// on the feed of the last of the case's members to receive it.
	P50, P90, P99, Max time.Duration
	// Undelivered counts events some member had not received 30 seconds
	// after the measured phase.
	Undelivered int
}

// String is the result on a few lines.
func (r FanoutResult) String() string {
	return fmt.Sprintf("fan-out: %d events in %s (%.0f/s asked, %.0f/s appended), %.1f members per case, %d deliveries (%.0f/s)\n"+
		"append ack -> delivered to every member: p50 %s, p90 %s, p99 %s, max %s; undelivered %d",
		r.Events, r.Duration.Round(time.Millisecond), r.TargetRate, r.AppendRate, r.Members, r.Deliveries, r.DeliveryRate,
		r.P50.Round(10*time.Microsecond), r.P90.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond), r.Undelivered)
}

// RunFanoutBench measures the relay's fan-out: cases with MinMembers to
// MaxMembers members are opened, then events are appended at a steady rate,
// and each is timed from its append's acknowledgement to its delivery on
// the feed of every member of its case, read by a consumer per feed as a
// partner would. It runs its own relay on cfg.Store and cfg.Feeds.
func RunFanoutBench(ctx context.Context, cfg FanoutConfig) (FanoutResult, error) {
	cfg = cfg.withDefaults()
	if cfg.Store == nil || cfg.Feeds == nil {
		return FanoutResult{}, errors.New("feeds: RunFanoutBench needs a store and a feed server connection")
	}
	if cfg.MinMembers < 2 || cfg.MaxMembers < cfg.MinMembers || cfg.MaxMembers > cfg.Institutions+1 {
		return FanoutResult{}, fmt.Errorf("feeds: RunFanoutBench: %d to %d members with %d institutions", cfg.MinMembers, cfg.MaxMembers, cfg.Institutions)
	}
	b := &fanoutBench{cfg: cfg, rnd: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x66616e6f7574)), pending: map[pendingKey]*pendingEvent{}}
	relay, err := NewRelay(cfg.Store, cfg.Feeds, append([]Option{WithLogger(discardLogger)}, cfg.RelayOptions...)...)
	if err != nil {
		return FanoutResult{}, err
	}
	relay.Start()
	defer relay.Stop()

	start := time.Now()
	if err := b.openCases(ctx); err != nil {
		return FanoutResult{}, err
	}
	if err := relay.WaitFor(ctx, b.last); err != nil {
		return FanoutResult{}, err
	}
	fmt.Fprintf(cfg.Progress, "fan-out: %d cases with %.1f members on average opened and relayed in %s\n", cfg.Cases, b.meanMembers(), time.Since(start).Round(time.Millisecond))
	stop, err := b.consume(ctx)
	if err != nil {
		return FanoutResult{}, err
	}
	defer stop()
	fmt.Fprintf(cfg.Progress, "fan-out: appending %.0f events/s for %s\n", cfg.Rate, cfg.Duration)
	measured, err := b.append(ctx)
	if err != nil {
		return FanoutResult{}, err
	}
	b.drain(ctx, 30*time.Second)
	return b.result(measured), nil
}

var discardLogger = slog.New(slog.DiscardHandler)

// fanoutBench is one run.
type fanoutBench struct {
	cfg   FanoutConfig
	rnd   *mrand.Rand
	insts []benchInstitution
	cases []*benchCase
	last  domain.Position

	mu          sync.Mutex
	started     time.Time // of the measured phase
	pending     map[pendingKey]*pendingEvent
	latencies   []time.Duration
	deliveries  int
	lastArrival time.Time
	events      int
}

type benchInstitution struct {
	id   domain.InstitutionID
	kind domain.InstitutionKind
}

type benchCase struct {
	mu      sync.Mutex
	state   *domain.State
	members []benchInstitution
}

type pendingKey struct {
	id  domain.CaseID
	seq uint64
}

type pendingEvent struct {
	remaining int
	acked     time.Time
	last      time.Time // latest delivery
}

const benchCoordinator domain.InstitutionID = "ase-bench"

var benchKinds = []domain.InstitutionKind{domain.KindMECS, domain.KindSchool, domain.KindDITEP, domain.KindAEMO, domain.KindCMP,
	domain.KindFoster, domain.KindAED, domain.KindMDPH, domain.KindPJJ, domain.KindOther}

// openCases opens the cases and has their members join.
func (b *fanoutBench) openCases(ctx context.Context) error {
	for i := range b.cfg.Institutions {
		kind := benchKinds[i%len(benchKinds)]
		b.insts = append(b.insts, benchInstitution{id: domain.InstitutionID(fmt.Sprintf("%s-bench-%02d", kind, i)), kind: kind})
	}
	for range b.cfg.Cases {
		n := b.cfg.MinMembers + b.rnd.IntN(b.cfg.MaxMembers-b.cfg.MinMembers+1)
		perm := b.rnd.Perm(len(b.insts))[:n-1]
		c := &benchCase{state: domain.NewState(uuid.New()), members: []benchInstitution{{id: benchCoordinator, kind: domain.KindASE}}}
		for _, p := range perm {
			c.members = append(c.members, b.insts[p])
		}
		b.cases = append(b.cases, c)
	}
	return b.parallel(ctx, len(b.cases), func(i int) error {
		c := b.cases[i]
		if _, err := b.record(ctx, c, benchCoordinator, "", &domain.CaseOpenedPayload{ChildReference: fmt.Sprintf("BENCH-%04d", i),
			LegalFrame: domain.FrameAdministrative, Departement: "35", Coordinator: benchCoordinator, CoordinatorKind: domain.KindASE,
			CoordinatorName: "ASE banc d'essai", Referent: domain.Referent{Name: "Référent ASE"}}, nil); err != nil {
			return err
		}
		for _, m := range c.members[1:] {
			if _, err := b.record(ctx, c, benchCoordinator, "", &domain.PartnerJoinedPayload{Institution: m.id, Kind: m.kind,
				Name: "Institution " + string(m.id), Referent: domain.Referent{Name: "Référent"}, Reason: "banc d'essai"}, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *fanoutBench) meanMembers() float64 {
	n := 0
	for _, c := range b.cases {
		n += len(c.members)
	}
	return float64(n) / float64(len(b.cases))
}

// parallel runs fn for 0..n-1 on the writers.
func (b *fanoutBench) parallel(ctx context.Context, n int, fn func(int) error) error {
	next := make(chan int)
	errs := make(chan error, b.cfg.Writers)
	var wg sync.WaitGroup
	for range b.cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// record decides, seals and appends one command on c as a professional of
// inst; before is called with the event's sequence just before the append.
func (b *fanoutBench) record(ctx context.Context, c *benchCase, inst domain.InstitutionID, cat domain.Category, p domain.Payload, before func(uint64)) (domain.AppendResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	cmd := domain.Command{Type: p.EventType(), Category: cat, Role: domain.RoleProfessional,
		Actor: domain.Actor{Institution: inst, Professional: "référent " + string(inst)}, Payload: p}
	decided, err := domain.Decide(c.state, cmd, now)
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("feeds: bench: %s: %w", p.EventType(), err)
	}
	ids, salts := make([]uuid.UUID, len(decided)), make([][]byte, len(decided))
	for i := range decided {
		ids[i] = uuid.New()
		salts[i] = make([]byte, 16)
		rand.Read(salts[i])
	}
	events := domain.Seal(c.state, decided, ids, salts, now)
	if before != nil {
		before(events[0].Sequence)
	}
	res, err := b.cfg.Store.Append(ctx, c.state.Version, events)
	if err != nil {
		return res, fmt.Errorf("feeds: bench: append: %w", err)
	}
	for _, e := range events {
		c.state.Apply(e)
	}
	b.mu.Lock()
	b.last = max(b.last, res.Position)
	b.mu.Unlock()
	return res, nil
}

// consume reads every feed with an ordered consumer from now on, headers
// only, and counts first deliveries.
func (b *fanoutBench) consume(ctx context.Context) (stop func(), err error) {
	js, err := jetstream.New(b.cfg.Feeds)
	if err != nil {
		return nil, err
	}
	var ccs []jetstream.ConsumeContext
	stop = func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}
	for _, inst := range append([]benchInstitution{{id: benchCoordinator}}, b.insts...) {
		stream, err := js.Stream(ctx, StreamName(inst.id))
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // in no case
		}
		if err != nil {
			stop()
			return nil, err
		}
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy, HeadersOnly: true})
		if err != nil {
			stop()
			return nil, err
		}
		cc, err := cons.Consume(b.delivered)
		if err != nil {
			stop()
			return nil, err
		}
		ccs = append(ccs, cc)
	}
	return stop, nil
}

func (b *fanoutBench) delivered(m jetstream.Msg) {
	now := time.Now()
	h := m.Headers()
	if Kind(h.Get(HeaderKind)) != KindEvent {
		return
	}
	id, err := uuid.Parse(h.Get(HeaderCase))
	if err != nil {
		return
	}
	seq, _ := strconv.ParseUint(h.Get(HeaderSequence), 10, 64)
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pending[pendingKey{id, seq}]
	if !ok {
		return
	}
	b.deliveries++
	b.lastArrival = now
	p.remaining--
	p.last = now
	b.complete(pendingKey{id, seq}, p)
}

// complete records the latency of an event delivered to all and acknowledged.
func (b *fanoutBench) complete(k pendingKey, p *pendingEvent) {
	if p.remaining > 0 || p.acked.IsZero() {
		return
	}
	b.latencies = append(b.latencies, max(0, p.last.Sub(p.acked)))
	delete(b.pending, k)
}

// append appends observations at the configured rate for the configured
// time and returns how long it took.
func (b *fanoutBench) append(ctx context.Context) (time.Duration, error) {
	tokens := make(chan struct{}, 4*b.cfg.Writers)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := range b.cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := mrand.New(mrand.NewPCG(uint64(b.cfg.Seed), uint64(w)))
			for range tokens {
				mu.Lock()
				c := b.cases[next%len(b.cases)]
				next++
				mu.Unlock()
				if err := b.observe(ctx, c, rnd); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	start := time.Now()
	b.mu.Lock()
	b.started = start
	b.mu.Unlock()
	issued := 0
	tick := time.NewTicker(time.Millisecond)
pace:
	for now := range tick.C {
		elapsed := now.Sub(start)
		if elapsed >= b.cfg.Duration || ctx.Err() != nil {
			break
		}
		for due := int(b.cfg.Rate * elapsed.Seconds()); issued < due; issued++ {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				break pace
			}
		}
	}
	tick.Stop()
	close(tokens)
	wg.Wait()
	took := time.Since(start)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return 0, err
	}
	return took, nil
}

// observe appends one observation to c, daily life or, one time in ten,
// health information from a care member (a stub for most members).
func (b *fanoutBench) observe(ctx context.Context, c *benchCase, rnd *mrand.Rand) error {
	author, cat := c.members[rnd.IntN(len(c.members))], domain.CategoryDailyLife
	if rnd.IntN(10) == 0 {
		for _, m := range c.members {
			if m.kind.Care() {
				author, cat = m, domain.CategoryHealth
				break
			}
		}
	}
	var key pendingKey
	_, err := b.record(ctx, c, author.id, cat, &domain.ObservationRecordedPayload{Summary: "Observation du banc d'essai."}, func(seq uint64) {
		key = pendingKey{c.state.ID, seq}
		b.mu.Lock()
		b.pending[key] = &pendingEvent{remaining: len(c.members)}
		b.events++
		b.mu.Unlock()
	})
	acked := time.Now()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.pending[key]; ok {
		p.acked = acked
		b.complete(key, p)
	}
	return nil
}

// drain waits until every appended event is delivered to all, or wait.
func (b *fanoutBench) drain(ctx context.Context, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		b.mu.Lock()
		n := len(b.pending)
		b.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *fanoutBench) result(measured time.Duration) FanoutResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := FanoutResult{Duration: measured, TargetRate: b.cfg.Rate, Events: b.events, Members: b.meanMembers(),
		Deliveries: b.deliveries, Undelivered: len(b.pending)}
	if measured > 0 {
		r.AppendRate = float64(b.events) / measured.Seconds()
	}
	if span := b.lastArrival.Sub(b.started); span > 0 {
		r.DeliveryRate = float64(b.deliveries) / span.Seconds()
	}
	slices.Sort(b.latencies)
	pct := func(p float64) time.Duration {
		if len(b.latencies) == 0 {
			return 0
		}
		return b.latencies[min(len(b.latencies)-1, int(p*float64(len(b.latencies))))]
	}
	r.P50, r.P90, r.P99 = pct(0.50), pct(0.90), pct(0.99)
	if len(b.latencies) > 0 {
		r.Max = b.latencies[len(b.latencies)-1]
	}
	return r
}
