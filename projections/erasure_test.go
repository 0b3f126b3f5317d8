package projections

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/domain/personal"
)

// TestErasureReachesTheFreeTextOfEveryReadModel records the free texts that
// erasure once left readable (the child's reference, referents, a need's
// domain, an intervention's timing, a plan reference and version, a
// decision's kind, on-call contacts and hours, a family member's
// relationship, an order's reference and court): every read model shows them
// opened, the snapshot never holds them, and after the key is destroyed no
// read model shows them.
func TestErasureReachesTheFreeTextOfEveryReadModel(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	keys := personal.NewMemoryKeys()
	snapshot := filepath.Join(t.TempDir(), "projections.snapshot")
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	r := mustRunner(t, store, WithClock(clock), WithPersonalData(keys), WithSnapshot(snapshot))
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	svc, err := cases.New(r.Track(store), cases.WithPersonalData(keys), cases.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	id, mother := uuid.New(), uuid.New()
	ase := domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	texts := []string{"CANARI-REF-0147", "Canari Référente", "canari-fonction", "02 99 12 34 56", "canari.referente@exemple.fr",
		"canari-lien", "canari-domaine", "canari-rythme", "CANARI-PPE-9", "canari-version", "canari-nature",
		"canari-astreinte 06 12 34 56 78", "canari-heures", "CANARI-ORD-26", "canari-tribunal"}
	for _, p := range []domain.Payload{
		&domain.CaseOpenedPayload{ChildReference: texts[0], LegalFrame: domain.FrameJudicial, Departement: "35",
			Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35",
			Referent: domain.Referent{Name: texts[1], Function: texts[2], Phone: texts[3], Email: texts[4]}},
		&domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Nathalie Durand", Relationship: texts[5], ParentalAuthority: true},
		&domain.NeedIdentifiedPayload{Need: uuid.New(), Domain: texts[6], Description: "Besoin de stabilité"},
		&domain.InterventionAgreedPayload{Intervention: uuid.New(), Institution: "ase-35", Description: "Suivi éducatif",
			Modalities: "entretiens", Timing: texts[7], Start: now.Add(-time.Hour)},
		&domain.PlansArticulatedPayload{Plans: []domain.PlanLink{{Kind: "PPE", Reference: texts[8], Version: texts[9], Institution: "ase-35"}}},
		&domain.DecisionRecordedPayload{Decision: uuid.New(), Kind: texts[10], Summary: "Maintien du placement",
			Agreeing: []domain.InstitutionID{"ase-35"}, Categories: []domain.Category{domain.CategoryPlan}},
		&domain.CrisisDeclaredPayload{Crisis: uuid.New(), Description: "Fugue", Protocol: "Appeler l'astreinte",
			OnCall: []domain.OnCall{{Institution: "ase-35", Contact: texts[11], Hours: texts[12]}}},
		&domain.JudicialRestrictionImposedPayload{Restriction: uuid.New(), Kind: domain.ContactSuspended, OrderReference: texts[13],
			Court: texts[14], FamilyMembers: []domain.PersonID{mother}, From: now.Add(-time.Hour), Until: now.AddDate(0, 0, 10)},
	} {
		if _, err := svc.Record(ctx, cases.Request{CaseID: id, Command: domain.Command{Type: p.EventType(), Actor: ase,
			Role: domain.RoleProfessional, Payload: p, OccurredAt: now.Add(-time.Minute)}}); err != nil {
			t.Fatalf("%s: %v", p.EventType(), err)
		}
	}
	auditor := domain.Viewer{Role: domain.RoleAuditor}
	coordinator := domain.Viewer{Role: domain.RoleProfessional, Institution: "ase-35"}
	read := func(r *Runner) string {
		t.Helper()
		var out []string
		for _, v := range []domain.Viewer{auditor, coordinator} {
			plan, err := r.Plan(ctx, id, v, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			chrono, err := r.Chronology(ctx, id, v, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			who, err := r.WhoSeesWhat(ctx, id, v, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			deadlines, err := r.CaseDeadlines(ctx, id, v, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, mustJSON(t, plan), mustJSON(t, chrono), mustJSON(t, who), mustJSON(t, deadlines))
		}
		mine, err := r.MemberCases(ctx, "ase-35", ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		list, err := r.InstitutionDeadlines(ctx, "ase-35", ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(append(out, mustJSON(t, mine), mustJSON(t, list)), "\n")
	}
	mine := func(r *Runner, ref, name string) {
		t.Helper()
		list, err := r.MemberCases(ctx, "ase-35", ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ChildReference != ref || list[0].Referent.Name != name {
			t.Fatalf("the member's case list shows %s, want reference %q and referent %q", mustJSON(t, list), ref, name)
		}
	}
	mine(r, texts[0], texts[1])
	opened := read(r)
	for _, s := range texts {
		if !strings.Contains(opened, s) {
			t.Errorf("no read model shows %q opened", s)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range texts {
		if strings.Contains(string(file), s) {
			t.Errorf("the snapshot holds %q in clear", s)
		}
	}

	if _, err := keys.Erase(ctx, id, personal.Erasure{CaseID: id, At: now, Role: domain.RoleAuditor, Reason: "durée de conservation échue"}); err != nil {
		t.Fatal(err)
	}
	restored := mustRunner(t, store, WithClock(clock), WithPersonalData(keys), WithSnapshot(snapshot))
	if err := restored.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mine(restored, personal.Erased, personal.Erased)
	erased := read(restored)
	for _, s := range texts {
		if strings.Contains(erased, s) {
			t.Errorf("after erasure a read model still shows %q", s)
		}
	}
	if !strings.Contains(erased, personal.Erased) {
		t.Fatalf("after erasure nothing reads %q:\n%s", personal.Erased, erased)
	}
}
