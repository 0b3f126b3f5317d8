package cases_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// Two services over one store stand for two processes: each decides on
// its own cache, which the other's writes leave behind.
func TestACacheBehindTheStoreNeverDecidesWrong(t *testing.T) {
	ctx := context.Background()
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a, _ := cases.New(store)
	b, _ := cases.New(store)
	id := uuid.New()
	ase := domain.Actor{Institution: "ase-35", Professional: "Claire Martin"}
	mecs := domain.Actor{Institution: "mecs-35", Professional: "Julien Roux"}
	req := func(actor domain.Actor, p domain.Payload) cases.Request {
		return cases.Request{CaseID: id, Command: domain.Command{Type: p.EventType(), Actor: actor, Role: domain.RoleProfessional, Payload: p}}
	}
	observation := func(actor domain.Actor, text string) cases.Request {
		return req(actor, &domain.ObservationRecordedPayload{Summary: text})
	}
	record := func(svc *cases.Service, r cases.Request, wantVersion uint64) cases.Result {
		t.Helper()
		res, err := svc.Record(ctx, r)
		if err != nil {
			t.Fatalf("record %s: %v", r.Command.Type, err)
		}
		if res.Version != wantVersion {
			t.Fatalf("record %s: version %d, want %d", r.Command.Type, res.Version, wantVersion)
		}
		return res
	}

	record(a, req(ase, &domain.CaseOpenedPayload{ChildReference: "TST-35-0001", LegalFrame: domain.FrameAdministrative, Departement: "35",
		Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}}), 1)
	// b adds a member a does not know of; a lets the new member record.
	record(b, req(ase, &domain.PartnerJoinedPayload{Institution: "mecs-35", Kind: domain.KindMECS, Name: "MECS", Referent: domain.Referent{Name: "Julien Roux"}, Reason: "accueil"}), 2)
	record(a, observation(mecs, "première observation"), 3)

	// A request first recorded through b and retried through a is replayed.
	keyed := observation(ase, "avec une clé")
	keyed.IdempotencyKey = "k-1"
	first := record(b, keyed, 4)
	retry := record(a, keyed, 4)
	if !retry.Replayed || retry.Events[0].ID != first.Events[0].ID {
		t.Fatalf("retry through the other process: replayed %v, ids %s and %s", retry.Replayed, first.Events[0].ID, retry.Events[0].ID)
	}

	// If-Match with the version b brought the case to passes on a.
	record(b, observation(ase, "par b"), 5)
	five := uint64(5)
	withVersion := observation(ase, "au vu de la version 5")
	withVersion.IfMatch = &five
	record(a, withVersion, 6)
	withVersion.Command.Payload = &domain.ObservationRecordedPayload{Summary: "encore au vu de la version 5"}
	if _, err := a.Record(ctx, withVersion); !errors.Is(err, cases.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: %v, want ErrPreconditionFailed", err)
	}
	// Refusals on the current state stand.
	if _, err := b.Record(ctx, observation(domain.Actor{Institution: "cmp-35"}, "pas membre")); !errors.Is(err, cases.ErrNotFound) {
		t.Fatalf("non-member: %v, want ErrNotFound", err)
	}

	// What a holds from its own appends reads exactly as what a process
	// that reads it all from the store holds.
	c, _ := cases.New(store)
	auditor := domain.Viewer{Role: domain.RoleAuditor}
	mine, err := a.Timeline(ctx, id, auditor, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := c.Timeline(ctx, id, auditor, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	j1, _ := json.Marshal(mine)
	j2, _ := json.Marshal(theirs)
	if string(j1) != string(j2) {
		t.Fatalf("timeline from the writer's cache differs from the store's:\n%s\n%s", j1, j2)
	}
	if mine.Version != 6 || len(mine.Events) != 6 {
		t.Fatalf("timeline at version %d with %d events, want 6", mine.Version, len(mine.Events))
	}
}
