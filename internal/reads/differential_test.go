package reads_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/domain/generate"
	"github.com/maillage/maillage/internal/memstore"
	"github.com/maillage/maillage/internal/reads"
	"github.com/maillage/maillage/projections"
)

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// memoryLog is an access log that keeps its records, by case.
type memoryLog struct {
	mu      sync.Mutex
	records map[domain.CaseID][]domain.AccessRecord
}

func (l *memoryLog) Record(_ context.Context, r domain.AccessRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.records == nil {
		l.records = map[domain.CaseID][]domain.AccessRecord{}
	}
	l.records[r.CaseID] = append(l.records[r.CaseID], r)
	return nil
}

// Access answers the queries of a case's access list.
func (l *memoryLog) Access(_ context.Context, f audit.AccessFilter) ([]domain.AccessRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []domain.AccessRecord
	for _, r := range l.records[f.CaseID] {
		if f.Match(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// histories is how many generated histories the differential test reads
// (MAILLAGE_DIFFERENTIAL_HISTORIES overrides it; -short reads 100).
func histories(t *testing.T) int {
	if s := os.Getenv("MAILLAGE_DIFFERENTIAL_HISTORIES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("MAILLAGE_DIFFERENTIAL_HISTORIES=%q: want a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return 100
	}
	return 1000
}

// TestNoPathShowsWhatTheTimelineHides is the differential test across the
// read paths: generated histories (joins, leavings and rejoins, family not
// informed, consents and orders whose bounds fall inside the run) with a
// unique canary token planted in every free-text field of every event; for
// every viewer, at several times, every read a person can make (summary,
// plan and chronology now and as of a past date, who-sees-what, deadlines,
// access list, export, the case list, the institution's tray, and the detail
// of refused commands) is searched for the tokens of the case that the
// viewer's timeline now hides: none may be found. The versions every read
// reports are the timeline's, and anyone who may not know the case gets
// domain.ErrNotFound on every path. The log lines hold no token at all.
func TestNoPathShowsWhatTheTimelineHides(t *testing.T) {
	ctx := t.Context()
	n := histories(t)
	gen := generate.New(generate.Options{Seed: 20261204, EventsPerCase: 18, Canaries: true})
	store := memstore.New()
	var all [][]domain.Event
	last := time.Time{}
	for range n {
		events := gen.Case()
		if _, err := store.Append(ctx, 0, events); err != nil {
			t.Fatal(err)
		}
		all = append(all, events)
		if at := events[len(events)-1].RecordedAt; at.After(last) {
			last = at
		}
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := &clock{t: last.Add(time.Hour)}
	runner, err := projections.NewRunner(store, projections.WithClock(clk.now), projections.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() })
	svc, err := cases.New(runner.Track(store), cases.WithClock(clk.now), cases.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	access := &memoryLog{}
	rs := reads.New(svc, reads.WithReadModels(runner), reads.WithAccessLog(access))
	if err := runner.WaitFor(ctx, lastPosition(t, store)); err != nil {
		t.Fatal(err)
	}

	d := &differential{t: t, rs: rs, svc: svc}
	// Now, and a year and a half on, when the consents and orders of the
	// run have ended.
	for _, at := range []time.Time{last.Add(time.Hour), last.AddDate(1, 6, 0)} {
		clk.set(at)
		d.lists, d.trays = map[domain.Viewer]map[domain.CaseID]projections.CaseCard{}, map[domain.Viewer]map[domain.CaseID][]projections.Deadline{}
		for _, events := range all {
			d.checkCase(ctx, events)
		}
	}
	if found := generate.CanaryPattern.FindAll(logs.Bytes(), -1); len(found) > 0 {
		t.Errorf("the log lines hold %d canaries, e.g. %s", len(found), found[0])
	}
	t.Logf("%d histories, %d (history, viewer, path) checks, %d leaks", n, d.checks, d.leaks)
}

type differential struct {
	t      *testing.T
	rs     *reads.Service
	svc    *cases.Service
	checks int
	leaks  int
	// lists and trays hold each viewer's case list and tray, read once per
	// clock time (they span every case).
	lists map[domain.Viewer]map[domain.CaseID]projections.CaseCard
	trays map[domain.Viewer]map[domain.CaseID][]projections.Deadline
}

// list returns the viewer's case list, by case.
func (d *differential) list(ctx context.Context, r reads.Reader) map[domain.CaseID]projections.CaseCard {
	if l, ok := d.lists[r.Viewer]; ok {
		return l
	}
	list, err := d.rs.KnownCases(ctx, r, "", 0, projections.ReadOptions{})
	if err != nil {
		d.t.Fatalf("%v: case list: %v", r.Viewer, err)
	}
	l := map[domain.CaseID]projections.CaseCard{}
	for _, c := range list.Cases {
		l[c.CaseID] = c
	}
	d.lists[r.Viewer] = l
	return l
}

// tray returns the professional viewer's tray, by case.
func (d *differential) tray(ctx context.Context, r reads.Reader) map[domain.CaseID][]projections.Deadline {
	if tr, ok := d.trays[r.Viewer]; ok {
		return tr
	}
	tray, err := d.rs.InstitutionDeadlines(ctx, r, projections.ReadOptions{})
	if err != nil {
		d.t.Fatalf("%v: tray: %v", r.Viewer, err)
	}
	tr := map[domain.CaseID][]projections.Deadline{}
	for _, dl := range tray.Deadlines {
		if dl.CaseID != nil {
			tr[*dl.CaseID] = append(tr[*dl.CaseID], dl)
		}
	}
	d.trays[r.Viewer] = tr
	return tr
}

// viewers are who reads a case: an auditor, every institution that was ever
// a member, one that never was, every recorded family member and a person
// who is not.
func viewers(st *domain.State) []domain.Viewer {
	vs := []domain.Viewer{{Role: domain.RoleAuditor}, {Role: domain.RoleProfessional, Institution: "school-35-99"},
		{Role: domain.RoleFamily, FamilyMember: uuid.NewSHA1(st.ID, []byte("stranger"))}, {Role: domain.RoleAdmin}}
	for id := range st.Members {
		vs = append(vs, domain.Viewer{Role: domain.RoleProfessional, Institution: id})
	}
	for id := range st.Family {
		vs = append(vs, domain.Viewer{Role: domain.RoleFamily, FamilyMember: id})
	}
	return vs
}

func (d *differential) checkCase(ctx context.Context, events []domain.Event) {
	t := d.t
	id := events[0].CaseID
	st := domain.Fold(id, events)
	tokens := map[string]bool{}
	for _, e := range events {
		b, _ := json.Marshal(e)
		for _, tok := range generate.CanaryPattern.FindAll(b, -1) {
			tokens[string(tok)] = true
		}
	}
	mid := events[len(events)/2].RecordedAt
	for _, v := range viewers(st) {
		r := reads.Reader{Principal: uuid.New(), Viewer: v, Purpose: "test différentiel"}
		tl, err := d.rs.Timeline(ctx, r, id, 0, 0)
		if !domain.MayKnow(st, v) {
			d.checkUnknown(ctx, r, id, err)
			continue
		}
		if err != nil {
			t.Fatalf("%v: timeline: %v", v, err)
		}
		body, _ := json.Marshal(tl)
		hidden := map[string]bool{}
		for tok := range tokens {
			if !bytes.Contains(body, []byte(tok)) {
				hidden[tok] = true
			}
		}
		check := func(path string, version uint64, answer any, err error) {
			d.checks++
			if err != nil {
				var de *domain.Error
				if !errors.As(err, &de) {
					t.Fatalf("%v: %s: %v", v, path, err)
				}
				answer = de
			} else if version != tl.Version && version != 0 {
				t.Errorf("%v: %s answers version %d, the timeline %d", v, path, version, tl.Version)
			}
			b, _ := json.Marshal(answer)
			for _, tok := range generate.CanaryPattern.FindAll(b, -1) {
				if hidden[string(tok)] {
					d.leaks++
					t.Errorf("%v (%s): %s shows %s, which its timeline hides: %s", v, v.Role, path, tok, clip(b))
					return
				}
			}
		}
		sum, err := d.rs.Summary(ctx, r, id)
		check("summary", sum.Version, sum, err)
		plan, err := d.rs.Plan(ctx, r, id, projections.ReadOptions{})
		check("plan", plan.Version, plan, err)
		chrono, err := d.rs.Chronology(ctx, r, id, projections.ReadOptions{})
		check("chronology", chrono.Version, chrono, err)
		past, err := d.rs.Plan(ctx, r, id, projections.ReadOptions{AsOf: mid})
		check("plan as of", 0, past, err)
		pastChrono, err := d.rs.Chronology(ctx, r, id, projections.ReadOptions{AsOf: mid})
		check("chronology as of", 0, pastChrono, err)
		vis, err := d.rs.Visibility(ctx, r, id, projections.ReadOptions{})
		check("visibility", vis.Version, vis, err)
		pastVis, err := d.rs.Visibility(ctx, r, id, projections.ReadOptions{AsOf: mid})
		check("visibility as of", 0, pastVis, err)
		dl, err := d.rs.Deadlines(ctx, r, id, projections.ReadOptions{})
		check("deadlines", dl.Version, dl, err)
		acc, err := d.rs.Access(ctx, r, id, audit.AccessFilter{})
		check("access list", 0, acc, err)
		var export bytes.Buffer
		_, err = d.rs.Export(ctx, r, id, &export)
		check("export", 0, export.String(), err)
		card, listed := d.list(ctx, r)[id]
		if !listed {
			t.Errorf("%v may know case %s, which its case list leaves out", v, id)
		}
		check("case list", card.Version, card, nil)
		if v.Role == domain.RoleProfessional {
			check("tray", 0, d.tray(ctx, r)[id], nil)
		}
		for i, cmd := range refusable(st, v) {
			_, err := d.rs.Record(ctx, r, cases.Request{CaseID: id, Command: cmd})
			var de *domain.Error
			if err != nil && !errors.As(err, &de) && !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("%v: command %d: %v", v, i, err)
			}
			if err == nil {
				t.Fatalf("%v: command %d (%s) was recorded: the probes must be refused", v, i, cmd.Type)
			}
			check(fmt.Sprintf("refusal of %s", cmd.Type), 0, de, nil)
		}
	}
}

// checkUnknown checks that a viewer who may not know the case gets
// domain.ErrNotFound on every path.
func (d *differential) checkUnknown(ctx context.Context, r reads.Reader, id domain.CaseID, timelineErr error) {
	t := d.t
	errs := map[string]error{"timeline": timelineErr}
	_, errs["summary"] = d.rs.Summary(ctx, r, id)
	_, errs["plan"] = d.rs.Plan(ctx, r, id, projections.ReadOptions{})
	_, errs["chronology"] = d.rs.Chronology(ctx, r, id, projections.ReadOptions{})
	_, errs["visibility"] = d.rs.Visibility(ctx, r, id, projections.ReadOptions{})
	_, errs["deadlines"] = d.rs.Deadlines(ctx, r, id, projections.ReadOptions{})
	_, errs["access list"] = d.rs.Access(ctx, r, id, audit.AccessFilter{})
	_, errs["export"] = d.rs.Export(ctx, r, id, &bytes.Buffer{})
	for path, err := range errs {
		d.checks++
		if !errors.Is(err, domain.ErrNotFound) {
			d.leaks++
			t.Errorf("%v may not know case %s, but %s answers %v", r.Viewer, id, path, err)
		}
	}
}

// refusable are commands the viewer's role is refused on the case, whose
// refusals may quote an order, a member or a person: an unsupervised visit
// of every family member (contact_suspended, visits_supervised), an
// observation (partner_excluded, members_only), a consent for a family
// member without parental authority.
func refusable(st *domain.State, v domain.Viewer) []domain.Command {
	var cmds []domain.Command
	switch v.Role {
	case domain.RoleProfessional:
		actor := domain.Actor{Institution: v.Institution, Professional: "sonde"}
		for p := range st.Family {
			contacts := []domain.ContactArrangement{{FamilyMember: p, Supervised: false}}
			cmds = append(cmds, domain.Command{Type: domain.DecisionRecorded, Role: v.Role, Actor: actor,
				Payload: &domain.DecisionRecordedPayload{Decision: uuid.New(), Kind: "sonde", Summary: "sonde",
					Agreeing: []domain.InstitutionID{"school-35-99"}, Categories: []domain.Category{domain.CategoryPlan}, Contacts: contacts}})
		}
	case domain.RoleFamily:
		for p, fm := range st.Family {
			if !fm.ParentalAuthority {
				cmds = append(cmds, domain.Command{Type: domain.ConsentGiven, Role: v.Role, Actor: domain.Actor{FamilyMember: v.FamilyMember},
					Payload: &domain.ConsentGivenPayload{Consent: uuid.New(), GivenBy: p, Categories: []domain.Category{domain.CategoryHealth},
						Institutions: []domain.InstitutionID{"school-35-99"}, From: st.OpenedAt, Until: st.OpenedAt.AddDate(1, 0, 0)}})
			}
		}
	}
	return cmds
}

func lastPosition(t *testing.T, store domain.EventStore) domain.Position {
	var pos domain.Position
	for e, err := range store.ReadAll(t.Context(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		pos = e.Position
	}
	return pos
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}
