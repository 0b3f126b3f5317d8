package accesslog_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
)

func TestRecordsAreQueriedByCaseInstitutionAndPeriodAndNeverDeleted(t *testing.T) {
	ctx := context.Background()
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log, err := accesslog.Open(ctx, store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	a, b := uuid.New(), uuid.New()
	t0 := time.Now().UTC().Truncate(time.Second)
	records := []domain.AccessRecord{
		{At: t0, Kind: domain.AccessTimeline, CaseID: a, FromSequence: 1, ToSequence: 20, Principal: uuid.New(), Role: domain.RoleProfessional, Institution: "mecs-35", Purpose: "préparation\nde la synthèse"},
		{At: t0.Add(time.Second), Kind: domain.AccessSummary, CaseID: a, ToSequence: 20, Role: domain.RoleProfessional, Institution: "cmp-35"},
		{At: t0.Add(2 * time.Second), Kind: domain.AccessTimeline, CaseID: b, FromSequence: 1, ToSequence: 3, Role: domain.RoleProfessional, Institution: "mecs-35"},
		{At: t0.Add(3 * time.Second), Kind: domain.AccessFeed, CaseID: a, FromSequence: 21, ToSequence: 21, Role: domain.RoleProfessional, Institution: "mecs-35"},
		{At: t0.Add(4 * time.Second), Kind: domain.AccessTimeline, CaseID: a, FromSequence: 1, ToSequence: 21, Role: domain.RoleFamily, FamilyMember: uuid.New()},
		{At: t0.Add(5 * time.Second), Kind: domain.AccessExport, CaseID: b, ToSequence: 3, Role: domain.RoleAuditor},
	}
	for _, r := range records {
		if err := log.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	count := func(f audit.AccessFilter, want int) []domain.AccessRecord {
		t.Helper()
		got, err := log.Access(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Fatalf("%+v: %d records, want %d: %+v", f, len(got), want, got)
		}
		return got
	}
	got := count(audit.AccessFilter{CaseID: a}, 4)
	if got[0].Purpose != "préparation de la synthèse" || got[0].Institution != "mecs-35" || !got[0].At.Equal(t0) {
		t.Fatalf("first record of case a: %+v", got[0])
	}
	count(audit.AccessFilter{Institution: "mecs-35"}, 3)
	count(audit.AccessFilter{CaseID: a, Institution: "mecs-35"}, 2)
	count(audit.AccessFilter{From: t0.Add(2 * time.Second), To: t0.Add(5 * time.Second)}, 3)
	last := count(audit.AccessFilter{Limit: 2}, 2)
	if last[1].Kind != domain.AccessExport {
		t.Fatalf("limit keeps the newest: %+v", last)
	}
	count(audit.AccessFilter{CaseID: uuid.New()}, 0)

	if err := log.Record(ctx, domain.AccessRecord{Kind: domain.AccessTimeline, Role: domain.RoleAuditor}); err == nil {
		t.Fatal("a record without a case was accepted")
	}
	s, err := store.JetStream().Stream(ctx, accesslog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("a record was deleted")
	}
	if err := s.Purge(ctx); err == nil {
		t.Fatal("the log was purged")
	}
	store.Close()
	if err := log.Record(ctx, records[0]); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("record with the server gone: %v", err)
	}
}
