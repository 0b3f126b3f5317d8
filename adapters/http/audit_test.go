package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/directory"
	mhttp "github.com/maillage/maillage/adapters/http"
	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
)

func TestTimelineAndSummaryReadsAreRecordedBeforeTheyAreServed(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// The access log on a server of its own, to take it away mid-test.
	logServer, err := jetstream.Open(ctx, jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer logServer.Close()
	log, err := accesslog.Open(ctx, logServer.JetStream(), accesslog.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := cases.New(store)
	dir, err := directory.Open(filepath.Join(t.TempDir(), "directory.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []directory.Institution{{ID: "ase-35", Kind: domain.KindASE, Name: "ASE 35", Departement: "35"},
		{ID: "cmp-35", Kind: domain.KindCMP, Name: "CMP", Departement: "35"}} {
		if err := dir.AddInstitution(i); err != nil {
			t.Fatal(err)
		}
	}
	aseToken, ase, _ := dir.Issue(directory.Principal{Role: domain.RoleProfessional, Institution: "ase-35", Name: "Claire Martin"}, svc.Now())
	cmpToken, _, _ := dir.Issue(directory.Principal{Role: domain.RoleProfessional, Institution: "cmp-35", Name: "Dr Benali"}, svc.Now())
	srv := httptest.NewServer(mhttp.NewHandler(svc, dir, mhttp.WithAccessLog(log)))
	defer srv.Close()

	id := uuid.New()
	record := func(p domain.Payload) {
		t.Helper()
		if _, err := svc.Record(ctx, cases.Request{CaseID: id, Command: domain.Command{Type: p.EventType(), Role: domain.RoleProfessional, Actor: ase.Actor(), Payload: p}}); err != nil {
			t.Fatal(err)
		}
	}
	record(&domain.CaseOpenedPayload{ChildReference: "TST-35-0009", LegalFrame: domain.FrameAdministrative, Departement: "35",
		Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35", Referent: domain.Referent{Name: "Claire Martin"}})
	for range 4 {
		record(&domain.ObservationRecordedPayload{Summary: "ras"})
	}
	get := func(path, token, purpose string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if purpose != "" {
			req.Header.Set(mhttp.PurposeHeader, purpose)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	base := "/v1/cases/" + id.String()
	if code, body := get(base+"/timeline?after=1&limit=2", aseToken, "synthèse du 5 mars"); code != 200 || !strings.Contains(body, `"sequence":3`) {
		t.Fatalf("timeline: %d %s", code, body)
	}
	if code, _ := get(base, aseToken, ""); code != 200 {
		t.Fatalf("summary: %d", code)
	}
	if code, _ := get(base+"/timeline?after=9", aseToken, ""); code != 200 {
		t.Fatalf("empty page: %d", code)
	}
	if code, _ := get(base+"/timeline", cmpToken, ""); code != 404 {
		t.Fatalf("non-member: %d", code)
	}
	records, err := log.Access(ctx, audit.AccessFilter{CaseID: id})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind     domain.AccessKind
		from, to uint64
		purpose  string
	}{{domain.AccessTimeline, 2, 3, "synthèse du 5 mars"}, {domain.AccessSummary, 1, 5, ""}, {domain.AccessTimeline, 0, 0, ""}}
	if len(records) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(records), len(want), records)
	}
	for i, w := range want {
		r := records[i]
		if r.Kind != w.kind || r.FromSequence != w.from || r.ToSequence != w.to || r.Purpose != w.purpose || r.Principal != ase.ID || r.Institution != "ase-35" {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
	}

	// The log goes away: reads are refused, not served unrecorded.
	logServer.Close()
	code, body := get(base+"/timeline", aseToken, "")
	if code != http.StatusServiceUnavailable || strings.Contains(body, `"sequence"`) {
		t.Fatalf("timeline without the access log: %d %s", code, body)
	}
	var p struct{ Rule string }
	json.Unmarshal([]byte(body), &p)
	if p.Rule != "access_log_unavailable" {
		t.Fatalf("problem %s", body)
	}
}
