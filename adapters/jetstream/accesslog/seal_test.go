package accesslog_test

import (
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
)

func openSealed(t *testing.T) (*jetstream.Store, *accesslog.Log) {
	t.Helper()
	store, err := jetstream.Open(t.Context(), jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log, err := accesslog.Open(t.Context(), store.JetStream(), accesslog.WithDeletesAllowed())
	if err != nil {
		t.Fatal(err)
	}
	return store, log
}

func recordN(t *testing.T, log *accesslog.Log, n int) {
	t.Helper()
	for i := range n {
		r := domain.AccessRecord{Kind: domain.AccessTimeline, CaseID: uuid.New(), FromSequence: 1, ToSequence: uint64(i + 1),
			Role: domain.RoleProfessional, Institution: "mecs-35", Purpose: "synthèse"}
		if err := log.Record(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func seal(t *testing.T, log *accesslog.Log, key ed25519.PrivateKey, want uint64) {
	t.Helper()
	n, err := log.Seal(t.Context(), key)
	if err != nil || n != want {
		t.Fatalf("sealed %d records (%v), want %d", n, err, want)
	}
}

// Given records sealed twice and a few not yet sealed, the log verifies
// with the server's public key, and not with another; a sealed record
// deleted below the application, or replaced by an altered copy, breaks
// the seal of its range.
func TestSealsMakeTheAccessLogTamperEvident(t *testing.T) {
	ctx := t.Context()
	store, log := openSealed(t)
	pub, key, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)

	seal(t, log, key, 0) // nothing to seal yet
	recordN(t, log, 10)
	seal(t, log, key, 10)
	seal(t, log, key, 0)
	recordN(t, log, 5)
	seal(t, log, key, 5)
	recordN(t, log, 3)

	rep, err := log.VerifySeals(ctx, audit.Keys{pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Seals != 2 || rep.Verified != 15 || rep.Unsealed != 3 {
		t.Fatalf("untouched log: %+v", rep)
	}
	if _, err := log.VerifySeals(ctx, audit.Keys{other}, nil); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("seals checked with another key: %v, want %v", err, audit.ErrBadSignature)
	}

	// Someone with access to the server removes record 7, then replaces
	// record 12 by a copy that says something else.
	s, err := store.JetStream().Stream(ctx, accesslog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 7); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 12)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if _, err := store.JetStream().Publish(ctx, m.Subject, []byte(`{"kind":"timeline","purpose":"rien à signaler"}`)); err != nil {
		t.Fatal(err)
	}
	rep, err = log.VerifySeals(ctx, audit.Keys{pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Breaks) != 2 || rep.Breaks[0].From != 1 || rep.Breaks[0].To != 10 || rep.Breaks[1].From != 11 || rep.Breaks[1].To != 15 {
		t.Fatalf("after tampering: %+v", rep)
	}
	if rep.Unsealed != 4 {
		t.Fatalf("after tampering, %d records unsealed, want 4 (the copy among them)", rep.Unsealed)
	}
}

// Given two servers sealing the same log at once while records keep
// coming, the seals form one chain: every record is sealed once, and the
// log verifies.
func TestConcurrentSealersNeverForkTheChain(t *testing.T) {
	ctx := t.Context()
	_, log := openSealed(t)
	pub, key, _ := ed25519.GenerateKey(nil)
	var sealed sync.Map
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := log.Seal(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				if n > 0 {
					v, _ := sealed.LoadOrStore(w, new(uint64))
					*v.(*uint64) += n
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	recordN(t, log, 200)
	close(stop)
	wg.Wait()
	seal(t, log, key, func() uint64 {
		var total uint64
		sealed.Range(func(_, v any) bool { total += *v.(*uint64); return true })
		return 200 - total
	}())
	rep, err := log.VerifySeals(ctx, audit.Keys{pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Verified != 200 || rep.Unsealed != 0 {
		t.Fatalf("two sealers: %+v", rep)
	}
	seals, err := log.Seals(ctx)
	if err != nil || len(seals) < 2 {
		t.Fatalf("%d seals, %v", len(seals), err)
	}
	t.Logf("%d seals for 200 records by two sealers", len(seals))
}
