package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

var quiet = slog.New(slog.DiscardHandler)

// mustStore opens a real JetStream store, embedded, on a temporary
// directory.
func mustStore(t testing.TB) *jetstream.Store {
	t.Helper()
	s, err := jetstream.Open(context.Background(), jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runnerClock is the runners' reading time: in the middle of the generated
// histories, while some consents and orders are in force.
var runnerClock = time.Date(2025, 9, 1, 12, 0, 0, 0, time.UTC)

func mustRunner(t testing.TB, src Source, opts ...Option) *Runner {
	t.Helper()
	r, err := NewRunner(src, append([]Option{WithClock(func() time.Time { return runnerClock })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// appendInterleaved appends the histories in chunks of a few events, case
// after case, so that the global order mixes cases; it returns the last
// position.
func appendInterleaved(t testing.TB, s domain.EventStore, histories [][]domain.Event) domain.Position {
	t.Helper()
	ctx := context.Background()
	done := make([]int, len(histories))
	var last domain.Position
	for more := true; more; {
		more = false
		for i, h := range histories {
			if done[i] == len(h) {
				continue
			}
			n := min(len(h)-done[i], 1+i%7)
			chunk := slices.Clone(h[done[i] : done[i]+n])
			for j := range chunk {
				chunk[j].Position = 0
			}
			res, err := s.Append(ctx, uint64(done[i]), chunk)
			if err != nil {
				t.Fatal(err)
			}
			done[i] += n
			last = res.Position
			more = true
		}
	}
	return last
}

// dump reads everything the runner can answer, for every case and everyone
// who may read it, as JSON.
func dump(t testing.TB, r *Runner) string {
	t.Helper()
	ctx := context.Background()
	var out strings.Builder
	ids := r.m().caseIDs()
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	institutions := map[domain.InstitutionID]bool{}
	for _, id := range ids {
		c := r.m().get(id)
		c.mu.Lock()
		if err := r.m().warmLocked(c); err != nil {
			t.Fatal(err)
		}
		vs := []domain.Viewer{{Role: domain.RoleAuditor}}
		for inst := range c.state.Members {
			vs = append(vs, domain.Viewer{Role: domain.RoleProfessional, Institution: inst})
			institutions[inst] = true
		}
		for p := range c.state.Family {
			vs = append(vs, domain.Viewer{Role: domain.RoleFamily, FamilyMember: p})
		}
		c.mu.Unlock()
		slices.SortFunc(vs, func(a, b domain.Viewer) int {
			return strings.Compare(string(a.Role)+string(a.Institution)+a.FamilyMember.String(), string(b.Role)+string(b.Institution)+b.FamilyMember.String())
		})
		for _, v := range vs {
			o := ReadOptions{}
			p, err1 := r.Plan(ctx, id, v, o)
			c, err2 := r.Chronology(ctx, id, v, o)
			w, err3 := r.WhoSeesWhat(ctx, id, v, o)
			d, err4 := r.CaseDeadlines(ctx, id, v, o)
			out.WriteString(mustJSON(t, []any{v, p, c, w, d, errText(err1), errText(err2), errText(err3), errText(err4)}))
			out.WriteByte('\n')
		}
	}
	insts := make([]domain.InstitutionID, 0, len(institutions))
	for inst := range institutions {
		insts = append(insts, inst)
	}
	slices.Sort(insts)
	for _, inst := range insts {
		d, err := r.InstitutionDeadlines(ctx, inst, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Position = 0 // the checkpoint may differ: what is read must not
		mc, err := r.MemberCases(ctx, inst, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(mustJSON(t, []any{d, mc}))
		out.WriteByte('\n')
	}
	o, err := r.Observatory(ctx, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out.WriteString(mustJSON(t, o))
	return out.String()
}

// syncBuffer is a buffer the runner's goroutines may log to while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRebuildAndSnapshotGiveTheLiveReadModels feeds a started runner while
// events are recorded (and read), then checks that a rebuild from scratch,
// and a runner started from the live one's snapshot, answer every read
// exactly as the live one does.
func TestRebuildAndSnapshotGiveTheLiveReadModels(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	snapshot := filepath.Join(t.TempDir(), "projections.snapshot")
	live := mustRunner(t, store, WithSnapshot(snapshot), WithSnapshotInterval(0))
	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	histories := generated(t, 21, 16, 30)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // reads while the runner follows: cases brought up to date ahead of it
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = live.Plan(ctx, histories[i%len(histories)][0].CaseID, domain.Viewer{Role: domain.RoleAuditor}, ReadOptions{})
			time.Sleep(time.Millisecond) // leave the runner some of the machine
		}
	})
	last := appendInterleaved(t, store, histories)
	close(stop)
	wg.Wait()
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := live.WaitFor(wait, last); err != nil {
		t.Fatal(err)
	}
	want := dump(t, live)
	if !strings.Contains(want, "redactedFields") || !strings.Contains(want, "health_consent") {
		t.Fatal("the data reach no redaction or no consent: the comparison proves little")
	}

	rebuilt := mustRunner(t, store)
	stats, err := rebuilt.Rebuild(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Position != last || stats.Cases != len(histories) {
		t.Fatalf("rebuild: %+v, want position %d and %d cases", stats, last, len(histories))
	}
	if got := dump(t, rebuilt); got != want {
		t.Fatalf("the rebuilt read models differ from the live ones:\n%s", firstDifference(got, want))
	}

	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	restored := mustRunner(t, store, WithSnapshot(snapshot), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err := restored.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := restored.WaitFor(wait, last); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "snapshot loaded") {
		t.Fatalf("the snapshot was not used:\n%s", logs.String())
	}
	if got := dump(t, restored); got != want {
		t.Fatalf("the read models restored from the snapshot differ from the live ones:\n%s", firstDifference(got, want))
	}
}

func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return "got  " + g[i] + "\nwant " + w[i]
		}
	}
	return "different lengths"
}

func TestReadYourWritesWaitsBriefly(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	r := mustRunner(t, store, WithMaxWait(200*time.Millisecond))
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	events := generated(t, 2, 1, 20)[0]
	for i := range events {
		events[i].Position = 0
	}
	res, err := store.Append(ctx, 0, events)
	if err != nil {
		t.Fatal(err)
	}
	coordinator := domain.Fold(events[0].CaseID, events).Coordinator
	d, err := r.InstitutionDeadlines(ctx, coordinator, ReadOptions{MinPosition: res.Position})
	if err != nil {
		t.Fatal(err)
	}
	if d.Position < res.Position {
		t.Fatalf("read at position %d, asked for %d", d.Position, res.Position)
	}
	if _, err := r.Observatory(ctx, ReadOptions{MinPosition: res.Position + 1<<20}); !errors.Is(err, ErrBehind) {
		t.Fatalf("a position nobody recorded: %v, want ErrBehind", err)
	}
}

func TestRunnerStopsOnAnEventItCannotApplyAndSaysWhich(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	histories := generated(t, 8, 2, 20)
	for _, h := range histories {
		for i := range h {
			h[i].Position = 0
		}
	}
	if _, err := store.Append(ctx, 0, histories[0]); err != nil {
		t.Fatal(err)
	}
	bad := histories[1][0]
	bad.Payload = json.RawMessage(`{"childReference":12}`)
	badRes, err := store.Append(ctx, 0, []domain.Event{bad})
	if err != nil {
		t.Fatal(err)
	}
	good := generated(t, 9, 1, 20)[0]
	for i := range good {
		good[i].Position = 0
	}
	if _, err := store.Append(ctx, 0, good); err != nil {
		t.Fatal(err)
	}
	r := mustRunner(t, store)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.WaitFor(wait, badRes.Position); !errors.Is(err, ErrStopped) {
		t.Fatalf("waiting past the bad event: %v, want ErrStopped", err)
	}
	var pe *ProjectionError
	if !errors.As(r.Err(), &pe) || pe.CaseID != bad.CaseID || pe.Sequence != 1 || pe.Type != domain.CaseOpened || pe.Position != badRes.Position {
		t.Fatalf("Err() = %v", r.Err())
	}
	if r.Position() >= badRes.Position {
		t.Fatalf("the checkpoint %d moved past the bad event at %d", r.Position(), badRes.Position)
	}
	if _, err := r.Observatory(ctx, ReadOptions{}); !errors.Is(err, ErrStopped) {
		t.Fatalf("a read across cases after the stop: %v, want ErrStopped", err)
	}
	auditor := domain.Viewer{Role: domain.RoleAuditor}
	if _, err := r.Plan(ctx, bad.CaseID, auditor, ReadOptions{}); !errors.As(err, &pe) {
		t.Fatalf("reading the bad case: %v, want the projection error", err)
	}
	// Other cases are still read, up to date with their streams.
	if p, err := r.Plan(ctx, good[0].CaseID, auditor, ReadOptions{}); err != nil || p.Version != uint64(len(good)) {
		t.Fatalf("reading a good case recorded after the bad one: version %d, %v", p.Version, err)
	}
}

func TestSnapshotOfAnotherStoreIsNotUsed(t *testing.T) {
	ctx := context.Background()
	snapshot := filepath.Join(t.TempDir(), "projections.snapshot")
	first, second := generated(t, 30, 1, 20)[0], generated(t, 31, 1, 20)[0]
	for _, h := range [][]domain.Event{first, second} {
		for i := range h {
			h[i].Position = 0
		}
	}
	a := mustStore(t)
	if _, err := a.Append(ctx, 0, first); err != nil {
		t.Fatal(err)
	}
	ra := mustRunner(t, a, WithSnapshot(snapshot))
	if err := ra.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.Observatory(ctx, ReadOptions{}); err != nil { // waits for the catch-up
		t.Fatal(err)
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}

	b := mustStore(t)
	if _, err := b.Append(ctx, 0, second); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	rb := mustRunner(t, b, WithSnapshot(snapshot), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err := rb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Observatory(ctx, ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "another store") {
		t.Fatalf("the snapshot of store A was not refused on store B:\n%s", logs.String())
	}
	if n, _ := rb.m().counts(); n != 1 || rb.m().get(second[0].CaseID) == nil {
		t.Fatalf("the read models hold %d cases, want only store B's", n)
	}
}

// TestAWithdrawnConsentStopsReadsAtOnce records through the case service
// and reads right after each command, without asking for a position: on a
// runner that follows the store and tracks the service's appends, and on a
// runner not even started, whose reads bring their case up to date first.
func TestAWithdrawnConsentStopsReadsAtOnce(t *testing.T) {
	for _, following := range []bool{true, false} {
		t.Run(fmt.Sprintf("following=%v", following), func(t *testing.T) {
			store := mustStore(t)
			r := mustRunner(t, store, WithClock(time.Now)) // the withdrawal takes effect when recorded: now
			var svc *cases.Service
			var err error
			if following {
				if err := r.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				svc, err = cases.New(r.Track(store))
			} else {
				svc, err = cases.New(store)
			}
			if err != nil {
				t.Fatal(err)
			}
			consentStopsReads(t, svc, r)
		})
	}
}

func consentStopsReads(t *testing.T, svc *cases.Service, r *Runner) {
	ctx := context.Background()
	id, mother := uuid.New(), uuid.New()
	ase := domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	record := func(actor domain.Actor, cat domain.Category, p domain.Payload) {
		t.Helper()
		_, err := svc.Record(ctx, cases.Request{CaseID: id, Command: domain.Command{Type: p.EventType(), Category: cat, Actor: actor,
			Role: domain.RoleProfessional, Payload: p}})
		if err != nil {
			t.Fatal(err)
		}
	}
	record(ase, "", &domain.CaseOpenedPayload{ChildReference: "TST-35-0001", LegalFrame: domain.FrameJudicial, Departement: "35",
		Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}})
	record(ase, "", &domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Mère", Relationship: "mère", ParentalAuthority: true})
	record(ase, "", &domain.PartnerJoinedPayload{Institution: "mecs-1", Kind: domain.KindMECS, Name: "MECS", Referent: domain.Referent{Name: "Julien"}, Reason: "accueil"})
	record(ase, "", &domain.PartnerJoinedPayload{Institution: "cmp-1", Kind: domain.KindCMP, Name: "CMP", Referent: domain.Referent{Name: "Dr B"}, Reason: "soins"})
	cmp := domain.Actor{Institution: "cmp-1", Professional: "Dr B"}
	record(cmp, domain.CategoryHealth, &domain.NeedIdentifiedPayload{Need: uuid.New(), Domain: "health", Description: "suivi"})
	mecs := domain.Viewer{Role: domain.RoleProfessional, Institution: "mecs-1"}
	needs := func() int {
		t.Helper()
		p, err := r.Plan(ctx, id, mecs, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Needs)
	}
	if n := needs(); n != 0 {
		t.Fatalf("without consent the children's home sees %d health needs", n)
	}
	consent := uuid.New()
	record(ase, "", &domain.ConsentGivenPayload{Consent: consent, GivenBy: mother, Institutions: []domain.InstitutionID{"mecs-1"},
		Categories: []domain.Category{domain.CategoryHealth}, From: time.Now().Add(-time.Hour), Until: time.Now().AddDate(1, 0, 0)})
	if n := needs(); n != 1 {
		t.Fatalf("with consent the children's home sees %d health needs, want 1", n)
	}
	w, err := r.WhoSeesWhat(ctx, id, mecs, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	health := w.Members[1].Categories[slices.Index(domain.Categories, domain.CategoryHealth)]
	if w.Members[1].Institution != "mecs-1" || health.Rule != "health_consent" || health.Consent == nil || health.Consent.ID != consent {
		t.Fatalf("who sees what for the children's home: %+v", w.Members[1])
	}
	record(ase, "", &domain.ConsentWithdrawnPayload{Consent: consent, WithdrawnBy: mother})
	if n := needs(); n != 0 {
		t.Fatalf("after the withdrawal the children's home sees %d health needs", n)
	}
}

func TestLoadGeneratedReachesBothCountsTheSameWayEachTime(t *testing.T) {
	ctx := context.Background()
	var heads [2][]domain.Hash
	for i := range heads {
		store := mustStore(t)
		load, err := LoadGenerated(ctx, store, 7, 600, 20, 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if load.Cases < 20 || load.Events < 600 {
			t.Fatalf("loaded %+v, want at least 20 cases and 600 events", load)
		}
		for e, err := range store.ReadAll(ctx, 0) {
			if err != nil {
				t.Fatal(err)
			}
			heads[i] = append(heads[i], e.ChainHash)
		}
		if len(heads[i]) != load.Events {
			t.Fatalf("the store holds %d events, the load says %d", len(heads[i]), load.Events)
		}
	}
	slices.SortFunc(heads[0], func(a, b domain.Hash) int { return bytes.Compare(a[:], b[:]) })
	slices.SortFunc(heads[1], func(a, b domain.Hash) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(heads[0], heads[1]) {
		t.Fatal("two loads with the same arguments stored different events")
	}
}
