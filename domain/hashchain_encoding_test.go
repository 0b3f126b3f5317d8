package domain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

// referenceEncoding is the canonical encoding as first written, field by
// field through strings: the specification appendCanonical must match byte
// for byte (a difference would break every recorded chain).
func referenceEncoding(e Event) []byte {
	if e.SealedPayload != nil {
		e.Payload = e.SealedPayload
	}
	b := []byte(canonicalPrefix)
	field := func(name string, v []byte) {
		b = append(b, name...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
		b = append(b, v...)
	}
	str := func(name, v string) { field(name, []byte(v)) }
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	str("id", e.ID.String())
	str("caseId", e.CaseID.String())
	str("sequence", strconv.FormatUint(e.Sequence, 10))
	str("type", string(e.Type))
	str("schemaVersion", strconv.Itoa(e.SchemaVersion))
	str("recordedAt", ts(e.RecordedAt))
	str("occurredAt", ts(e.OccurredAt))
	str("actor.institution", string(e.Actor.Institution))
	str("actor.professional", e.Actor.Professional)
	str("actor.familyMember", e.Actor.FamilyMember.String())
	str("category", string(e.Category))
	str("correlationId", e.CorrelationID.String())
	str("causationId", e.CausationID.String())
	field("salt", e.Salt)
	field("payload", e.Payload)
	return b
}

func randomEvent(r *rand.Rand) Event {
	id := func() uuid.UUID {
		if r.IntN(4) == 0 {
			return uuid.Nil
		}
		var u uuid.UUID
		for i := range u {
			u[i] = byte(r.Uint32())
		}
		return u
	}
	text := func(n int) string {
		runes := []rune("abcdefghé à ç€\u00a0\"\\{}\x00")
		s := make([]rune, r.IntN(n))
		for i := range s {
			s[i] = runes[r.IntN(len(runes))]
		}
		return string(s)
	}
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 3600), time.FixedZone("X", -9*3600-1800)}
	at := func() time.Time {
		if r.IntN(8) == 0 {
			return time.Time{}
		}
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2))).In(zones[r.IntN(len(zones))])
	}
	e := Event{ID: id(), CaseID: id(), Sequence: r.Uint64() >> r.IntN(64), Type: EventType(text(30)), SchemaVersion: r.IntN(5) - 1,
		RecordedAt: at(), OccurredAt: at(), Actor: Actor{Institution: InstitutionID(text(20)), Professional: text(40), FamilyMember: id()},
		Category: Category(text(12)), CorrelationID: id(), CausationID: id(), Payload: []byte(text(3000))}
	if r.IntN(3) > 0 {
		e.Salt = []byte(text(20))
	}
	if r.IntN(3) == 0 {
		e.SealedPayload = []byte(text(200))
	}
	return e
}

func TestCanonicalEncodingMatchesTheReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		e := randomEvent(r)
		want := referenceEncoding(e)
		if got := CanonicalEncoding(e); !bytes.Equal(got, want) {
			t.Fatalf("event %d: encoding differs from the reference:\n%q\n%q", i, got, want)
		}
		if Leaf(e) != sha256.Sum256(want) {
			t.Fatalf("event %d: leaf differs from the reference", i)
		}
	}
}

// BenchmarkLeaf: 4.0 µs and 10 allocations with the reference encoding,
// 2.3 µs and none with appendCanonical (2 cores, a 200-byte payload).
func BenchmarkLeaf(b *testing.B) {
	e := randomEvent(rand.New(rand.NewPCG(3, 4)))
	e.Payload = e.Payload[:min(len(e.Payload), 200)]
	b.ReportAllocs()
	for b.Loop() {
		Leaf(e)
	}
}
