package feeds

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// clock is a clock the test sets; it starts at a fixed date.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set sets the clock to t.
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// env is a real event store (embedded JetStream), a real feed server and
// the case service, in a temporary directory.
type env struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	store *jetstream.Store
	feeds *Server
	svc   *cases.Service
	clock *clock
	last  domain.Position // position of the last recorded event
}

func newEnv(t *testing.T, serverOpts ...ServerOption) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), dir: t.TempDir(), clock: newClock()}
	var err error
	e.store, err = jetstream.Open(e.ctx, jetstream.WithEmbedded(e.dir+"/store"), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.startFeeds(serverOpts...)
	e.svc, err = cases.New(e.store, cases.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startFeeds starts the feed server on the environment's directory.
func (e *env) startFeeds(opts ...ServerOption) {
	e.t.Helper()
	s, err := StartServer(e.ctx, e.dir+"/feeds", append([]ServerOption{WithServerLogger(quiet)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.feeds = s
	e.t.Cleanup(func() { s.Close() })
}

// newRelay returns a relay on the environment, not started.
func (e *env) newRelay(opts ...Option) *Relay {
	e.t.Helper()
	r, err := NewRelay(e.store, e.feeds.Conn(), append([]Option{WithLogger(quiet), WithClock(e.clock.Now),
		WithCheckpointEvery(20 * time.Millisecond), WithRetryAfter(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// startRelay starts a relay, stopped at the end of the test.
func (e *env) startRelay(opts ...Option) *Relay {
	e.t.Helper()
	r := e.newRelay(opts...)
	r.Start()
	e.t.Cleanup(func() {
		if err := r.Stop(); err != nil && !errors.Is(err, errCrashed) {
			e.t.Error(err)
		}
	})
	return r
}

// wait waits until the relay has relayed everything recorded.
func (e *env) wait(r *Relay) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, e.last); err != nil {
		e.t.Fatal(err)
	}
}

// Institutions of the tests.
const (
	ase    domain.InstitutionID = "ase-35"
	mecs   domain.InstitutionID = "mecs-les-tilleuls"
	ditep  domain.InstitutionID = "ditep-la-passerelle"
	school domain.InstitutionID = "college.jules_ferry" // a dot and an underscore, to exercise Token
	aed    domain.InstitutionID = "aed-35"
)

var kinds = map[domain.InstitutionID]domain.InstitutionKind{ase: domain.KindASE, mecs: domain.KindMECS, ditep: domain.KindDITEP, school: domain.KindSchool, aed: domain.KindAED}

// record records a command as a professional of inst.
func (e *env) record(id domain.CaseID, inst domain.InstitutionID, cat domain.Category, p domain.Payload) []domain.Event {
	e.t.Helper()
	return e.recordAs(id, domain.Actor{Institution: inst, Professional: "référent " + string(inst)}, domain.RoleProfessional, cat, p)
}

func (e *env) recordAs(id domain.CaseID, a domain.Actor, role domain.Role, cat domain.Category, p domain.Payload) []domain.Event {
	e.t.Helper()
	res, err := e.svc.Record(e.ctx, cases.Request{CaseID: id, Command: domain.Command{Type: p.EventType(), Category: cat, Actor: a, Role: role, Payload: p}})
	if err != nil {
		e.t.Fatalf("%s by %v: %v", p.EventType(), a, err)
	}
	e.last = max(e.last, res.Position)
	e.clock.Advance(time.Minute)
	return res.Events
}

// openCase opens a case coordinated by the ASE with a mother holding
// parental authority, and the given members.
func (e *env) openCase(members ...domain.InstitutionID) (domain.CaseID, domain.PersonID) {
	e.t.Helper()
	id, mother := uuid.New(), uuid.New()
	e.record(id, ase, "", &domain.CaseOpenedPayload{ChildReference: "TEST-" + id.String()[:4], LegalFrame: domain.FrameJudicial,
		Departement: "35", Coordinator: ase, CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35",
		Referent: domain.Referent{Name: "Claire Martin"}})
	e.record(id, ase, "", &domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Mère", Relationship: "mère", ParentalAuthority: true})
	for _, m := range members {
		e.join(id, m)
	}
	return id, mother
}

func (e *env) join(id domain.CaseID, m domain.InstitutionID) {
	e.t.Helper()
	e.record(id, ase, "", &domain.PartnerJoinedPayload{Institution: m, Kind: kinds[m], Name: "Institution " + string(m),
		Referent: domain.Referent{Name: "Référent " + string(m)}, Reason: "entrée dans le dossier"})
}

func (e *env) observe(id domain.CaseID, by domain.InstitutionID, cat domain.Category, summary string) {
	e.t.Helper()
	e.record(id, by, cat, &domain.ObservationRecordedPayload{Summary: summary})
}

// giveConsent records the mother's consent to share health with inst, from
// now for the given duration; it returns the consent id.
func (e *env) giveConsent(id domain.CaseID, mother domain.PersonID, inst domain.InstitutionID, d time.Duration) uuid.UUID {
	e.t.Helper()
	c := uuid.New()
	now := e.clock.Now()
	e.recordAs(id, domain.Actor{FamilyMember: mother}, domain.RoleFamily, "", &domain.ConsentGivenPayload{Consent: c, GivenBy: mother,
		Institutions: []domain.InstitutionID{inst}, Categories: []domain.Category{domain.CategoryHealth}, From: now, Until: now.Add(d)})
	return c
}

func (e *env) withdrawConsent(id domain.CaseID, mother domain.PersonID, c uuid.UUID) {
	e.t.Helper()
	e.recordAs(id, domain.Actor{FamilyMember: mother}, domain.RoleFamily, "", &domain.ConsentWithdrawnPayload{Consent: c, WithdrawnBy: mother, Reason: "retrait"})
}

// lastSequence returns the sequence of the case's last event.
func (e *env) lastSequence(id domain.CaseID) uint64 {
	e.t.Helper()
	st, _, err := e.svc.Load(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Version
}

func parseUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// feedMsg is a feed message with its stream sequence.
type feedMsg struct {
	Message
	streamSeq uint64
}

// feed reads inst's whole feed stream (as the relay's account can), in
// stream order.
func (e *env) feed(inst domain.InstitutionID) []feedMsg {
	e.t.Helper()
	return readFeed(e.t, e.feeds.Conn(), inst)
}

func readFeed(t *testing.T, nc *nats.Conn, inst domain.InstitutionID) []feedMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, ok := feedStream(t, ctx, nc, inst)
	if !ok {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, njs.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.DeleteConsumer(context.Background(), cons.CachedInfo().Name)
	pending := cons.CachedInfo().NumPending
	var out []feedMsg
	// A retraction deletes the message it retracts: what was counted may
	// be gone when fetched, so the read ends at the message after which
	// nothing is pending, not at the count.
	for done := pending == 0; !done; {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			msg, err := ParseMessage(m.Headers(), m.Data())
			if err != nil {
				t.Fatal(err)
			}
			meta, _ := m.Metadata()
			out = append(out, feedMsg{Message: msg, streamSeq: meta.Sequence.Stream})
			done = done || meta.NumPending == 0
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		done = done || n == 0
	}
	return out
}

// holds is what a partner holds of each case after applying its feed in
// order: the last view of each sequence.
func holds(msgs []feedMsg) map[domain.CaseID]map[uint64]domain.EventView {
	out := map[domain.CaseID]map[uint64]domain.EventView{}
	for _, m := range msgs {
		if out[m.CaseID] == nil {
			out[m.CaseID] = map[uint64]domain.EventView{}
		}
		out[m.CaseID][m.Sequence] = m.View
	}
	return out
}

// checkFeed checks inst's feed for a case against the policy evaluated now
// on the recorded case: each sequence up to the member's last (its leaving,
// or the case's version) sent once as an event, in order, and what the
// partner holds after reveals and retracts is exactly what it may see now.
func (e *env) checkFeed(inst domain.InstitutionID, id domain.CaseID) []feedMsg {
	e.t.Helper()
	st, events, err := e.svc.Load(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	var mine []feedMsg
	for _, m := range e.feed(inst) {
		if m.CaseID == id {
			mine = append(mine, m)
		}
	}
	m, member := st.Members[inst]
	if !member {
		if len(mine) > 0 {
			e.t.Fatalf("%s is not a member of %s and got %d messages", inst, id, len(mine))
		}
		return nil
	}
	limit := st.Version
	if m.LeftSeq != 0 {
		limit = m.LeftSeq
	}
	// Event messages come in sequence order, once each. A retracted event
	// leaves none (the relay erases it): its retract notice stands in.
	retracted := map[uint64]bool{}
	for _, msg := range mine {
		if msg.Kind == KindRetract {
			retracted[msg.Sequence] = true
		}
	}
	next := uint64(1)
	for _, msg := range mine {
		if msg.Kind != KindEvent {
			continue
		}
		for msg.Sequence > next && retracted[next] {
			next++
		}
		if msg.Sequence != next {
			e.t.Fatalf("%s, case %s: event message for sequence %d, want %d (gap or duplicate)", inst, id, msg.Sequence, next)
		}
		next++
	}
	held := holds(mine)[id]
	if uint64(len(held)) != limit {
		e.t.Fatalf("%s, case %s: holds %d sequences, want %d", inst, id, len(held), limit)
	}
	// A former member is shown nothing more after its leaving: it may hold
	// less than the policy lets it see now (a consent given since), never
	// more, and no message names a sequence after its leaving.
	former := !m.Active()
	want := domain.Timeline(st, domain.Viewer{Role: domain.RoleProfessional, Institution: inst}, events[:limit], e.clock.Now())
	for _, w := range want {
		got := held[w.Sequence]
		if got.LeafHash != w.LeafHash || got.ChainHash != w.ChainHash {
			e.t.Fatalf("%s, case %s, sequence %d: holds hashes %s/%s, want %s/%s", inst, id, w.Sequence, got.LeafHash, got.ChainHash, w.LeafHash, w.ChainHash)
		}
		if former && got.Visibility != w.Visibility && shows(viewKey(w.Visibility, w.RedactedFields), viewKey(got.Visibility, got.RedactedFields)) {
			continue
		}
		if got.Visibility != w.Visibility || string(got.Payload) != string(w.Payload) {
			e.t.Fatalf("%s, case %s, sequence %d: holds %s view (payload %s), want %s (payload %s)", inst, id, w.Sequence, got.Visibility, got.Payload, w.Visibility, w.Payload)
		}
	}
	if former {
		for _, msg := range mine {
			if msg.Sequence > m.LeftSeq || msg.Cause > m.LeftSeq {
				e.t.Fatalf("%s left case %s at %d and got a %s of %d caused by %d", inst, id, m.LeftSeq, msg.Kind, msg.Sequence, msg.Cause)
			}
		}
	}
	return mine
}

// feedStream returns inst's feed stream, false when it has none yet.
func feedStream(t *testing.T, ctx context.Context, nc *nats.Conn, inst domain.InstitutionID) (njs.Stream, bool) {
	t.Helper()
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, StreamName(inst))
	if errors.Is(err, njs.ErrStreamNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return stream, true
}
