package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// The canonical encoding of an event for hashing is documented in
// docs/hash-chain.md; change both together, and bump the version prefix.
const canonicalPrefix = "maillage/v1/event\n"

// Genesis returns chain(0) of a case: SHA-256("maillage/v1/" + case id).
func Genesis(id CaseID) Hash {
	return sha256.Sum256([]byte("maillage/v1/" + id.String()))
}

// CanonicalEncoding returns the bytes the leaf hash is computed over: the
// event without its hash fields and its position, each field written as its
// name, a zero byte, its length as 8 bytes big-endian and its bytes, in a
// fixed order. Times are written in UTC, RFC 3339 with nanoseconds; the
// payload is written as the exact bytes stored.
func CanonicalEncoding(e Event) []byte {
	b := make([]byte, 0, 512+len(e.Payload))
	b = append(b, canonicalPrefix...)
	field := func(name string, v []byte) {
		b = append(b, name...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
		b = append(b, v...)
	}
	str := func(name, v string) { field(name, []byte(v)) }
	str("id", e.ID.String())
	str("caseId", e.CaseID.String())
	str("sequence", strconv.FormatUint(e.Sequence, 10))
	str("type", string(e.Type))
	str("schemaVersion", strconv.Itoa(e.SchemaVersion))
	str("recordedAt", canonicalTime(e.RecordedAt))
	str("occurredAt", canonicalTime(e.OccurredAt))
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

func canonicalTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Leaf returns leaf = SHA-256(canonical encoding of the event).
func Leaf(e Event) Hash { return sha256.Sum256(CanonicalEncoding(e)) }

// Chain returns chain(n) = SHA-256(chain(n-1) || leaf(n)).
func Chain(prev, leaf Hash) Hash {
	var buf [64]byte
	copy(buf[:32], prev[:])
	copy(buf[32:], leaf[:])
	return sha256.Sum256(buf[:])
}

// ChainBreak describes the first link of a case's chain that does not verify.
type ChainBreak struct {
	CaseID   CaseID
	Sequence uint64
	Field    string // "sequence", "leafHash" or "chainHash"
	Expected string
	Found    string
}

func (b *ChainBreak) Error() string {
	return fmt.Sprintf("case %s: sequence %d: %s expected %s, found %s", b.CaseID, b.Sequence, b.Field, b.Expected, b.Found)
}

// ChainVerifier checks a case's events one by one, in order. A redacted
// event (whose content cannot be re-hashed by the viewer) is checked through
// its leaf hash only: see Link.
type ChainVerifier struct {
	CaseID CaseID
	Head   Hash   // chain hash of the last checked event
	Last   uint64 // sequence of the last checked event
}

// NewChainVerifier starts at chain(0) of the case.
func NewChainVerifier(id CaseID) *ChainVerifier {
	return &ChainVerifier{CaseID: id, Head: Genesis(id)}
}

// Event checks a full event: its sequence follows, its leaf hash is the hash
// of its content, and its chain hash follows the previous one.
func (v *ChainVerifier) Event(e Event) error {
	if leaf := Leaf(e); leaf != e.LeafHash {
		return &ChainBreak{CaseID: v.CaseID, Sequence: e.Sequence, Field: "leafHash", Expected: leaf.String(), Found: e.LeafHash.String()}
	}
	return v.Link(e.Sequence, e.LeafHash, e.ChainHash)
}

// Link checks a link from its sequence and hash fields only (a stub or a
// redacted event): the sequence follows and chain = SHA-256(head || leaf).
func (v *ChainVerifier) Link(seq uint64, leaf, chain Hash) error {
	if seq != v.Last+1 {
		return &ChainBreak{CaseID: v.CaseID, Sequence: seq, Field: "sequence", Expected: strconv.FormatUint(v.Last+1, 10), Found: strconv.FormatUint(seq, 10)}
	}
	if want := Chain(v.Head, leaf); want != chain {
		return &ChainBreak{CaseID: v.CaseID, Sequence: seq, Field: "chainHash", Expected: want.String(), Found: chain.String()}
	}
	v.Head, v.Last = chain, seq
	return nil
}

// String is the lowercase hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros (not computed).
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText writes the lowercase hex form.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads the hex form.
func (h *Hash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("hash: want %d hex digits, got %d", 2*len(h), len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}
