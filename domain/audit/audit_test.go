package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
)

// cases returns generated histories, each in sequence order, and all their
// events interleaved as a store's global order would hold them.
func cases(t *testing.T, n int) ([][]domain.Event, []domain.Event) {
	t.Helper()
	g := generate.New(generate.Options{Seed: 11, EventsPerCase: 30})
	var each [][]domain.Event
	for range n {
		each = append(each, g.Case())
	}
	var all []domain.Event
	for i := 0; ; i++ {
		added := false
		for _, c := range each {
			if i < len(c) {
				all = append(all, c[i])
				added = true
			}
		}
		if !added {
			return each, all
		}
	}
}

func verify(events []domain.Event, heads []SignedHead) Report {
	v := NewVerifier(heads)
	for _, e := range events {
		v.Add(e)
	}
	return v.Finish()
}

// tamper returns a copy of all with the events of case id replaced by
// what change makes of them.
func tamper(all []domain.Event, id domain.CaseID, change func([]domain.Event) []domain.Event) []domain.Event {
	var mine, out []domain.Event
	for _, e := range all {
		if e.CaseID == id {
			mine = append(mine, e)
		}
	}
	changed := change(append([]domain.Event(nil), mine...))
	k := 0
	for _, e := range all {
		if e.CaseID != id {
			out = append(out, e)
			continue
		}
		if k < len(changed) {
			out = append(out, changed[k])
			k++
		}
	}
	return append(out, changed[k:]...)
}

func wantBreak(t *testing.T, r Report, id domain.CaseID, seq uint64, field string) {
	t.Helper()
	if len(r.Breaks) != 1 {
		t.Fatalf("%d breaks, want 1: %+v", len(r.Breaks), r.Breaks)
	}
	b := r.Breaks[0]
	if b.CaseID != id || b.Sequence != seq || b.Field != field || b.Expected == b.Found {
		t.Fatalf("break %v, want case %s link %d %s", b, id, seq, field)
	}
}

func TestVerifierFindsEveryTamperingWithCaseAndSequence(t *testing.T) {
	each, all := cases(t, 5)
	if r := verify(all, nil); !r.OK() || r.Cases != 5 || r.Events != len(all) {
		t.Fatalf("untouched store: %+v", r)
	}
	id := each[2][0].CaseID
	const k = 7
	altered := func(evs []domain.Event) []domain.Event {
		evs[k-1].Payload = json.RawMessage(strings.Replace(string(evs[k-1].Payload), `"`, `" `, 1))
		return evs
	}
	for _, tc := range []struct {
		name   string
		change func([]domain.Event) []domain.Event
		seq    uint64
		field  string
	}{
		{"altered payload", altered, k, BreakLeaf},
		{"altered actor", func(evs []domain.Event) []domain.Event { evs[k-1].Actor.Professional = "X"; return evs }, k, BreakLeaf},
		{"altered recorded-at", func(evs []domain.Event) []domain.Event {
			evs[k-1].RecordedAt = evs[k-1].RecordedAt.Add(time.Second)
			return evs
		}, k, BreakLeaf},
		{"dropped", func(evs []domain.Event) []domain.Event { return append(evs[:k-1], evs[k:]...) }, k, BreakSequence},
		{"reordered", func(evs []domain.Event) []domain.Event { evs[k-1], evs[k] = evs[k], evs[k-1]; return evs }, k, BreakSequence},
		{"inserted copy", func(evs []domain.Event) []domain.Event {
			return append(evs[:k:k], append([]domain.Event{evs[2]}, evs[k:]...)...)
		}, k + 1, BreakSequence},
		{"inserted forged", func(evs []domain.Event) []domain.Event {
			f := evs[k-1]
			f.ID, f.Payload = uuid.New(), json.RawMessage(`{"summary":"faux"}`)
			f.LeafHash = domain.Leaf(f)
			return append(evs[:k-1:k-1], append([]domain.Event{f}, evs[k-1:]...)...)
		}, k, BreakChain},
		{"appended with a wrong chain", func(evs []domain.Event) []domain.Event {
			f := evs[len(evs)-1]
			f.Sequence++
			f.LeafHash = domain.Leaf(f)
			return append(evs, f)
		}, uint64(len(each[2]) + 1), BreakChain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantBreak(t, verify(tamper(all, id, tc.change), nil), id, tc.seq, tc.field)
		})
	}
}

