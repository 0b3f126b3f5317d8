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

// TestPersonalDataIsOpenedAtReadTimeOnly records a case whose personal
// data is sealed: the read models show it opened, their snapshot never
// holds it, and once the case's key is destroyed they show it erased.
func TestPersonalDataIsOpenedAtReadTimeOnly(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	keys := personal.NewMemoryKeys()
	snapshot := filepath.Join(t.TempDir(), "projections.snapshot")
	r := mustRunner(t, store, WithClock(time.Now), WithPersonalData(keys), WithSnapshot(snapshot))
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	svc, err := cases.New(r.Track(store), cases.WithPersonalData(keys))
	if err != nil {
		t.Fatal(err)
	}
	id, mother := uuid.New(), uuid.New()
	ase := domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	for _, p := range []domain.Payload{
		&domain.CaseOpenedPayload{ChildReference: "TST-35-0009", LegalFrame: domain.FrameAdministrative, Departement: "35",
			Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}, ChildBirthMonth: "2015-02"},
		&domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Nathalie Durand", Relationship: "mère", ParentalAuthority: true, Address: "4 allée des Mimosas"},
		&domain.ObservationRecordedPayload{Summary: "Très bonne semaine au collège"},
	} {
		if _, err := svc.Record(ctx, cases.Request{CaseID: id, Command: domain.Command{Type: p.EventType(), Actor: ase, Role: domain.RoleProfessional, Payload: p}}); err != nil {
			t.Fatal(err)
		}
	}
	auditor := domain.Viewer{Role: domain.RoleAuditor}
	read := func(r *Runner) string {
		t.Helper()
		c, err := r.Chronology(ctx, id, auditor, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return mustJSON(t, c)
	}
	secrets := []string{"Nathalie Durand", "Mimosas", "Très bonne semaine", "TST-35-0009"}
	opened := read(r)
	for _, s := range []string{"Nathalie Durand", "Très bonne semaine"} { // the address is not in the chronology
		if !strings.Contains(opened, s) {
			t.Fatalf("the chronology does not show %q opened: %s", s, opened)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(file), s) {
			t.Fatalf("the snapshot holds %q in clear", s)
		}
	}

	if _, err := keys.Erase(ctx, id, personal.Erasure{CaseID: id, At: time.Now(), Role: domain.RoleAuditor, Reason: "durée de conservation échue"}); err != nil {
		t.Fatal(err)
	}
	restored := mustRunner(t, store, WithClock(time.Now), WithPersonalData(keys), WithSnapshot(snapshot))
	if err := restored.Start(ctx); err != nil {
		t.Fatal(err)
	}
	erased := read(restored)
	for _, s := range secrets {
		if strings.Contains(erased, s) {
			t.Fatalf("after erasure the chronology still shows %q: %s", s, erased)
		}
	}
	if !strings.Contains(erased, personal.Erased) {
		t.Fatalf("after erasure: %s", erased)
	}
}
