package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream/backup"
	"github.com/maillage/maillage/domain/personal"
)

// reopen starts a server on an existing data directory (no demo), its
// embedded NATS listening for the command-line tools.
func reopen(t *testing.T, dir string, vars map[string]string) *server {
	t.Helper()
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--data", dir, "--addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, main: m, dir: dir, vars: vars}
	t.Cleanup(func() { s.close() })
	return s
}

// loadWrites records observations on the demo cases through the HTTP API until
// stop is closed, and returns, per case, each version acknowledged with
// the time its answer came.
type ackedWrite struct {
	version uint64
	at      time.Time
}

func loadWrites(s *server, stop <-chan struct{}) (wait func() map[string][]ackedWrite) {
	var mu sync.Mutex
	got := map[string][]ackedWrite{}
	var wg sync.WaitGroup
	for w, name := range []string{"CASE_LEO", "CASE_NOAH", "CASE_LEO", "CASE_NOAH"} {
		id := s.vars[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"type":"ObservationRecorded","payload":{"summary":"observation %d du rédacteur %d"}}`, i, w)
				req, _ := http.NewRequest("POST", s.main.URL()+"/v1/cases/"+id+"/events", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.vars["ASE"])
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				var ans struct {
					Version uint64 `json:"version"`
				}
				json.NewDecoder(resp.Body).Decode(&ans)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					mu.Lock()
					got[id] = append(got[id], ackedWrite{ans.Version, time.Now()})
					mu.Unlock()
				}
			}
		}()
	}
	return func() map[string][]ackedWrite { wg.Wait(); return got }
}

// The restore drill. Given a server under a load of writes through its
// API, when it is backed up while they go on, a case is erased after the
// backup and the backup is restored into a new data directory with the
// erasure list exported after it, then a server starts on it, audit
// verify passes with the signing key's public key (every chain, every
// signed head, the access log's seals), every event acknowledged before
// the backup started is there, and the case erased after the backup reads
// as erased.
func TestRestoreDrillBackupUnderLoadRestoreVerify(t *testing.T) {
	// Heads signed and access records sealed all along, backup included.
	s := mustServeWith(t, "--nats-listen", "127.0.0.1:0", "--sign-every", "100ms")
	natsURL := s.main.store.Server().ClientURL()
	secrets := s.personalValues("CASE_INES")
	if len(secrets) < 3 {
		t.Fatalf("the demo case has %d personal values: the test proves little", len(secrets))
	}
	work := t.TempDir()
	file := filepath.Join(work, "maillage.mbk")

	// The store is the running server's: only NATS reaches it.
	if _, err := runCLI(t, "backup", "--data", s.dir, "--out", file); err == nil || !strings.Contains(err.Error(), "--nats-listen") {
		t.Fatalf("backup --data of a served directory: %v", err)
	}

	stop := make(chan struct{})
	wait := loadWrites(s, stop)
	time.Sleep(300 * time.Millisecond) // some writes before the backup starts
	started := time.Now()
	out, err := runCLI(t, "backup", "--nats", natsURL, "--data", s.dir, "--out", file, "--with-signing-key")
	finished := time.Now()
	time.Sleep(100 * time.Millisecond) // and some after it ends
	close(stop)
	writes := wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	t.Logf("backup:\n%s", out)
	during := 0
	for _, list := range writes {
		for _, a := range list {
			if a.at.After(started) && a.at.Before(finished) {
				during++
			}
		}
	}
	if during == 0 {
		t.Fatal("no write was acknowledged while the backup ran: the drill proves little")
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("the partial file is left: %v", err)
	}
	if _, err := runCLI(t, "backup", "--nats", natsURL, "--out", file); err == nil || !strings.Contains(err.Error(), "existe déjà") {
		t.Errorf("a second backup over the first: %v", err)
	}

	// A case erased after the backup, and the erasure list taken then.
	ines := s.vars["CASE_INES"]
	wantStatus(t, s.do("POST", "/v1/cases/"+ines+"/erase", "AUDITOR", `{"reason":"fin de la durée de conservation"}`), http.StatusOK)
	list := filepath.Join(work, "effacements.mbk")
	if out, err := runCLI(t, "backup", "--erasures-only", "--nats", natsURL, "--out", list); err != nil || !strings.Contains(out, "1 dossier(s) effacé(s)") {
		t.Fatalf("erasure list: %v\n%s", err, out)
	}
	s.close()

	// Restoring without the later erasures, or into a used directory, is refused.
	target := filepath.Join(t.TempDir(), "restauré")
	if _, err := runCLI(t, "restore", "--in", file, "--data", target); err == nil || !strings.Contains(err.Error(), "--erasures") {
		t.Fatalf("restore without an erasure list: %v", err)
	}
	if _, err := runCLI(t, "restore", "--in", file, "--data", s.dir, "--erasures", list); err == nil || !strings.Contains(err.Error(), "n'est pas vide") {
		t.Fatalf("restore into a used directory: %v", err)
	}
	if _, err := runCLI(t, "restore", "--in", list, "--data", target, "--erasures", list); err == nil || !strings.Contains(err.Error(), "liste d'effacements") {
		t.Fatalf("restore of an erasure list: %v", err)
	}
	out, err = runCLI(t, "restore", "--in", file, "--data", target, "--erasures", list)
	if err != nil || !strings.Contains(out, "dont 1 effacés après la sauvegarde") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	t.Logf("restore:\n%s", out)

	r := reopen(t, target, s.vars)
	rURL := r.main.store.Server().ClientURL()
	pub := filepath.Join(target, "signing.pub")
	out, err = runCLI(t, "audit", "verify", "--nats", rURL, "--pubkey", pub)
	if err != nil || !strings.Contains(out, "OK : toutes les chaînes vérifient") || !strings.Contains(out, "OK : aucun enregistrement scellé") ||
		strings.Contains(out, " 0 têtes signées") || strings.Contains(out, "(0 scellement(s)") {
		t.Fatalf("audit verify of the restored store: %v\n%s", err, out)
	}
	t.Logf("audit verify:\n%s", out)
	for id, list := range writes {
		var before uint64
		for _, a := range list {
			if a.at.Before(started) {
				before = max(before, a.version)
			}
		}
		events, err := r.main.events.ReadCase(context.Background(), uuid.MustParse(id), 0)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(events)) < before {
			t.Errorf("case %s restored at version %d, version %d was acknowledged before the backup started", id, len(events), before)
		}
	}
	// The case erased after the backup is erased in the restored store,
	// and the server (tokens from the restored directory) says so.
	timeline := r.do("GET", "/v1/cases/"+ines+"/timeline?limit=1000", "AUDITOR", "")
	wantStatus(t, timeline, http.StatusOK)
	for _, secret := range secrets {
		if bytes.Contains(timeline.body, []byte(secret)) {
			t.Errorf("after the restore, %q is shown again", secret)
		}
	}
	if !bytes.Contains(timeline.body, []byte(personal.Erased)) {
		t.Errorf("nothing reads %q in the erased case", personal.Erased)
	}
	wantProblem(t, r.do("POST", "/v1/cases/"+ines+"/events", "ASE", `{"type":"ObservationRecorded","payload":{"summary":"après"}}`), http.StatusConflict, "", "case_erased")
	// The restored server records on.
	wantStatus(t, r.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "ASE", `{"type":"ObservationRecorded","payload":{"summary":"après la restauration"}}`), http.StatusCreated)
}

// Given a stopped server, when it is backed up from its data directory
// without --with-signing-key and restored, then the file holds no private
// key, the restored directory keeps the former public key beside the new
// one, and the restored store verifies with both.
func TestBackupOfAStoppedServerWithoutTheSigningKey(t *testing.T) {
	s := mustServeWith(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.main.Signer().SignNow(ctx); err != nil {
		t.Fatal(err)
	}
	s.close()
	key, err := os.ReadFile(filepath.Join(s.dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "b.mbk")
	out, err := runCLI(t, "backup", "--data", s.dir, "--out", file)
	if err != nil || !strings.Contains(out, "clé de signature : pas dans la sauvegarde") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(file)
	if bytes.Contains(b, key) || bytes.Contains(b, bytes.TrimSpace(key)[40:80]) {
		t.Fatal("the backup holds the signing key")
	}
	c, err := backup.Read(bytes.NewReader(b))
	if err != nil || c.Summary.Keys == 0 || len(c.Summary.Streams) < 4 {
		t.Fatalf("contents %+v %v", c.Summary, err)
	}
	target := filepath.Join(t.TempDir(), "r")
	out, err = runCLI(t, "restore", "--in", file, "--data", target, "--accept-stale-erasures")
	if err != nil || !strings.Contains(out, "ne sont PAS réappliqués") || !strings.Contains(out, backup.SigningPubBefore) {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	r := reopen(t, target, s.vars)
	if err := r.main.Signer().SignNow(ctx); err != nil {
		t.Fatal(err)
	}
	rURL := r.main.store.Server().ClientURL()
	if out, err := runCLI(t, "audit", "verify", "--nats", rURL, "--pubkey", filepath.Join(target, "signing.pub")); err == nil {
		t.Fatalf("the former heads verify with the new key alone:\n%s", out)
	}
	out, err = runCLI(t, "audit", "verify", "--nats", rURL, "--pubkey", filepath.Join(target, backup.SigningPubBefore), "--pubkey", filepath.Join(target, "signing.pub"))
	if err != nil || !strings.Contains(out, "OK : toutes les chaînes vérifient") {
		t.Fatalf("audit verify with both keys: %v\n%s", err, out)
	}
}
