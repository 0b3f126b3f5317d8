package feeds

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/domain"
)

// run is one pass of the relay from a checkpoint: events are dealt to
// shards by case, so that a case's events are relayed in order while
// several cases move at once.
type run struct {
	r      *Relay
	ctx    context.Context
	start  domain.Position
	shards []chan job
	caches []*caseCache
	track  tracker
	// boundaries is where each case's next consent or order boundary is
	// kept (BoundaryBucket), due is the cases sent to their shard for one
	// and not yet evaluated.
	boundaries jetstream.KeyValue
	dueMu      sync.Mutex
	due        map[domain.CaseID]bool
}

// job is a shard's work: an event to relay, or a case to evaluate again
// because one of its consents or orders started or ended (boundary).
type job struct {
	event    domain.Event
	boundary domain.CaseID
}

func newRun(ctx context.Context, r *Relay, start domain.Position) *run {
	run := &run{r: r, ctx: ctx, start: start, track: tracker{finished: map[domain.Position]bool{}}, due: map[domain.CaseID]bool{}}
	per := max(1, r.cfg.cacheSize/r.cfg.shards)
	for range r.cfg.shards {
		run.shards = append(run.shards, make(chan job, 256))
		run.caches = append(run.caches, newCaseCache(per))
	}
	return run
}

// dispatch hands an event to its case's shard (Follow's handler).
func (run *run) dispatch(e domain.Event) error {
	run.track.add(e.Position)
	select {
	case run.shards[run.shardOf(e.CaseID)] <- job{event: e}:
		return nil
	case <-run.ctx.Done():
		return context.Cause(run.ctx)
	}
}

func (run *run) shardOf(id domain.CaseID) int {
	return int(maphash.Bytes(run.r.seed, id[:]) % uint64(len(run.shards)))
}

// work relays the events of one shard, in order.
func (run *run) work(ctx context.Context, shard int) error {
	for j := range run.shards[shard] {
		if ctx.Err() != nil {
			return nil
		}
		if j.boundary != (domain.CaseID{}) {
			if err := run.relayBoundary(ctx, run.caches[shard], j.boundary); err != nil {
				return fmt.Errorf("a case's consent or order boundary: %w", err)
			}
			continue
		}
		e := j.event
		if err := run.relayEvent(ctx, run.caches[shard], e); err != nil {
			// Logs name the position, never the case (docs/operations.md).
			return fmt.Errorf("event at position %d: %w", e.Position, err)
		}
		if run.r.crashed(crashAfterEvent, e) {
			return errCrashed
		}
		if done, moved := run.track.finish(e.Position); moved {
			run.r.setDone(done)
		}
	}
	return nil
}

// caseEntry is a case as the relay knows it: its events so far, its state,
// what each member holds, and when the policy was last evaluated for all.
type caseEntry struct {
	id        domain.CaseID
	state     *domain.State
	events    []domain.Event
	holdings  map[domain.InstitutionID]*holding
	evaluated time.Time
	// boundary is the next consent or order boundary kept for the case in
	// BoundaryBucket, as far as this entry knows (zero: none or unknown).
	boundary time.Time
}

// relayEvent publishes event e to every member of its case.
func (run *run) relayEvent(ctx context.Context, cache *caseCache, e domain.Event) error {
	ent, err := run.entry(ctx, cache, e)
	if err != nil {
		return err
	}
	ent.state.Apply(e)
	ent.events = append(ent.events, e)
	now := run.r.cfg.now()
	reevaluate := domain.ChangesAccess(e) || ent.evaluated.IsZero() || domain.AccessBoundaryPassed(ent.state, ent.evaluated, now)
	if err := run.relayMembers(ctx, ent, e, now, reevaluate); err != nil {
		return err
	}
	return run.keepBoundary(ctx, ent, now, false)
}

// relayBoundary evaluates a case again for every member once one of its
// consents or orders started or ended, with no event to relay: what a
// member may see changed with time alone (a consent ran out: the partner
// must not keep the health events it covered).
func (run *run) relayBoundary(ctx context.Context, cache *caseCache, id domain.CaseID) error {
	defer func() {
		run.dueMu.Lock()
		delete(run.due, id)
		run.dueMu.Unlock()
	}()
	ent := cache.get(id)
	if ent == nil {
		events, err := run.r.store.ReadCase(ctx, id, 0)
		if err != nil {
			return fmt.Errorf("read case: %w", err)
		}
		if len(events) == 0 {
			if err := run.boundaries.Delete(ctx, id.String()); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("boundary bucket: %w", err)
			}
			return nil
		}
		ent = &caseEntry{id: id, state: domain.NewState(id), holdings: map[domain.InstitutionID]*holding{}}
		for _, ev := range events {
			ent.state.Apply(ev)
			ent.events = append(ent.events, ev)
		}
		cache.put(ent)
	}
	if len(ent.events) == 0 {
		return nil
	}
	now := run.r.cfg.now()
	if err := run.relayMembers(ctx, ent, ent.events[len(ent.events)-1], now, true); err != nil {
		return err
	}
	return run.keepBoundary(ctx, ent, now, true)
}

