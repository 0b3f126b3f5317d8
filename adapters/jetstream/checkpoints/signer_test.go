package checkpoints_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/checkpoints"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/generate"
)

func TestSignerSignsChangedHeadsAndNeverABrokenChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(t.TempDir()), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	heads, err := checkpoints.OpenHeads(ctx, store.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	g := generate.New(generate.Options{Seed: 3, EventsPerCase: 40})
	a, b := g.Case(), g.Case()
	if len(a) < 14 {
		t.Fatalf("case a has %d events, the test needs 14", len(a))
	}
	var last domain.Position
	appendAll := func(evs []domain.Event, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			res, err := store.Append(ctx, uint64(i), evs[i:i+1])
			if err != nil {
				t.Fatal(err)
			}
			last = res.Position
		}
	}
	appendAll(a, 0, 10)
	appendAll(b, 0, len(b))

	start := func() (*checkpoints.Signer, func()) {
		s, err := checkpoints.NewSigner(store, heads, key, checkpoints.WithEvery(time.Hour), checkpoints.WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(runCtx) }()
		return s, func() { stop(); <-done }
	}
	latest := func(evs []domain.Event) audit.SignedHead {
		t.Helper()
		h, ok, err := heads.Latest(ctx, evs[0].CaseID)
		if err != nil || !ok {
			t.Fatalf("no signed head: %v", err)
		}
		if err := h.Verify(pub); err != nil {
			t.Fatal(err)
		}
		return h
	}
	signer, stop := start()
	if err := signer.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	if err := signer.SignNow(ctx); err != nil {
		t.Fatal(err)
	}
	if h := latest(a); h.Version != 10 || h.ChainHash != a[9].ChainHash {
		t.Fatalf("head of a: %+v", h)
	}
	if h := latest(b); h.Version != uint64(len(b)) || h.ChainHash != b[len(b)-1].ChainHash {
		t.Fatalf("head of b: %+v", h)
	}
	appendAll(a, 10, 12)
	signer.WaitFor(ctx, last)
	stop() // signs at shutdown
	if h := latest(a); h.Version != 12 {
		t.Fatalf("head of a after shutdown: %+v", h)
	}
	count := func() int {
		all, err := heads.All(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		return len(all)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d signed heads, want 3", n)
	}

	// A restarted signer re-verifies everything and signs nothing that did
	// not move; an event forged below the application breaks the chain of
	// its case, which is then never signed again.
	forged := a[12]
	forged.Payload = json.RawMessage(`{"summary":"inventé"}`)
	seq := publishRaw(t, store, forged)
	signer, stop = start()
	defer stop()
	if err := signer.WaitFor(ctx, jetstream.EncodePosition(seq, 0)); err != nil {
		t.Fatal(err)
	}
	if err := signer.SignNow(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d signed heads after the restart, want still 3", n)
	}
	broken := signer.Broken()
	if len(broken) != 1 || broken[0].CaseID != a[0].CaseID || broken[0].Sequence != 13 || broken[0].Field != audit.BreakLeaf {
		t.Fatalf("breaks: %+v", broken)
	}
	if h := latest(a); h.Version != 12 {
		t.Fatalf("the broken case was signed: %+v", h)
	}
}

// publishRaw stores an event directly on its case's subject, as the store
// would, bypassing its checks: tampering below the application.
func publishRaw(t *testing.T, store *jetstream.Store, e domain.Event) uint64 {
	t.Helper()
	body, _ := json.Marshal([]domain.Event{e})
	msg := nats.NewMsg(store.Subject(e.CaseID))
	msg.Data = body
	msg.Header.Set(jetstream.HeaderCase, e.CaseID.String())
	msg.Header.Set(jetstream.HeaderFirstSeq, strconv.FormatUint(e.Sequence, 10))
	msg.Header.Set(jetstream.HeaderVersion, strconv.FormatUint(e.Sequence, 10))
	msg.Header.Set(jetstream.HeaderFormat, jetstream.FormatJSON)
	ack, err := store.JetStream().PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}
