package personal

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
)

// reseal seals a generated history again with its personal-data fields
// encrypted, as the case service records them.
func reseal(t *testing.T, events []domain.Event, key []byte) []domain.Event {
	t.Helper()
	out := make([]domain.Event, len(events))
	head := domain.Genesis(events[0].CaseID)
	for i, e := range events {
		sealed, err := Seal(e, key, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sealed.LeafHash = domain.Leaf(sealed)
		sealed.ChainHash = domain.Chain(head, sealed.LeafHash)
		head = sealed.ChainHash
		out[i] = sealed
	}
	return out
}

func history(t *testing.T) []domain.Event {
	t.Helper()
	g := generate.New(generate.Options{Seed: 7, EventsPerCase: 120})
	var events []domain.Event
	for range 4 {
		events = append(events, g.Case()...)
	}
	return events
}

func byCase(events []domain.Event) map[domain.CaseID][]domain.Event {
	out := map[domain.CaseID][]domain.Event{}
	for _, e := range events {
		out[e.CaseID] = append(out[e.CaseID], e)
	}
	return out
}

func TestSealHidesEveryPersonalFieldAndOpenGivesTheSamePayloadBack(t *testing.T) {
	sealedFields := 0
	for _, events := range byCase(history(t)) {
		key := make([]byte, KeySize)
		rand.Read(key)
		sealed := reseal(t, events, key)
		v := domain.NewChainVerifier(events[0].CaseID)
		for i, s := range sealed {
			p, _ := events[i].Decode()
			strs, err := targets(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, str := range strs {
				if len(*str) >= 4 && bytes.Contains(s.Payload, []byte(strings.TrimSuffix(strings.TrimPrefix(mustJSON(t, *str), `"`), `"`))) {
					t.Fatalf("%s %d: sealed payload shows %q: %s", s.Type, s.Sequence, *str, s.Payload)
				}
				if *str != "" {
					sealedFields++
				}
			}
			opened, err := Open(s, key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(opened.Payload, events[i].Payload) {
				t.Fatalf("%s %d: opened payload\n%s\nwant\n%s", s.Type, s.Sequence, opened.Payload, events[i].Payload)
			}
			if again := Opened(s, events[i].Payload); !bytes.Equal(again.Payload, opened.Payload) || !bytes.Equal(again.SealedPayload, opened.SealedPayload) {
				t.Fatalf("%s %d: Opened differs from Open", s.Type, s.Sequence)
			}
			if err := v.Event(opened); err != nil {
				t.Fatalf("opened event does not verify: %v", err)
			}
		}
	}
	if sealedFields < 100 {
		t.Fatalf("only %d personal fields in the generated history: the test proves little", sealedFields)
	}
}

func TestErasedFieldsReadAsErasedAndTheChainStillVerifies(t *testing.T) {
	for _, events := range byCase(history(t)) {
		key := make([]byte, KeySize)
		rand.Read(key)
		sealed := reseal(t, events, key)
		v := domain.NewChainVerifier(events[0].CaseID)
		for i, s := range sealed {
			erased, err := Open(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Event(erased); err != nil {
				t.Fatalf("erased event does not verify: %v", err)
			}
			p, err := erased.Decode()
			if err != nil {
				t.Fatalf("%s %d: erased payload does not decode: %v: %s", s.Type, s.Sequence, err, erased.Payload)
			}
			orig, _ := events[i].Decode()
			want, _ := targets(orig)
			got, _ := targets(p)
			for k := range got {
				if *want[k] != "" && *got[k] != Erased {
					t.Fatalf("%s %d: field %d reads %q after erasure", s.Type, s.Sequence, k, *got[k])
				}
			}
			// The state folds from erased events too.
			domain.Fold(s.CaseID, []domain.Event{erased})
		}
	}
}

func TestASealedFieldOpensOnlyInItsEvent(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	var obs []domain.Event
	for _, e := range history(t) {
		if e.Type == domain.ObservationRecorded && len(obs) < 2 {
			obs = append(obs, e)
		}
	}
	a, _ := Seal(obs[0], key, rand.Reader)
	b, _ := Seal(obs[1], key, rand.Reader)
	var pa, pb map[string]any
	json.Unmarshal(a.Payload, &pa)
	json.Unmarshal(b.Payload, &pb)
	pb["summary"] = pa["summary"]
	b.Payload, _ = json.Marshal(pb)
	if _, err := Open(b, key); err == nil {
		t.Fatal("a field copied from another event opened")
	}
	other := make([]byte, KeySize)
	rand.Read(other)
	if _, err := Open(a, other); err == nil {
		t.Fatal("a field opened with another case's key")
	}
}

func TestEventsWithoutPersonalDataAreUnchanged(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	for _, e := range history(t) {
		if e.Type != domain.ConsentGiven {
			continue
		}
		s, err := Seal(e, key, rand.Reader)
		if err != nil || !bytes.Equal(s.Payload, e.Payload) {
			t.Fatalf("%s changed: %v", e.Type, err)
		}
		if o, _ := Open(e, key); o.SealedPayload != nil {
			t.Fatalf("%s opened into a new payload", e.Type)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A full view of an opened event carries the stored payload, so the viewer
// recomputes the leaf; a redacted view or a stub never carries it.
func TestViewsOfOpenedEvents(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	var e domain.Event
	for _, ev := range history(t) {
		if ev.Type == domain.FamilyMemberRecorded {
			e = ev
			break
		}
	}
	sealed, _ := Seal(e, key, rand.Reader)
	sealed.LeafHash = domain.Leaf(sealed)
	opened, err := Open(sealed, key)
	if err != nil {
		t.Fatal(err)
	}
	var back domain.Event
	if err := json.Unmarshal([]byte(mustJSON(t, domain.View(opened, domain.Decision{Visibility: domain.Full}))), &back); err != nil {
		t.Fatal(err)
	}
	if domain.Leaf(back) != sealed.LeafHash || !bytes.Equal(back.Payload, e.Payload) {
		t.Fatalf("a full view of an opened event does not verify or does not show the opened payload: %s", back.Payload)
	}
	for _, d := range []domain.Decision{{Visibility: domain.Redacted, Fields: []string{"address"}}, {Visibility: domain.Hidden}} {
		if v := domain.View(opened, d); v.SealedPayload != nil {
			t.Fatalf("a %s view carries the stored payload", d.Visibility)
		}
	}
}
