package accesslog_test

import (
	"bufio"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
)

func openStore(t *testing.T, dir string) *jetstream.Store {
	t.Helper()
	store, err := jetstream.Open(t.Context(), jetstream.WithEmbedded(dir), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func recordOf(principal uuid.UUID) domain.AccessRecord {
	return domain.AccessRecord{Kind: domain.AccessTimeline, CaseID: uuid.New(), FromSequence: 1, ToSequence: 9,
		Principal: principal, Role: domain.RoleProfessional, Institution: "mecs-35", Purpose: "synthèse"}
}

// recordConcurrently records n records from each of g goroutines and
// returns their principals.
func recordConcurrently(t *testing.T, log *accesslog.Log, g, n int) []uuid.UUID {
	t.Helper()
	var mu sync.Mutex
	var out []uuid.UUID
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for range n {
				p := uuid.New()
				if err := log.Record(t.Context(), recordOf(p)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				out = append(out, p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// wantEachOnce checks that the log holds each principal's record, once,
// and nothing else.
func wantEachOnce(t *testing.T, log *accesslog.Log, principals []uuid.UUID) {
	t.Helper()
	got, err := log.Access(t.Context(), audit.AccessFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]int{}
	for _, r := range got {
		seen[r.Principal]++
	}
	for _, p := range principals {
		if seen[p] != 1 {
			t.Fatalf("record of %s found %d times, want once", p, seen[p])
		}
	}
	if len(got) != len(principals) {
		t.Fatalf("%d records, want %d", len(got), len(principals))
	}
}

// Given 64 goroutines recording at once (their records sharing durable
// writes), every acknowledged record is read back once, in its own
// message on its subject, and the seals cover them exactly.
func TestConcurrentRecordsAreEachStoredOnceAndSealed(t *testing.T) {
	store := openStore(t, t.TempDir())
	log, err := accesslog.Open(t.Context(), store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	principals := recordConcurrently(t, log, 64, 40)
	wantEachOnce(t, log, principals)
	pub, key, _ := ed25519.GenerateKey(nil)
	if n, err := log.Seal(t.Context(), key); err != nil || n != uint64(len(principals)) {
		t.Fatalf("sealed %d records (%v), want %d", n, err, len(principals))
	}
	rep, err := log.VerifySeals(t.Context(), audit.Keys{pub}, nil)
	if err != nil || !rep.OK() || rep.Verified != uint64(len(principals)) || rep.Unsealed != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// Given records durable in the write-ahead stream only, as a crash right
// after their batches were written leaves them, the next Open copies
// them to the records stream, once, and empties the write-ahead stream.
func TestOpenCopiesTheRecordsLeftInTheWriteAheadStream(t *testing.T) {
	store := openStore(t, t.TempDir())
	crashed, err := accesslog.Open(t.Context(), store.JetStream(), accesslog.WithoutIndexing())
	if err != nil {
		t.Fatal(err)
	}
	principals := recordConcurrently(t, crashed, 16, 20)
	log, err := accesslog.Open(t.Context(), store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	wantEachOnce(t, log, principals)
	// Opened again: nothing copied twice.
	if log, err = accesslog.Open(t.Context(), store.JetStream()); err != nil {
		t.Fatal(err)
	}
	wantEachOnce(t, log, principals)
	s, err := store.JetStream().Stream(t.Context(), accesslog.DefaultStream+"_WAL")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d batches left in the write-ahead stream", n)
	}
}

// Given a process recording from 64 goroutines, killed (SIGKILL) after
// 3,000 acknowledgements, every record it acknowledged is in the log
// when the data directory is opened again, once.
func TestAcknowledgedRecordsSurviveAKill(t *testing.T) {
	if dir := os.Getenv("ACCESSLOG_KILL_DIR"); dir != "" {
		recordUntilKilled(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedRecordsSurviveAKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ACCESSLOG_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []uuid.UUID
	sc := bufio.NewScanner(out)
	for len(acked) < 3000 && sc.Scan() {
		if p, err := uuid.Parse(sc.Text()); err == nil {
			acked = append(acked, p)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 3000 {
		t.Fatalf("the recording process stopped after %d records", len(acked))
	}
	store := openStore(t, dir)
	log, err := accesslog.Open(t.Context(), store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	got, err := log.Access(t.Context(), audit.AccessFilter{Limit: 1 << 22})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]int{}
	for _, r := range got {
		seen[r.Principal]++
	}
	for _, p := range acked {
		if seen[p] != 1 {
			t.Fatalf("acknowledged record of %s found %d times after the kill, want once (%d records kept)", p, seen[p], len(got))
		}
	}
	for p, n := range seen {
		if n != 1 {
			t.Fatalf("record of %s stored %d times", p, n)
		}
	}
}

// recordUntilKilled is the killed process: it prints the principal of
// each record once Record has returned.
func recordUntilKilled(t *testing.T, dir string) {
	store := openStore(t, dir)
	log, err := accesslog.Open(t.Context(), store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				p := uuid.New()
				if err := log.Record(t.Context(), recordOf(p)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintln(w, p)
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