// rechain recomputes every hash from link k on, as someone rewriting the
// history consistently would.
func rechain(evs []domain.Event, k int) []domain.Event {
	head := domain.Genesis(evs[0].CaseID)
	for i := range evs {
		if i >= k-1 {
			evs[i].LeafHash = domain.Leaf(evs[i])
			evs[i].ChainHash = domain.Chain(head, evs[i].LeafHash)
		}
		head = evs[i].ChainHash
	}
	return evs
}

func TestSignedHeadsCatchAConsistentRewriteAndATruncation(t *testing.T) {
	each, all := cases(t, 3)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	var heads []SignedHead
	for _, c := range each {
		for _, at := range []int{5, len(c)} {
			heads = append(heads, Sign(key, SignedHead{CaseID: c[0].CaseID, Version: uint64(at), ChainHash: c[at-1].ChainHash, SignedAt: time.Now()}))
		}
	}
	if r := verify(all, heads); !r.OK() || r.SignedHeads != 6 {
		t.Fatalf("untouched: %+v", r)
	}
	id := each[1][0].CaseID
	rewritten := tamper(all, id, func(evs []domain.Event) []domain.Event {
		evs[9].Actor.Professional = "quelqu'un d'autre"
		return rechain(evs, 10)
	})
	if r := verify(rewritten, nil); !r.OK() {
		t.Fatalf("a consistent rewrite verifies without signed heads, yet: %+v", r)
	}
	wantBreak(t, verify(rewritten, heads), id, uint64(len(each[1])), BreakSignedHead)

	truncated := tamper(all, id, func(evs []domain.Event) []domain.Event { return evs[:len(evs)-2] })
	wantBreak(t, verify(truncated, heads), id, uint64(len(each[1])-1), BreakSignedHead)

	var withoutCase []domain.Event
	for _, e := range all {
		if e.CaseID != id {
			withoutCase = append(withoutCase, e)
		}
	}
	wantBreak(t, verify(withoutCase, heads), id, 1, BreakSignedHead)
}

func TestSignedHeadSignatureAndKeys(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	h := Sign(key, SignedHead{CaseID: uuid.New(), Version: 3, ChainHash: domain.Hash{1}, SignedAt: time.Now()})
	if err := h.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if h.KeyID != KeyID(pub) || len(h.KeyID) != 16 {
		t.Fatalf("key id %q", h.KeyID)
	}
	forged := h
	forged.Version = 4
	if err := forged.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged version: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := h.Verify(other); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: %v", err)
	}
	var back SignedHead
	b, _ := json.Marshal(h)
	if err := json.Unmarshal(b, &back); err != nil || back.Verify(pub) != nil {
		t.Fatalf("JSON round trip: %v %s", err, b)
	}
	privPEM, _ := MarshalPrivateKey(key)
	pubPEM, _ := MarshalPublicKey(pub)
	k2, err := ParsePrivateKey(privPEM)
	if err != nil || !k2.Equal(key) {
		t.Fatalf("private key round trip: %v", err)
	}
	p2, err := ParsePublicKey(pubPEM)
	if err != nil || !p2.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	if _, err := ParsePublicKey(privPEM); err == nil {
		t.Fatal("a private key parsed as a public key")
	}
}

func TestExportVerifiesOfflineAndShowsTampering(t *testing.T) {
	each, _ := cases(t, 1)
	c := each[0]
	id := c[0].CaseID
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	head := Sign(key, SignedHead{CaseID: id, Version: uint64(len(c)), ChainHash: c[len(c)-1].ChainHash, SignedAt: time.Now()})
	var buf bytes.Buffer
	if err := WriteExport(&buf, id, c, &head, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(c)+2 {
		t.Fatalf("%d lines for %d events", len(lines), len(c))
	}
	x, err := ReadExport(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := VerifyExport(x, Keys{pub}); err != nil || !r.OK() || r.SignedHeads != 1 || r.Events != len(c) {
		t.Fatalf("export: %+v %v", r, err)
	}
	// An event edited in the file (line 0 is the header).
	lines[4] = strings.Replace(lines[4], `"professional":"`, `"professional":"X`, 1)
	x, err = ReadExport(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	r, err := VerifyExport(x, Keys{pub})
	if err != nil {
		t.Fatal(err)
	}
	wantBreak(t, r, id, 4, BreakLeaf)
	// A signed head from another key.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	x.SignedHeads[0] = Sign(other, x.SignedHeads[0])
	if _, err := VerifyExport(x, Keys{pub}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("head signed by another key: %v", err)
	}
	if _, err := ReadExport(strings.NewReader(`{"event":{}}`)); !errors.Is(err, ErrBadExport) {
		t.Fatalf("no header: %v", err)
	}
}