// relayMembers publishes to every member of ent what event e (the case's
// last, as far as ent goes) makes due, evaluating the policy again for
// everything it holds when reevaluate.
func (run *run) relayMembers(ctx context.Context, ent *caseEntry, e domain.Event, now time.Time, reevaluate bool) error {
	members := make([]*domain.Member, 0, len(ent.state.Members))
	for _, m := range ent.state.Members {
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b *domain.Member) int { return strings.Compare(string(a.Institution), string(b.Institution)) })
	held := make([]*holding, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held[i], errs[i] = run.relayTo(ctx, ent, m, e, now, reevaluate, ent.holdings[m.Institution])
		}()
	}
	wg.Wait()
	for i, m := range members {
		if held[i] != nil {
			ent.holdings[m.Institution] = held[i]
		} else {
			delete(ent.holdings, m.Institution) // unknown after a failure: read it again
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ent.evaluated = now
	return nil
}

// entry returns the case folded up to the event before e, from the cache or
// read again from the store.
func (run *run) entry(ctx context.Context, cache *caseCache, e domain.Event) (*caseEntry, error) {
	if ent := cache.get(e.CaseID); ent != nil && ent.state.Version == e.Sequence-1 {
		return ent, nil
	}
	ent := &caseEntry{id: e.CaseID, state: domain.NewState(e.CaseID), holdings: map[domain.InstitutionID]*holding{}}
	if e.Sequence > 1 {
		events, err := run.r.store.ReadCase(ctx, e.CaseID, 0)
		if err != nil {
			return nil, fmt.Errorf("read case: %w", err)
		}
		for _, ev := range events {
			if ev.Sequence >= e.Sequence {
				break
			}
			if ev.Sequence != ent.state.Version+1 {
				return nil, fmt.Errorf("store gave sequence %d after %d", ev.Sequence, ent.state.Version)
			}
			ent.state.Apply(ev)
			ent.events = append(ent.events, ev)
		}
		if ent.state.Version != e.Sequence-1 {
			return nil, fmt.Errorf("store holds %d events before sequence %d", ent.state.Version, e.Sequence)
		}
	}
	cache.put(ent)
	return ent, nil
}

// op is one message to publish to a member: a sequence, as decided, and
// the sequence it names as its cause.
type op struct {
	kind     Kind
	event    domain.Event
	decision domain.Decision
	cause    uint64
}

// relayTo publishes to member m what event e makes due and returns what m
// holds after it. held is what m was known to hold, nil when unknown.
func (run *run) relayTo(ctx context.Context, ent *caseEntry, m *domain.Member, e domain.Event, now time.Time, reevaluate bool, held *holding) (*holding, error) {
	inst := m.Institution
	if err := checkInstitution(inst); err != nil {
		run.r.log.Error("feed relay: member without a usable feed name: skipped", "err", err)
		return nil, nil
	}
	if err := run.r.ensureFeed(ctx, inst); err != nil {
		return nil, err
	}
	viewer := domain.Viewer{Role: domain.RoleProfessional, Institution: inst}
	tell := domain.TellingOf(ent.state, viewer)
	h := held
	var err error
	if h == nil {
		if tell.Through < e.Sequence && !reevaluate {
			return nil, nil // a former member is due nothing recorded after it left
		}
		if m.JoinedSeq == e.Sequence {
			// A member's first event: its feed is most likely empty for this
			// case. If it is not (a relay that crashed, a member that comes
			// back), the first publish fails its sequence check and the
			// feed is read.
			h = &holding{}
		} else if h, err = run.r.loadHolding(ctx, inst, ent.id); err != nil {
			return nil, err
		}
	}
	if h.erased || h.through > e.Sequence {
		return h, nil // erased, or relayed before a crash with what came after
	}
	retracted := false
	for attempt := 1; ; attempt++ {
		ops := plan(ent, viewer, tell, e, h, now, reevaluate || h.fresh)
		stale, err := run.publish(ctx, inst, ent, h, ops, now)
		if err != nil {
			return nil, err
		}
		if !stale {
			retracted = retracted || slices.ContainsFunc(ops, func(o op) bool { return o.kind == KindRetract })
			break
		}
		if attempt == 5 {
			return nil, fmt.Errorf("feed of %s for the case keeps changing under the relay (another relay running?)", inst)
		}
		if h, err = run.r.loadHolding(ctx, inst, ent.id); err != nil {
			return nil, err
		}
		if h.erased {
			return h, nil
		}
	}
	h.fresh = false
	if retracted {
		// Reading the feed again erases the messages the retract notices
		// supersede, so that the partner cannot read them again.
		if h, err = run.r.loadHolding(ctx, inst, ent.id); err != nil {
			return nil, err
		}
		h.fresh = false
	}
	return h, nil
}

// plan lists the messages viewer v (a member) is due after event e: first
// the sequences it has not been sent (up to e, or up to its leaving), as it
// may see them now; then, when what it may see may have changed, a reveal or
// a retract for each sequence it holds in another form than it may now. tell
// is what it may still be told (domain.TellingOf): a former member gets
// nothing after its leaving, no reveal, and retracts naming its leaving as
// their cause.
func plan(ent *caseEntry, v domain.Viewer, tell domain.Telling, e domain.Event, h *holding, now time.Time, reevaluate bool) []op {
	if h.through > e.Sequence {
		return nil // relayed before a crash, with what came after
	}
	limit := min(e.Sequence, tell.Through)
	cause := limit
	var ops, changes []op
	sight := domain.SightOf(ent.state, v, now)
	for k := uint64(len(h.vis)) + 1; k <= limit; k++ {
		ev := ent.events[k-1]
		ops = append(ops, op{kind: KindEvent, event: ev, decision: sight.See(ev), cause: cause})
	}
	if reevaluate {
		for k := uint64(1); k <= min(uint64(len(h.vis)), limit); k++ {
			ev := ent.events[k-1]
			d := sight.See(ev)
			key, heldKey := viewKey(d.Visibility, d.Fields), h.vis[k-1]
			if key == heldKey {
				continue
			}
			kind := KindRetract
			if shows(key, heldKey) {
				if !tell.ShowMore {
					continue
				}
				kind = KindReveal
			}
			changes = append(changes, op{kind: kind, event: ev, decision: d, cause: cause})
		}
	}
	return append(ops, changes...)
}

// publish sends ops to inst's feed, each expecting the last message of the
// case's subject to be the one h knows. stale means the feed was not as h
// knew it (nothing more was sent): read it again and plan again.
func (run *run) publish(ctx context.Context, inst domain.InstitutionID, ent *caseEntry, h *holding, ops []op, now time.Time) (stale bool, err error) {
	r := run.r
	subject := Subject(inst, ent.id)
	for _, o := range ops {
		view := domain.View(o.event, o.decision)
		msg, err := EncodeMessage(subject, Message{Kind: o.kind, CaseID: ent.id, Sequence: o.event.Sequence, Cause: o.cause, Rule: o.decision.Rule, View: view})
		if err != nil {
			return false, err
		}
		if r.cfg.access != nil && o.kind != KindRetract && view.Visibility != domain.Hidden {
			rec := domain.AccessRecord{At: now, Kind: domain.AccessFeed, CaseID: ent.id, FromSequence: o.event.Sequence, ToSequence: o.event.Sequence,
				Role: domain.RoleProfessional, Institution: inst, Purpose: "partner_feed:" + string(o.kind)}
			if err := r.cfg.access.Record(ctx, rec); err != nil {
				return false, fmt.Errorf("access log: %w", err)
			}
		}
		if r.crashed(crashBeforePublish, o.event) {
			return false, errCrashed
		}
		ack, err := r.js.PublishMsg(ctx, msg,
			jetstream.WithMsgID(msgID(ent.id, o.event.Sequence, inst, o.kind, o.cause, h.lastMsg)),
			jetstream.WithExpectLastSequencePerSubject(h.lastMsg))
		switch {
		case isWrongLastSequence(err):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("publish to %s: %w", inst, err)
		case ack.Duplicate:
			return true, nil
		}
		h.record(ack.Sequence, o.kind, o.event.Sequence, o.cause, viewKey(view.Visibility, view.RedactedFields))
		r.metrics.publishedMsg(inst, o.kind)
		if r.crashed(crashAfterPublish, o.event) {
			return false, errCrashed
		}
	}
	return false, nil
}

// isWrongLastSequence reports whether a publish failed its expected last
// subject sequence check.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// holding is what one member holds of one case, as its feed says: the view
// of each sequence it was sent (vis[k-1] for sequence k, a viewKey), the
// stream sequence of the last message of the case's subject, and the
// sequence of the last event whose relaying published to it.
type holding struct {
	vis     []string
	lastMsg uint64
	through uint64
	fresh   bool // read from the feed and not compared with the policy since
	erased  bool // the feed ends with an erase notice: nothing more is sent
}

func (h *holding) record(msgSeq uint64, kind Kind, seq, cause uint64, key string) {
	h.lastMsg = msgSeq
	h.through = max(h.through, cause)
	switch {
	case kind == KindEvent && seq == uint64(len(h.vis))+1:
		h.vis = append(h.vis, key)
	case seq <= uint64(len(h.vis)):
		h.vis[seq-1] = key
	}
}

// loadHolding reads what inst holds of a case from its feed, and erases
// the messages whose content a later retract notice withdrew (left over
// when a relay stopped between the notice and the erasure).
func (r *Relay) loadHolding(ctx context.Context, inst domain.InstitutionID, id domain.CaseID) (*holding, error) {
	h := &holding{fresh: true}
	views := map[uint64]string{}
	content := map[uint64][]uint64{} // sequence -> messages that carry its content
	var erase, before []uint64
	err := readSubject(ctx, r.nc, StreamName(inst), Subject(inst, id), 1, 0, func(msgSeq uint64, m *nats.Msg) error {
		mh, err := parseHeader(m.Header)
		if err != nil {
			return fmt.Errorf("message %d: %w", msgSeq, err)
		}
		if mh.caseID != id {
			return fmt.Errorf("message %d: %w: another case's message on the subject", msgSeq, ErrBadMessage)
		}
		h.lastMsg = msgSeq
		if mh.kind == KindErase {
			// The case was erased (EraseCase): whatever is left before the
			// notice goes (an erasure stopped half-way), nothing comes after.
			h.erased = true
			erase = append(erase, before...)
			before, views, content = nil, map[uint64]string{}, map[uint64][]uint64{}
			return nil
		}
		before = append(before, msgSeq)
		views[mh.sequence] = mh.key
		h.through = max(h.through, mh.cause)
		if mh.kind == KindRetract {
			erase = append(erase, content[mh.sequence]...)
			content[mh.sequence] = nil
		}
		if mh.key != string(domain.Hidden) {
			content[mh.sequence] = append(content[mh.sequence], msgSeq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if h.erased {
		views = nil
	}
	h.vis = make([]string, len(views))
	for seq, key := range views {
		if seq > uint64(len(views)) {
			return nil, fmt.Errorf("feed of %s: %w: sequences are missing before %d", inst, ErrBadMessage, seq)
		}
		h.vis[seq-1] = key
	}
	if len(erase) > 0 {
		stream, err := r.js.Stream(ctx, StreamName(inst))
		if err != nil {
			return nil, fmt.Errorf("feed of %s: %w", inst, err)
		}
		for _, seq := range erase {
			if err := stream.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil, fmt.Errorf("feed of %s: erase message %d: %w", inst, seq, err)
			}
		}
	}
	return h, nil
}

// ensureFeed creates inst's feed stream and its partner consumer, once per
// relay. Creations are serialised, and an existing stream is only updated
// when its configuration differs: nats-server 2.15 races when a stream is
// updated while a consumer is being created on it.
func (r *Relay) ensureFeed(ctx context.Context, inst domain.InstitutionID) error {
	r.mu.Lock()
	ok := r.feeds[inst]
	r.mu.Unlock()
	if ok {
		return nil
	}
	r.ensureMu.Lock()
	defer r.ensureMu.Unlock()
	want := jetstream.StreamConfig{
		Name:        StreamName(inst),
		Description: "maillage partner feed of " + string(inst),
		Subjects:    []string{subjects(inst)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    r.cfg.replicas,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Discard:     jetstream.DiscardNew,
		Duplicates:  r.cfg.dedupWindow,
		AllowDirect: true,
	}
	stream, err := r.js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		stream, err = r.js.CreateStream(ctx, want)
	case err == nil:
		if have := stream.CachedInfo().Config; !slices.Equal(have.Subjects, want.Subjects) || !have.AllowDirect || have.Duplicates != want.Duplicates ||
			have.Replicas != want.Replicas {
			stream, err = r.js.UpdateStream(ctx, want)
		}
	}
	if err != nil {
		return fmt.Errorf("feed stream of %s: %w", inst, err)
	}
	if _, err := stream.Consumer(ctx, PartnerConsumer); errors.Is(err, jetstream.ErrConsumerNotFound) {
		_, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       PartnerConsumer,
			Description:   "the partner's cursor on its feed",
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxAckPending: 1000,
			MaxDeliver:    -1,
		})
		if err != nil {
			return fmt.Errorf("feed consumer of %s: %w", inst, err)
		}
	} else if err != nil {
		return fmt.Errorf("feed consumer of %s: %w", inst, err)
	}
	r.mu.Lock()
	r.feeds[inst] = true
	r.mu.Unlock()
	return nil
}

// tracker finds the position up to which every dispatched event is relayed,
// while shards finish them out of order.
type tracker struct {
	mu       sync.Mutex
	queue    []domain.Position // dispatched, not yet passed by done
	finished map[domain.Position]bool
}

func (t *tracker) add(p domain.Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queue = append(t.queue, p)
}

// finish marks p relayed and returns the new done position if it moved.
func (t *tracker) finish(p domain.Position) (domain.Position, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finished[p] = true
	var done domain.Position
	moved := false
	n := 0
	for n < len(t.queue) && t.finished[t.queue[n]] {
		done, moved = t.queue[n], true
		delete(t.finished, t.queue[n])
		n++
	}
	t.queue = t.queue[n:]
	return done, moved
}

// caseCache keeps the most recently relayed cases of a shard. Its shard
// uses it; Relay.Erase removes from it.
type caseCache struct {
	mu      sync.Mutex
	limit   int
	order   *list.List // of *caseEntry, most recent first
	entries map[domain.CaseID]*list.Element
}

func newCaseCache(limit int) *caseCache {
	return &caseCache{limit: limit, order: list.New(), entries: map[domain.CaseID]*list.Element{}}
}

func (c *caseCache) get(id domain.CaseID) *caseEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[id]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*caseEntry)
}

