package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maillage/maillage/domain"
)

// signedDemo starts the demo on a new data directory, records one more
// event on Léo's case, has every head signed (the last event's among them),
// stops the server and returns the directory and the demo's variables.
func signedDemo(t *testing.T) (string, map[string]string, int) {
	t.Helper()
	s := mustServe(t, "")
	a := s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "ASE", `{"type":"ObservationRecorded","payload":{"summary":"Dernier événement avant l'incident."}}`)
	wantStatus(t, a, http.StatusCreated)
	var rec struct {
		Version  int             `json:"version"`
		Position domain.Position `json:"position"`
	}
	if err := json.Unmarshal(a.body, &rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.main.Signer().WaitFor(ctx, rec.Position); err != nil {
		t.Fatal(err)
	}
	if err := s.main.Signer().SignNow(ctx); err != nil {
		t.Fatal(err)
	}
	vars := s.vars
	s.close()
	return s.dir, vars, rec.Version
}

// lastEventsBlock is the events stream's last block file.
func lastEventsBlock(t *testing.T, dir string) string {
	t.Helper()
	blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "jetstream", "*", "streams", "MAILLAGE_EVENTS", "msgs", "*.blk"))
	if err != nil || len(blocks) == 0 {
		t.Fatalf("no block file of the events stream under %s (%v)", dir, err)
	}
	slices.SortFunc(blocks, func(a, b string) int { return len(a) - len(b) }) // 1.blk < 10.blk
	return blocks[len(blocks)-1]
}

// restart starts the server again on dir with the variables of its first
// start (the demo prints them once).
func restart(t *testing.T, dir string, vars map[string]string) *server {
	t.Helper()
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--data", dir, "--addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, main: m, dir: dir, vars: vars}
	t.Cleanup(s.close)
	return s
}

// waitReadyz polls /readyz until ok says its answer is the one expected.
func waitReadyz(t *testing.T, s *server, ok func(answer) bool) answer {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := s.do("GET", "/readyz", "", "")
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s", a.status, a.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDamagedStoreSaysSoAndRefusesToFork: a store that lost signed events of
// a case (its last block file cut short, a byte flipped in its last
// message, with or without the read models' snapshot) comes up saying so:
// the case is read-only (no different event is accepted at a signed
// sequence), /readyz names how many cases, the metric counts them, and
// maillage audit verify reports them; the read models do not stall on the
// lost message; the other cases still take commands.
func TestDamagedStoreSaysSoAndRefusesToFork(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, block string)
		noSnap bool
	}{
		{name: "last block cut by 100 bytes", damage: func(t *testing.T, block string) {
			fi, err := os.Stat(block)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(block, fi.Size()-100); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "last block cut, snapshot deleted", noSnap: true, damage: func(t *testing.T, block string) {
			fi, _ := os.Stat(block)
			if err := os.Truncate(block, fi.Size()-100); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a byte flipped in the last message", damage: func(t *testing.T, block string) {
			b, err := os.ReadFile(block)
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.LastIndex(b, []byte("Dernier événement"))
			if i < 0 {
				i = len(b) - 40 // the body is binary: somewhere in the last message
			}
			b[i] ^= 0x01
			if err := os.WriteFile(block, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, vars, version := signedDemo(t)
			tc.damage(t, lastEventsBlock(t, dir))
			if tc.noSnap {
				if err := os.Remove(filepath.Join(dir, snapshotFile)); err != nil {
					t.Fatal(err)
				}
			}
			s := restart(t, dir, vars)

			// The next command is not recorded at the lost, signed sequence.
			a := s.do("POST", "/v1/cases/"+vars["CASE_LEO"]+"/events", "ASE", `{"type":"ObservationRecorded","payload":{"summary":"Un autre événement à la même place."}}`)
			if a.status != http.StatusServiceUnavailable || a.json(t)["rule"] != "case_damaged" {
				t.Fatalf("command on the damaged case: %d %s, want 503 case_damaged", a.status, a.body)
			}
			if !strings.Contains(string(a.body), "maillage audit verify") {
				t.Errorf("the refusal does not say what to do: %s", a.body)
			}
			// /readyz names the damage and how many cases, once the read
			// models are up (they must not wait for the lost message).
			ready := waitReadyz(t, s, func(a answer) bool {
				return a.status == http.StatusServiceUnavailable && strings.Contains(string(a.body), "cases_damaged") && !strings.Contains(string(a.body), "projections")
			})
			if !strings.Contains(string(ready.body), "1 dossier(s) endommagé(s)") {
				t.Errorf("/readyz does not count the damaged cases: %s", ready.body)
			}
			if m := s.do("GET", "/metrics", "", ""); !strings.Contains(string(m.body), "maillage_audit_broken_chains 1") {
				t.Errorf("the metric does not count the damaged case")
			}
			// Still refused once the signer has checked everything; the
			// case is still readable, one event short of what was signed.
			if a := s.do("POST", "/v1/cases/"+vars["CASE_LEO"]+"/events", "ASE", `{"type":"ObservationRecorded","payload":{"summary":"x"}}`); a.status != http.StatusServiceUnavailable {
				t.Fatalf("second command on the damaged case: %d %s", a.status, a.body)
			}
			if got := len(s.timeline("CASE_LEO", "ASE")); got != version-1 {
				t.Errorf("the damaged case shows %d events, want %d", got, version-1)
			}
			// Other cases take commands.
			wantStatus(t, s.do("POST", "/v1/cases/"+vars["CASE_INES"]+"/events", "AED", `{"type":"ObservationRecorded","payload":{"summary":"RAS."}}`), http.StatusCreated)
			s.close()

			// maillage audit verify names the case.
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"audit", "verify", "--data", dir, "--pubkey", filepath.Join(dir, "signing.pub")}, &out, &errOut)
			if err == nil || !strings.Contains(out.String()+errOut.String(), vars["CASE_LEO"]) {
				t.Errorf("audit verify: %v\n%s\n%s", err, out.String(), errOut.String())
			}
		})
	}
}

// TestEmptiedBlockFileSaysSo: an emptied block file (every event lost)
// comes up with every signed case counted as damaged, never as an empty,
// ready store.
func TestEmptiedBlockFileSaysSo(t *testing.T) {
	dir, vars, _ := signedDemo(t)
	if err := os.Truncate(lastEventsBlock(t, dir), 0); err != nil {
		t.Fatal(err)
	}
	s := restart(t, dir, vars)
	ready := waitReadyz(t, s, func(a answer) bool {
		return strings.Contains(string(a.body), "cases_damaged") && !strings.Contains(string(a.body), "projections")
	})
	if ready.status != http.StatusServiceUnavailable || !strings.Contains(string(ready.body), "3 dossier(s) endommagé(s)") {
		t.Fatalf("/readyz: %d %s, want the 3 demo cases damaged", ready.status, ready.body)
	}
	if a := s.do("POST", "/v1/cases/"+vars["CASE_LEO"]+"/events", "ASE", `{"type":"ObservationRecorded","payload":{"summary":"x"}}`); a.status < 400 {
		t.Fatalf("a command on a lost case was accepted: %d %s", a.status, a.body)
	}
}
