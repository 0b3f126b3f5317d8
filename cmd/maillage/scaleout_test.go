package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/feeds"
	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/kurrentdb/kurrentdbtest"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// startMain starts the real server through Main with serve's flags, on a
// data directory of its own, and closes it when the test ends.
func startMain(t *testing.T, args ...string) *Main {
	t.Helper()
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags(append([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)); err != nil {
		t.Fatal(err)
	}
	m.log = slog.New(slog.DiscardHandler)
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

var (
	aseActor  = domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	mecsActor = domain.Actor{Institution: "mecs-35", Professional: "Julien Roux"}
	auditor   = domain.Viewer{Role: domain.RoleAuditor}
)

func command(id domain.CaseID, actor domain.Actor, key string, p domain.Payload) cases.Request {
	return cases.Request{CaseID: id, IdempotencyKey: key,
		Command: domain.Command{Type: p.EventType(), Actor: actor, Role: domain.RoleProfessional, Payload: p}}
}

func openCase(id domain.CaseID) cases.Request {
	return command(id, aseActor, "open", &domain.CaseOpenedPayload{ChildReference: "TST-35-" + id.String()[:4], LegalFrame: domain.FrameAdministrative,
		Departement: "35", Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}})
}

func observation(id domain.CaseID, key string) cases.Request {
	return command(id, aseActor, key, &domain.ObservationRecordedPayload{Summary: "observation " + key})
}

// recordRetrying records a command, retrying it with its idempotency key
// while the store is unavailable or the case moves under it, a bounded
// number of times; each retry is counted in retries.
func recordRetrying(ctx context.Context, svc *cases.Service, req cases.Request, retries *atomic.Int64) (cases.Result, error) {
	var err error
	for range 400 {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var res cases.Result
		res, err = svc.Record(actx, req)
		cancel()
		if err == nil {
			return res, nil
		}
		var refusal *domain.Error
		if errors.As(err, &refusal) || errors.Is(err, cases.ErrIdempotencyKeyReused) || ctx.Err() != nil {
			return res, err
		}
		retries.Add(1)
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return cases.Result{}, fmt.Errorf("%s not accepted after 400 attempts: %w", req.Command.Type, err)
}

// load records observations on cases without pause, one worker per case,
// and keeps the acknowledged event ids of each case in order.
type load struct {
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	acks    atomic.Int64
	retries atomic.Int64
	lastAck atomic.Int64 // unix nanoseconds
	maxGap  atomic.Int64 // longest time without an acknowledgement, for the log

	mu    sync.Mutex
	acked map[domain.CaseID][]uuid.UUID
	err   error
}

func startLoad(t *testing.T, svc *cases.Service, workers int) *load {
	ctx, cancel := context.WithCancel(t.Context())
	l := &load{ctx: ctx, stop: cancel, acked: map[domain.CaseID][]uuid.UUID{}}
	for range workers {
		id := uuid.New()
		l.wg.Go(func() {
			req := openCase(id)
			for i := 0; ctx.Err() == nil; i++ {
				res, err := recordRetrying(ctx, svc, req, &l.retries)
				if err != nil && ctx.Err() != nil {
					return // a command cut by the end of the load is not acknowledged
				}
				l.mu.Lock()
				if err != nil && l.err == nil {
					l.err = fmt.Errorf("case %s: %w", id, err)
				}
				for _, e := range res.Events {
					l.acked[id] = append(l.acked[id], e.ID)
				}
				l.mu.Unlock()
				if err != nil {
					return
				}
				l.acks.Add(1)
				now := time.Now().UnixNano()
				if gap := now - l.lastAck.Swap(now); gap > l.maxGap.Load() && l.acks.Load() > 1 {
					l.maxGap.Store(gap)
				}
				req = observation(id, fmt.Sprintf("obs-%d", i))
			}
		})
	}
	t.Cleanup(func() { l.finish() })
	return l
}

// waitMore waits until n more commands are acknowledged, or fails when a
// worker gave up (each retries a bounded number of times).
func (l *load) waitMore(t *testing.T, n int64, what string) {
	t.Helper()
	target := l.acks.Load() + n
	for l.acks.Load() < target {
		l.mu.Lock()
		err := l.err
		l.mu.Unlock()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish stops the load and returns the acknowledged events by case.
func (l *load) finish() map[domain.CaseID][]uuid.UUID {
	l.stop()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// follower follows the store as the feed relay does: from its last
// position, again after any failure, checking that positions only grow.
// Like a supervisor, it also starts Follow again when nothing came for a
// while (stalled): see docs/scale-out.md, "Known issues", for the JetStream
// ordered consumer that can stay stuck for minutes after a node loss. A
// restart is safe: it goes on after the last event handled.
type follower struct {
	stop     context.CancelFunc
	done     chan struct{}
	restarts atomic.Int64 // after Follow returned an error
	stalls   atomic.Int64 // after nothing came for stallAfter

	mu       sync.Mutex
	events   []domain.Event
	progress time.Time
	err      error
}

// stallAfter is how long the follower waits for an event before it starts
// Follow again.
const stallAfter = 10 * time.Second

func startFollower(t *testing.T, store domain.EventStore) *follower {
	ctx, cancel := context.WithCancel(t.Context())
	f := &follower{stop: cancel, done: make(chan struct{}), progress: time.Now()}
	go func() {
		defer close(f.done)
		var last domain.Position
		for ctx.Err() == nil {
			fctx, fcancel := context.WithCancel(ctx)
			stalled := f.watch(fctx, fcancel)
			err := store.Follow(fctx, last, func(e domain.Event) error {
				f.mu.Lock()
				defer f.mu.Unlock()
				if e.Position <= last {
					f.err = fmt.Errorf("event %s at position %d after %d: a duplicate or out of order", e.ID, e.Position, last)
					return f.err
				}
				last, f.progress = e.Position, time.Now()
				f.events = append(f.events, e)
				return nil
			})
			fcancel()
			if f.failed() != nil || ctx.Err() != nil {
				return
			}
			if stalled.Load() {
				f.stalls.Add(1)
				continue
			}
			f.restarts.Add(1)
			t.Logf("follower: Follow returned %v; following again from %d", err, last)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

// watch cancels a Follow that handled nothing for stallAfter, and says so.
func (f *follower) watch(ctx context.Context, cancel context.CancelFunc) *atomic.Bool {
	stalled := new(atomic.Bool)
	f.mu.Lock()
	f.progress = time.Now()
	f.mu.Unlock()
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				f.mu.Lock()
				idle := time.Since(f.progress)
				f.mu.Unlock()
				if idle > stallAfter {
					stalled.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return stalled
}

func (f *follower) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// waitFor waits until the follower holds n events (a bounded number of
// times) and stops it.
func (f *follower) waitFor(t *testing.T, n int) []domain.Event {
	t.Helper()
	start := time.Now()
	defer func() {
		t.Logf("the follower caught up %s after the load ended", time.Since(start).Round(time.Millisecond))
	}()
	for range 2400 {
		f.mu.Lock()
		got, err := len(f.events), f.err
		f.mu.Unlock()
		if err != nil {
			t.Fatalf("follower: %v", err)
		}
		if got >= n {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	f.stop()
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events
}

// readAll reads the whole store, retrying while it is unavailable.
func readAll(t *testing.T, store domain.EventStore) []domain.Event {
	t.Helper()
	var err error
	for range 100 {
		var all []domain.Event
		for e, rerr := range store.ReadAll(t.Context(), 0) {
			if err = rerr; err != nil {
				break
			}
			all = append(all, e)
		}
		if err == nil {
			return all
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ReadAll: %v", err)
	return nil
}

// checkExactlyOnce fails unless the store holds every acknowledged event
// once, each case's history linear (sequences 1, 2, ... with a verified
// hash chain) and holding exactly its acknowledged events, in global order
// with growing positions, and unless the follower saw that same order.
func checkExactlyOnce(t *testing.T, store domain.EventStore, acked map[domain.CaseID][]uuid.UUID, followed []domain.Event) {
	t.Helper()
	all := readAll(t, store)
	seen := map[uuid.UUID]bool{}
	byCase := map[domain.CaseID][]domain.Event{}
	var last domain.Position
	for _, e := range all {
		if seen[e.ID] {
			t.Fatalf("event %s of case %s recorded twice", e.ID, e.CaseID)
		}
		if e.Position <= last {
			t.Fatalf("position %d after %d", e.Position, last)
		}
		seen[e.ID], last = true, e.Position
		byCase[e.CaseID] = append(byCase[e.CaseID], e)
	}
	total := 0
	for id, want := range acked {
		got := byCase[id]
		verifier := domain.NewChainVerifier(id)
		for i, e := range got {
			if e.Sequence != uint64(i)+1 {
				t.Fatalf("case %s: event %d has sequence %d", id, i, e.Sequence)
			}
			if err := verifier.Event(e); err != nil {
				t.Fatalf("case %s: %v", id, err)
			}
		}
		// Commands cut by the end of the load may have been recorded
		// without an answer: they come after every acknowledged one.
		if len(got) < len(want) || len(got) > len(want)+1 {
			t.Fatalf("case %s: %d events recorded, %d acknowledged", id, len(got), len(want))
		}
		for i, w := range want {
			if got[i].ID != w {
				t.Fatalf("case %s: event %d is %s, the acknowledged one is %s", id, i, got[i].ID, w)
			}
		}
		total += len(want)
	}
	if len(byCase) != len(acked) {
		t.Fatalf("%d cases recorded, %d loaded", len(byCase), len(acked))
	}
	if len(followed) != len(all) {
		t.Fatalf("the follower saw %d events, the store holds %d", len(followed), len(all))
	}
	for i := range all {
		if followed[i].ID != all[i].ID || followed[i].Position != all[i].Position {
			t.Fatalf("follower: event %d is %s at %d, the store has %s at %d", i, followed[i].ID, followed[i].Position, all[i].ID, all[i].Position)
		}
	}
	t.Logf("%d events in %d cases, %d acknowledged", len(all), len(byCase), total)
}

// TestServeOnANATSClusterSurvivesNodeLoss runs maillage serve on a 3-node
// NATS cluster (--nats a,b,c: replicated streams) under a steady load of
// commands, stops a node that does not lead the events stream and starts it
// again, then cuts the stream's leader off the network (as a crash: it hands
// nothing over). Commands are accepted again after each loss (retried with
// their idempotency key while the store is unavailable), and in the end
// every acknowledged event is in the store exactly once, every case linear,
// and a follower of the store (as the feed relay) saw them all once, in
// order, without a gap.
func TestServeOnANATSClusterSurvivesNodeLoss(t *testing.T) {
	cluster := startNATSCluster(t, 3)
	m := startMain(t, "--nats", cluster.URLs())
	info, err := m.store.JetStream().Stream(t.Context(), m.store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	if r := info.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("events stream with %d replicas, want 3", r)
	}
	reader, err := jetstream.Open(t.Context(), jetstream.WithURL(cluster.URLs()), jetstream.WithReplicas(3), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	f := startFollower(t, reader)
	l := startLoad(t, m.cases, 4)
	l.waitMore(t, 100, "before any loss")

	leader := waitStreamLeader(t, cluster, m.store.StreamName())
	other := (leader + 1) % 3
	cluster.stop(other)
	t.Logf("stopped node %d (not the stream leader, %d)", other, leader)
	l.waitMore(t, 100, "with a follower node down")
	cluster.start(other)
	cluster.waitCurrent()
	waitReplicasCurrent(t, reader)
	l.waitMore(t, 50, "after the node came back")

	leader = waitStreamLeader(t, cluster, m.store.StreamName())
	before := l.retries.Load()
	cluster.cut(leader)
	t.Logf("cut node %d, the stream leader, off the network", leader)
	l.waitMore(t, 100, "after the stream leader was lost")
	t.Logf("new stream leader: node %d; attempts retried while the store was unavailable: %d before the leader was lost, %d after; longest time without an acknowledgement: %s; follower restarts: %d after an error, %d after a stall",
		waitStreamLeader(t, cluster, m.store.StreamName()), before, l.retries.Load()-before, time.Duration(l.maxGap.Load()).Round(time.Millisecond), f.restarts.Load(), f.stalls.Load())

	acked := l.finish()
	all := readAll(t, reader)
	checkExactlyOnce(t, reader, acked, f.waitFor(t, len(all)))
	checkFeedHasNoGap(t, m, "ase-35", func() []domain.Event { return readAll(t, reader) })
	// Components that keep consumers on the cut node cannot delete them:
	// the server reaps them; closing says so.
	if err := m.Close(); err != nil {
		t.Logf("closing maillage after its stream leader was cut off: %v", err)
	}
}

// checkFeedHasNoGap waits until the server's feed relay has relayed every
// event of the store (storeEvents reads them), then checks that inst's
// partner feed holds, for each case, the events of the store once each, in
// case order, without a gap: what the relay followed across the node
// losses reached the partner whole. A command cut by the end of a load may
// be recorded after the store was read, and relayed: the store is read
// again then (a duplicate or a gap in the feed fails at once).
func checkFeedHasNoGap(t *testing.T, m *Main, inst domain.InstitutionID, storeEvents func() []domain.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for attempt := 1; ; attempt++ {
		all := storeEvents()
		if err := m.relay.WaitFor(ctx, all[len(all)-1].Position); err != nil {
			t.Fatalf("the feed relay did not catch up: %v", err)
		}
		want := map[domain.CaseID][]uuid.UUID{}
		for _, e := range all {
			want[e.CaseID] = append(want[e.CaseID], e.ID)
		}
		got, retries := readFeedEvents(ctx, t, m, inst)
		mismatch := ""
		for id, ids := range want {
			if len(got[id]) != len(ids) {
				mismatch = fmt.Sprintf("case %s: %d events, the store holds %d", id, len(got[id]), len(ids))
				break
			}
			for i := range ids {
				if got[id][i] != ids[i] {
					t.Fatalf("feed of %s, case %s: event %d is %s, the store has %s", inst, id, i+1, got[id][i], ids[i])
				}
			}
		}
		if len(got) != len(want) && mismatch == "" {
			mismatch = fmt.Sprintf("%d cases, the store holds %d", len(got), len(want))
		}
		if mismatch == "" {
			t.Logf("feed of %s: %d events of %d cases, each once, in order (reads asked again after no responder: %d)", inst, len(all), len(want), retries)
			return
		}
		if attempt == 3 {
			t.Fatalf("feed of %s: %s", inst, mismatch)
		}
		t.Logf("feed of %s: %s; reading the store again", inst, mismatch)
	}
}

// readFeedEvents reads inst's whole feed, checking that each case's events
// come once each, in sequence order, and returns their ids per case.
func readFeedEvents(ctx context.Context, t *testing.T, m *Main, inst domain.InstitutionID) (map[domain.CaseID][]uuid.UUID, int) {
	t.Helper()
	js, err := njs.New(m.feedServer.Conn())
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, feeds.StreamName(inst), njs.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[domain.CaseID][]uuid.UUID{}
	retries := 0
	for n, pending := uint64(0), cons.CachedInfo().NumPending; n < pending; n++ {
		msg, err := cons.Next(njs.FetchMaxWait(10 * time.Second))
		// On a cluster the ordered consumer is recreated for each read, and
		// a read may come before the new consumer is known: ask again (a gap
		// or a duplicate would still be caught below).
		for ; errors.Is(err, nats.ErrNoResponders) && retries < 1000; retries++ {
			time.Sleep(10 * time.Millisecond)
			msg, err = cons.Next(njs.FetchMaxWait(10 * time.Second))
		}
		if err != nil {
			t.Fatalf("feed of %s, message %d of %d: %v", inst, n+1, pending, err)
		}
		fm, err := feeds.ParseMessage(msg.Headers(), msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		if fm.Kind != feeds.KindEvent {
			t.Fatalf("feed of %s: a %s message in a load of observations", inst, fm.Kind)
		}
		if fm.View.ID == nil || fm.Sequence != uint64(len(got[fm.CaseID])+1) {
			t.Fatalf("feed of %s, case %s: sequence %d after %d (gap or duplicate)", inst, fm.CaseID, fm.Sequence, len(got[fm.CaseID]))
		}
		got[fm.CaseID] = append(got[fm.CaseID], *fm.View.ID)
	}
	return got, retries
}

func waitStreamLeader(t *testing.T, c *natsCluster, stream string) int {
	t.Helper()
	for range 600 {
		if i := c.streamLeader(stream); i >= 0 {
			return i
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("stream %s has no leader", stream)
	return -1
}

// waitReplicasCurrent waits until every replica of the events stream is
// online and current.
func waitReplicasCurrent(t *testing.T, store *jetstream.Store) {
	t.Helper()
	for range 600 {
		s, err := store.JetStream().Stream(t.Context(), store.StreamName())
		if err == nil && s.CachedInfo().Cluster != nil && len(s.CachedInfo().Cluster.Replicas) == 2 {
			current := true
			for _, r := range s.CachedInfo().Cluster.Replicas {
				current = current && r.Current && !r.Offline
			}
			if current {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the replicas of the events stream did not catch up")
}

// TestTwoServersOnOneStore runs two maillage servers on one store (a NATS
// cluster; KurrentDB, through its test double, with feeds on a NATS
// cluster) recording commands on the same case at once: optimistic
// concurrency keeps the case's history linear, every acknowledged command
// is in it once, and a write on one server is read on the other given the
// position it returned (read models waiting for it, and the case read).
func TestTwoServersOnOneStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags func(t *testing.T) []string
	}{
		{"nats-cluster", func(t *testing.T) []string {
			return []string{"--nats", startNATSCluster(t, 3).URLs()}
		}},
		{"kurrentdb", func(t *testing.T) []string {
			return []string{"--nats", startNATSCluster(t, 3).URLs(), "--store", "kurrentdb", "--kurrentdb", kurrentdbtest.Start(t).URL()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags := tc.flags(t)
			servers := []*Main{startMain(t, flags...), startMain(t, flags...)}
			ctx := t.Context()
			var retries atomic.Int64
			id := uuid.New()
			opened, err := recordRetrying(ctx, servers[0].cases, openCase(id), &retries)
			if err != nil {
				t.Fatal(err)
			}
			const workers, commands = 3, 8
			var (
				mu    sync.Mutex
				acked = []uuid.UUID{opened.Events[0].ID}
				wg    sync.WaitGroup
			)
			for s, m := range servers {
				for w := range workers {
					wg.Go(func() {
						for i := range commands {
							res, err := recordRetrying(ctx, m.cases, observation(id, fmt.Sprintf("s%d-w%d-%d", s, w, i)), &retries)
							if err != nil {
								t.Errorf("server %d: %v", s, err)
								return
							}
							mu.Lock()
							acked = append(acked, res.Events[0].ID)
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			t.Logf("%d commands on one case from two servers; %d attempts retried after a conflict", len(acked), retries.Load())
			history, err := servers[1].events.ReadCase(ctx, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(history) != len(acked) {
				t.Fatalf("the case holds %d events, %d were acknowledged", len(history), len(acked))
			}
			want := map[uuid.UUID]bool{}
			for _, a := range acked {
				want[a] = true
			}
			verifier := domain.NewChainVerifier(id)
			for i, e := range history {
				if e.Sequence != uint64(i)+1 || !want[e.ID] {
					t.Fatalf("event %d: sequence %d, id %s acknowledged: %v", i, e.Sequence, e.ID, want[e.ID])
				}
				delete(want, e.ID)
				if err := verifier.Event(e); err != nil {
					t.Fatal(err)
				}
			}

			// Read your writes, each way.
			for w, r := range []int{1, 0} {
				res, err := recordRetrying(ctx, servers[w].cases, observation(id, fmt.Sprintf("ryw-%d", w)), &retries)
				if err != nil {
					t.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err = servers[r].readModel.WaitFor(wctx, res.Position)
				cancel()
				if err != nil {
					t.Fatalf("server %d's read models waiting for position %d written on server %d: %v", r, res.Position, w, err)
				}
				tl, err := servers[r].cases.Timeline(ctx, id, auditor, res.Version-1, 10)
				if err != nil {
					t.Fatal(err)
				}
				if tl.Version < res.Version || len(tl.Events) == 0 {
					t.Fatalf("server %d reads the case at version %d after server %d wrote version %d", r, tl.Version, w, res.Version)
				}
			}
		})
	}
}

// Given a NATS cluster two of whose nodes are still down when maillage
// starts (compose starting everything at once, nodes restarting), serve
// waits for the cluster to place its 3-replica streams instead of failing
// at once, and records once the nodes are back.
func TestServeWaitsForItsClusterToSettle(t *testing.T) {
	cluster := startNATSCluster(t, 3)
	cluster.stop(1)
	cluster.stop(2)
	back := make(chan time.Time, 1)
	go func() {
		time.Sleep(2 * time.Second)
		cluster.start(1)
		cluster.start(2)
		back <- time.Now()
	}()
	m := startMain(t, "--nats", cluster.URLs())
	opened := time.Now()
	if backAt := <-back; opened.Before(backAt) {
		t.Fatalf("serve opened %s before the third node was back: the test did not wait for anything", backAt.Sub(opened))
	}
	var retries atomic.Int64
	if _, err := recordRetrying(t.Context(), m.cases, openCase(uuid.New()), &retries); err != nil {
		t.Fatal(err)
	}
}
