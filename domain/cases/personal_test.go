package cases_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/domain/personal"
)

func TestPersonalDataIsSealedInTheStoreOpenedOnReadsAndErased(t *testing.T) {
	ctx := context.Background()
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys := personal.NewMemoryKeys()
	var told []domain.CaseID
	svc, err := cases.New(store, cases.WithPersonalData(keys), cases.WithOnErase(func(_ context.Context, id domain.CaseID) error {
		told = append(told, id)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := cases.New(store, cases.WithPersonalData(keys)) // another process
	id, mother := uuid.New(), uuid.New()
	ase := domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	record := func(svc *cases.Service, p domain.Payload, key string) (cases.Result, error) {
		return svc.Record(ctx, cases.Request{CaseID: id, IdempotencyKey: key,
			Command: domain.Command{Type: p.EventType(), Actor: ase, Role: domain.RoleProfessional, Payload: p}})
	}
	must := func(res cases.Result, err error) cases.Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	must(record(svc, &domain.CaseOpenedPayload{ChildReference: "TST-35-0002", LegalFrame: domain.FrameJudicial, Departement: "35",
		Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"},
		ChildBirthMonth: "2015-03"}, ""))
	family := &domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Nathalie Durand", Relationship: "mère",
		ParentalAuthority: true, Address: "12 rue des Lilas, Rennes"}
	first := must(record(svc, family, "famille-1"))
	must(record(svc, &domain.ObservationRecordedPayload{Summary: "Léo a revu Mme Durand <mercredi> & jeudi"}, ""))

	secrets := []string{"Nathalie", "Lilas", "Durand", "2015-03"}
	raw, err := store.ReadCase(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(events []domain.Event) {
		t.Helper()
		v := domain.NewChainVerifier(id)
		for _, e := range events {
			if err := v.Event(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	verify(raw)
	for _, e := range raw {
		for _, s := range secrets {
			if bytes.Contains(e.Payload, []byte(s)) {
				t.Fatalf("the store holds %q in clear: %s", s, e.Payload)
			}
		}
	}
	if !personal.Sealed(raw[1].Payload) {
		t.Fatalf("FamilyMemberRecorded stored without sealed fields: %s", raw[1].Payload)
	}

	// Reads open the fields: in the timeline, in the state, and the opened
	// events still verify.
	auditor := domain.Viewer{Role: domain.RoleAuditor}
	tl, err := other.Timeline(ctx, id, auditor, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tl.Events[2].Payload); !strings.Contains(got, `Mme Durand \u003cmercredi\u003e \u0026 jeudi`) {
		t.Fatalf("observation reads %s", got)
	}
	st, events, err := svc.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	verify(events)
	if st.Family[mother].Name != "Nathalie Durand" {
		t.Fatalf("state holds the name %q", st.Family[mother].Name)
	}
	// A retried request is still recognised (the cached event is opened).
	if again := must(record(other, family, "famille-1")); !again.Replayed || again.Events[0].ID != first.Events[0].ID {
		t.Fatalf("retry: replayed %v", again.Replayed)
	}

	// Erasure: only auditors and admins, with a reason, on a case that exists.
	if _, err := svc.Erase(ctx, cases.EraseRequest{CaseID: id, Role: domain.RoleProfessional, Reason: "x"}); domain.ErrorCode(err) != domain.EForbidden {
		t.Fatalf("professional erases: %v", err)
	}
	if _, err := svc.Erase(ctx, cases.EraseRequest{CaseID: id, Role: domain.RoleAuditor, Reason: "  "}); domain.ErrorCode(err) != domain.EInvalid {
		t.Fatalf("no reason: %v", err)
	}
	if _, err := svc.Erase(ctx, cases.EraseRequest{CaseID: uuid.New(), Role: domain.RoleAdmin, Reason: "fin de conservation"}); !errors.Is(err, cases.ErrNotFound) {
		t.Fatalf("unknown case: %v", err)
	}
	rec, err := svc.Erase(ctx, cases.EraseRequest{CaseID: id, Role: domain.RoleAuditor, Name: "DPD", Reason: "fin de la durée de conservation"})
	if err != nil || rec.Reason != "fin de la durée de conservation" {
		t.Fatalf("erase: %+v %v", rec, err)
	}
	if again, err := svc.Erase(ctx, cases.EraseRequest{CaseID: id, Role: domain.RoleAdmin, Reason: "encore"}); err != nil || again.At != rec.At || again.Reason != rec.Reason {
		t.Fatalf("second erasure: %+v %v, want the first record", again, err)
	}

	if len(told) != 2 || told[0] != id {
		t.Fatalf("erasure hooks told of %v, want the case twice (an erasure retried finishes the cleanup)", told)
	}
	// Both processes now read the case erased; it still verifies.
	for _, s := range []*cases.Service{svc, other} {
		st, events, err := s.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		verify(events)
		if st.Family[mother].Name != personal.Erased {
			t.Fatalf("state holds the name %q after erasure", st.Family[mother].Name)
		}
		tl, err := s.Timeline(ctx, id, auditor, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range tl.Events {
			for _, secret := range secrets {
				if bytes.Contains(ev.Payload, []byte(secret)) {
					t.Fatalf("after erasure the timeline shows %q: %s", secret, ev.Payload)
				}
			}
		}
		if !strings.Contains(string(tl.Events[1].Payload), `"name":"`+personal.Erased+`"`) {
			t.Fatalf("erased name reads %s", tl.Events[1].Payload)
		}
	}
	raw2, _ := store.ReadCase(ctx, id, 0)
	verify(raw2)
	// Nothing more is recorded on an erased case.
	_, err = record(other, &domain.ObservationRecordedPayload{Summary: "après"}, "")
	var de *domain.Error
	if !errors.As(err, &de) || de.Rule != "case_erased" {
		t.Fatalf("record after erasure: %v, want rule case_erased", err)
	}
}

// Given a component keeping copies that fails to drop them, the erasure
// still destroys the key and says it is unfinished; erasing again finishes.
func TestAFailedErasureHookIsFinishedByErasingAgain(t *testing.T) {
	ctx := context.Background()
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	calls := 0
	svc, err := cases.New(store, cases.WithPersonalData(personal.NewMemoryKeys()), cases.WithOnErase(func(context.Context, domain.CaseID) error {
		calls++
		if calls == 1 {
			return errors.New("feeds unreachable")
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	open := &domain.CaseOpenedPayload{ChildReference: "TST-35-0003", LegalFrame: domain.FrameJudicial, Departement: "35",
		Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}}
	if _, err := svc.Record(ctx, cases.Request{CaseID: id, Command: domain.Command{Type: open.EventType(),
		Actor: domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}, Role: domain.RoleProfessional, Payload: open}}); err != nil {
		t.Fatal(err)
	}
	req := cases.EraseRequest{CaseID: id, Role: domain.RoleAdmin, Reason: "fin de la durée de conservation"}
	rec, err := svc.Erase(ctx, req)
	if !errors.Is(err, cases.ErrErasureUnfinished) || rec.CaseID != id || strings.Contains(err.Error(), id.String()) {
		t.Fatalf("first erasure: %+v, %v; want the record and ErrErasureUnfinished, without the case id", rec, err)
	}
	if _, erased, _ := svc.Erasure(ctx, id); !erased {
		t.Fatal("the key survived a failed hook")
	}
	if _, err := svc.Erase(ctx, req); err != nil || calls != 2 {
		t.Fatalf("erasing again: %v after %d calls of the hook", err, calls)
	}
}