func (c *caseCache) put(ent *caseEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[ent.id]; ok {
		el.Value = ent
		c.order.MoveToFront(el)
		return
	}
	c.entries[ent.id] = c.order.PushFront(ent)
	if c.order.Len() > c.limit {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*caseEntry).id)
	}
}

func (c *caseCache) remove(id domain.CaseID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[id]; ok {
		c.order.Remove(el)
		delete(c.entries, id)
	}
}

// keepBoundary records the case's next boundary in BoundaryBucket when it
// changed (or always, with passed: the recorded one has passed), so that
// the relay evaluates the case again then, even if nothing else is
// recorded on it, and even after a restart.
func (run *run) keepBoundary(ctx context.Context, ent *caseEntry, now time.Time, passed bool) error {
	next := domain.NextAccessBoundary(ent.state, now)
	if next.Equal(ent.boundary) && !passed {
		return nil
	}
	var err error
	if next.IsZero() {
		err = run.boundaries.Delete(ctx, ent.id.String())
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			err = nil
		}
	} else {
		_, err = run.boundaries.Put(ctx, ent.id.String(), []byte(next.UTC().Format(time.RFC3339Nano)))
	}
	if err != nil {
		return fmt.Errorf("boundary bucket: %w", err)
	}
	ent.boundary = next
	return nil
}

// sweepBoundaries sends to their shard, every cfg.boundaryEvery until ctx
// ends, the cases whose recorded boundary has passed.
func (run *run) sweepBoundaries(ctx context.Context) {
	tick := time.NewTicker(run.r.cfg.boundaryEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		keys, err := run.boundaries.ListKeys(ctx)
		if err != nil {
			if ctx.Err() == nil {
				run.r.log.Warn("feed relay: listing the consent and order boundaries", "err", err)
			}
			continue
		}
		now := run.r.cfg.now()
		for key := range keys.Keys() {
			id, err := uuid.Parse(key)
			if err != nil {
				continue
			}
			entry, err := run.boundaries.Get(ctx, key)
			if err != nil {
				continue // deleted meanwhile
			}
			at, err := time.Parse(time.RFC3339Nano, string(entry.Value()))
			if err != nil || at.After(now) {
				continue
			}
			run.dueMu.Lock()
			already := run.due[id]
			run.due[id] = true
			run.dueMu.Unlock()
			if already {
				continue
			}
			select {
			case run.shards[run.shardOf(id)] <- job{boundary: id}:
			case <-ctx.Done():
				return
			}
		}
	}
}
