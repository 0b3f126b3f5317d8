package http_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/directory"
	mhttp "github.com/maillage/maillage/adapters/http"
	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/projections"
)

// accessLogDouble is a test double of domain.AccessLog (the real one is
// another package's): it keeps the records in memory, or fails when told.
type accessLogDouble struct {
	mu      sync.Mutex
	records []domain.AccessRecord
	fail    error
}

func (l *accessLogDouble) Record(_ context.Context, r domain.AccessRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	l.records = append(l.records, r)
	return nil
}

func TestPlanAndChronologyReadsAreRecordedOrNotServed(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc, err := cases.New(store)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := directory.Open(filepath.Join(t.TempDir(), "directory.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.AddInstitution(directory.Institution{ID: "ase-35", Kind: domain.KindASE, Name: "ASE 35", Departement: "35"}); err != nil {
		t.Fatal(err)
	}
	token, who, err := dir.Issue(directory.Principal{Role: domain.RoleProfessional, Institution: "ase-35", Name: "Claire Martin"}, svc.Now())
	if err != nil {
		t.Fatal(err)
	}
	runner, err := projections.NewRunner(store)
	if err != nil {
		t.Fatal(err)
	}
	log := &accessLogDouble{}
	srv := httptest.NewServer(mhttp.NewHandler(svc, dir, mhttp.WithReadModels(runner), mhttp.WithAccessLog(log)))
	defer srv.Close()

	id := uuid.New()
	_, err = svc.Record(ctx, cases.Request{CaseID: id, Command: domain.Command{Type: domain.CaseOpened, Role: domain.RoleProfessional,
		Actor: who.Actor(), Payload: &domain.CaseOpenedPayload{ChildReference: "TST-35-0001", LegalFrame: domain.FrameAdministrative,
			Departement: "35", Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}}}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Access-Purpose", "préparation de la synthèse")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, view := range []string{"plan", "chronology", "visibility"} {
		if status, body := get("/v1/cases/" + id.String() + "/" + view); status != http.StatusOK {
			t.Fatalf("%s: %d %s", view, status, body)
		}
	}
	if len(log.records) != 3 {
		t.Fatalf("%d reads recorded, want the plan's, the chronology's and who-sees-what's: %+v", len(log.records), log.records)
	}
	for i, kind := range []domain.AccessKind{domain.AccessPlan, domain.AccessChronology, domain.AccessVisibility} {
		r := log.records[i]
		if r.Kind != kind || r.CaseID != id || r.FromSequence != 1 || r.ToSequence != 1 || r.Principal != who.ID ||
			r.Institution != "ase-35" || r.Role != domain.RoleProfessional || r.Purpose != "préparation de la synthèse" || r.At.IsZero() {
			t.Errorf("record %d: %+v", i, r)
		}
	}

	log.fail = errors.New("access log unreachable")
	status, body := get("/v1/cases/" + id.String() + "/plan")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "access_log_unavailable") || strings.Contains(body, "TST-35-0001") {
		t.Fatalf("a plan whose read cannot be recorded: %d %s", status, body)
	}
}
