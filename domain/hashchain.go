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
// payload is written as the exact bytes stored (SealedPayload when set).
func CanonicalEncoding(e Event) []byte {
	return appendCanonical(make([]byte, 0, 512+len(e.Payload)+len(e.SealedPayload)), e)
}

// appendCanonical appends the canonical encoding of e to b. It writes every
// value in place (no intermediate strings): hashing is on the path of every
// append, verification and rebuild, where the allocations of a naive
// encoding cost as much as SHA-256 itself.
func appendCanonical(b []byte, e Event) []byte {
	if e.SealedPayload != nil {
		e.Payload = e.SealedPayload
	}
	b = append(b, canonicalPrefix...)
	var tmp [64]byte
	b = appendField(b, "id", appendUUID(tmp[:0], e.ID))
	b = appendField(b, "caseId", appendUUID(tmp[:0], e.CaseID))
	b = appendField(b, "sequence", strconv.AppendUint(tmp[:0], e.Sequence, 10))
	b = appendStringField(b, "type", string(e.Type))
	b = appendField(b, "schemaVersion", strconv.AppendInt(tmp[:0], int64(e.SchemaVersion), 10))
	b = appendField(b, "recordedAt", appendCanonicalTime(tmp[:0], e.RecordedAt))
	b = appendField(b, "occurredAt", appendCanonicalTime(tmp[:0], e.OccurredAt))
	b = appendStringField(b, "actor.institution", string(e.Actor.Institution))
	b = appendStringField(b, "actor.professional", e.Actor.Professional)
	b = appendField(b, "actor.familyMember", appendUUID(tmp[:0], e.Actor.FamilyMember))
	b = appendStringField(b, "category", string(e.Category))
	b = appendField(b, "correlationId", appendUUID(tmp[:0], e.CorrelationID))
	b = appendField(b, "causationId", appendUUID(tmp[:0], e.CausationID))
	b = appendField(b, "salt", e.Salt)
	return appendField(b, "payload", e.Payload)
}

// appendField appends a field: its name, a zero byte, the value's length as
// 8 bytes big-endian, the value.
func appendField(b []byte, name string, v []byte) []byte {
	b = append(b, name...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
	return append(b, v...)
}

func appendStringField(b []byte, name, v string) []byte {
	b = append(b, name...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
	return append(b, v...)
}

// appendUUID appends u as uuid.UUID.String writes it.
func appendUUID(b []byte, u CaseID) []byte {
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return append(b, s[:]...)
}

func appendCanonicalTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

// Leaf returns leaf = SHA-256(canonical encoding of the event).
func Leaf(e Event) Hash {
	var buf [2048]byte // most events fit: no allocation
	return sha256.Sum256(appendCanonical(buf[:0], e))
}

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
