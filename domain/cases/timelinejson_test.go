package cases_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/domain/generate"
	"github.com/maillage/maillage/domain/personal"
)

func openStore(t *testing.T) *jetstream.Store {
	t.Helper()
	store, err := jetstream.Open(context.Background(), jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// TimelineJSON writes the bytes json.Marshal writes for Timeline, for every
// kind of viewer, page and clock, read from the store or from the cache.
func TestTimelineJSONIsTheTimelineEncoded(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	gen := generate.New(generate.Options{Seed: 7, EventsPerCase: 40})
	var histories [][]domain.Event
	for range 12 {
		h := gen.Case()
		if _, err := store.Append(ctx, 0, h); err != nil {
			t.Fatal(err)
		}
		histories = append(histories, h)
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock time.Time
	svc, err := cases.New(store, cases.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[domain.Visibility]int{}
	for _, h := range histories {
		id := h[0].CaseID
		st := domain.Fold(id, h)
		viewers := []domain.Viewer{{Role: domain.RoleAuditor}, {Role: domain.RoleAdmin},
			{Role: domain.RoleProfessional, Institution: "not-a-member"}, {Role: domain.RoleFamily, FamilyMember: uuid.New()}}
		for inst := range st.Members {
			viewers = append(viewers, domain.Viewer{Role: domain.RoleProfessional, Institution: inst})
		}
		for p := range st.Family {
			viewers = append(viewers, domain.Viewer{Role: domain.RoleFamily, FamilyMember: p})
		}
		// Clocks before, within and long after the case's consents and
		// orders; each page twice (encoded, then from the cache).
		for _, at := range []time.Time{start, h[len(h)-1].RecordedAt, start.AddDate(20, 0, 0)} {
			clock = at
			for _, v := range viewers {
				for _, p := range []struct {
					after uint64
					limit int
				}{{0, 100}, {0, 0}, {3, 5}, {uint64(len(h) - 1), 10}, {uint64(len(h)), 10}, {uint64(len(h) + 5), 1}} {
					for range 2 {
						tl, err := svc.Timeline(ctx, id, v, p.after, p.limit)
						got, version, gotErr := svc.TimelineJSON(ctx, id, v, p.after, p.limit)
						if !errors.Is(gotErr, err) || (err != nil) != (gotErr != nil) {
							t.Fatalf("viewer %+v: TimelineJSON error %v, Timeline error %v", v, gotErr, err)
						}
						if err != nil {
							continue
						}
						want, _ := json.Marshal(tl)
						if !bytes.Equal(got, want) || version != tl.Version {
							t.Fatalf("viewer %+v, after %d, limit %d, at %s, version %d (want %d):\n got %s\nwant %s", v, p.after, p.limit, at, version, tl.Version, got, want)
						}
						for _, ev := range tl.Events {
							seen[ev.Visibility]++
						}
					}
				}
			}
		}
	}
	for _, vis := range []domain.Visibility{domain.Full, domain.Redacted, domain.Hidden} {
		if seen[vis] == 0 {
			t.Errorf("no %s view among the %v compared: the dataset does not cover them", vis, seen)
		}
	}
}

// A health event a member sees in full through a consent is a stub as soon
// as the consent is withdrawn through another process, although this
// process encoded and kept its full view.
func TestAWithdrawnConsentStopsCachedViews(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	a, _ := cases.New(store)
	b, _ := cases.New(store) // another process
	id, mother := uuid.New(), uuid.New()
	ase := domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	record := func(svc *cases.Service, actor domain.Actor, role domain.Role, category domain.Category, p domain.Payload) {
		t.Helper()
		if _, err := svc.Record(ctx, cases.Request{CaseID: id, Command: domain.Command{Type: p.EventType(), Actor: actor, Role: role, Category: category, Payload: p}}); err != nil {
			t.Fatalf("record %s: %v", p.EventType(), err)
		}
	}
	pro := domain.RoleProfessional
	record(a, ase, pro, "", &domain.CaseOpenedPayload{ChildReference: "TST-35-0003", LegalFrame: domain.FrameAdministrative, Departement: "35",
		Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}})
	record(a, ase, pro, "", &domain.PartnerJoinedPayload{Institution: "mecs-35", Kind: domain.KindMECS, Name: "MECS", Referent: domain.Referent{Name: "Julien Roux"}, Reason: "accueil"})
	record(a, ase, pro, "", &domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Nathalie Durand", Relationship: "mère", ParentalAuthority: true})
	record(a, ase, pro, domain.CategoryHealth, &domain.ObservationRecordedPayload{Summary: "suivi au CMP"})
	consent := uuid.New()
	record(b, domain.Actor{FamilyMember: mother}, domain.RoleFamily, "", &domain.ConsentGivenPayload{Consent: consent, GivenBy: mother,
		Institutions: []domain.InstitutionID{"mecs-35"}, Categories: []domain.Category{domain.CategoryHealth},
		From: time.Now().Add(-time.Hour), Until: time.Now().Add(24 * time.Hour)})

	mecs := domain.Viewer{Role: domain.RoleProfessional, Institution: "mecs-35"}
	health := func() domain.EventView {
		t.Helper()
		body, _, err := a.TimelineJSON(ctx, id, mecs, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var tl cases.Timeline
		if err := json.Unmarshal(body, &tl); err != nil {
			t.Fatal(err)
		}
		return tl.Events[3]
	}
	if v := health(); v.Visibility != domain.Full || !bytes.Contains(v.Payload, []byte("suivi au CMP")) {
		t.Fatalf("health event under consent: %s %s", v.Visibility, v.Payload)
	}
	record(b, domain.Actor{FamilyMember: mother}, domain.RoleFamily, "", &domain.ConsentWithdrawnPayload{Consent: consent, WithdrawnBy: mother})
	if v := health(); v.Visibility != domain.Hidden || v.Payload != nil {
		t.Fatalf("health event after the consent was withdrawn through another process: %s %s", v.Visibility, v.Payload)
	}
}

// A case erased through another process is no longer served from the full
// views this process encoded before.
func TestErasureDropsEncodedViews(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	keys := personal.NewMemoryKeys()
	a, _ := cases.New(store, cases.WithPersonalData(keys))
	b, _ := cases.New(store, cases.WithPersonalData(keys)) // another process
	id, mother := uuid.New(), uuid.New()
	ase := domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	for _, p := range []domain.Payload{
		&domain.CaseOpenedPayload{ChildReference: "TST-35-0004", LegalFrame: domain.FrameAdministrative, Departement: "35",
			Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}},
		&domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Nathalie Durand", Relationship: "mère", ParentalAuthority: true, Address: "12 rue des Lilas"},
	} {
		if _, err := a.Record(ctx, cases.Request{CaseID: id, Command: domain.Command{Type: p.EventType(), Actor: ase, Role: domain.RoleProfessional, Payload: p}}); err != nil {
			t.Fatal(err)
		}
	}
	auditor := domain.Viewer{Role: domain.RoleAuditor}
	body, _, err := a.TimelineJSON(ctx, id, auditor, 0, 100)
	if err != nil || !bytes.Contains(body, []byte("Lilas")) {
		t.Fatalf("before erasure: %v\n%s", err, body)
	}
	if _, err := b.Erase(ctx, cases.EraseRequest{CaseID: id, Role: domain.RoleAuditor, Reason: "fin de conservation"}); err != nil {
		t.Fatal(err)
	}
	body, _, err = a.TimelineJSON(ctx, id, auditor, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"Lilas", "Nathalie", "Durand"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Fatalf("after erasure through another process the timeline shows %q:\n%s", secret, body)
		}
	}
}
