package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/maillage/maillage/domain"
)

// AccessSeal makes the access log tamper-evident, as the CNIL expects of
// access logs: a signed digest of its records from stream sequence From to
// To (both included), in stream order, chained to the seal before it. A
// sealed record that is altered, removed or reordered, or one inserted
// among them, changes the digest; removing a seal breaks the chain of
// seals. Records are sealed as stored (subject and body), so the seal
// needs no knowledge of what a record says.
type AccessSeal struct {
	From     uint64      `json:"from"`
	To       uint64      `json:"to"`
	Records  uint64      `json:"records"` // records stored in [From, To] when sealed
	Prev     domain.Hash `json:"prev"`    // the previous seal's Digest; zero for the first
	Digest   domain.Hash `json:"digest"`  // AccessLink folded over the records, from Prev
	SealedAt time.Time   `json:"sealedAt"`
	KeyID    string      `json:"keyId"`
	// Signature is ed25519 over SignedBytes, base64 in JSON.
	Signature []byte `json:"signature"`
}

// AccessLink folds one stored record of the access log into a digest:
// SHA-256 of the previous digest, the record's stream sequence (8 bytes,
// big-endian), then its subject and its body, each preceded by its length
// (4 bytes, big-endian).
func AccessLink(prev domain.Hash, seq uint64, subject string, data []byte) domain.Hash {
	h := sha256.New()
	var n [8]byte
	h.Write(prev[:])
	binary.BigEndian.PutUint64(n[:], seq)
	h.Write(n[:])
	binary.BigEndian.PutUint32(n[:4], uint32(len(subject)))
	h.Write(n[:4])
	h.Write([]byte(subject))
	binary.BigEndian.PutUint32(n[:4], uint32(len(data)))
	h.Write(n[:4])
	h.Write(data)
	var out domain.Hash
	h.Sum(out[:0])
	return out
}

// NewAccessSeal starts the seal that follows prev (nil for the first seal
// of a log, which starts at first, the oldest record stored). Add the
// records after prev's range, in stream order, then sign it.
func NewAccessSeal(prev *AccessSeal, first uint64) AccessSeal {
	if prev == nil {
		return AccessSeal{From: first, To: first - 1}
	}
	return AccessSeal{From: prev.To + 1, To: prev.To, Prev: prev.Digest, Digest: prev.Digest}
}

// Add folds the next stored record into the seal being made, extending its
// range to it.
func (s *AccessSeal) Add(seq uint64, subject string, data []byte) {
	s.Digest = AccessLink(s.Digest, seq, subject, data)
	s.To = seq
	s.Records++
}

// SignedBytes is what is signed: the text
//
//	maillage/v1/access-seal\n<from>\n<to>\n<records>\n<prev hex>\n<digest hex>\n<sealed at, RFC 3339 UTC with nanoseconds>\n
func (s AccessSeal) SignedBytes() []byte {
	return []byte("maillage/v1/access-seal\n" + strconv.FormatUint(s.From, 10) + "\n" + strconv.FormatUint(s.To, 10) + "\n" +
		strconv.FormatUint(s.Records, 10) + "\n" + s.Prev.String() + "\n" + s.Digest.String() + "\n" +
		s.SealedAt.UTC().Format(time.RFC3339Nano) + "\n")
}

// SignSeal returns s signed with key, its KeyID set.
func SignSeal(key ed25519.PrivateKey, s AccessSeal) AccessSeal {
	s.SealedAt = s.SealedAt.UTC()
	s.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	s.Signature = ed25519.Sign(key, s.SignedBytes())
	return s
}

// Verify checks the signature with pub: nil or ErrBadSignature.
func (s AccessSeal) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, s.SignedBytes(), s.Signature) {
		return fmt.Errorf("%w: access log seal of records %d to %d, key %s", ErrBadSignature, s.From, s.To, s.KeyID)
	}
	return nil
}

// What an AccessBreak found.
const (
	AccessBreakDigest = "digest"     // the records of the seal's range do not give its digest
	AccessBreakChain  = "seal_chain" // a seal does not follow the one before it (a seal removed or altered)
)

// AccessBreak is a sealed range of the access log that does not verify.
type AccessBreak struct {
	From, To uint64
	Kind     string // AccessBreakDigest or AccessBreakChain
	Expected domain.Hash
	Found    domain.Hash
	Records  uint64 // records found in the range (Kind digest), against the seal's count
	Sealed   uint64 // the seal's count
}

// AccessReport is the outcome of checking the access log against its seals.
type AccessReport struct {
	Seals    int    // seals whose range was checked
	Verified uint64 // records in those ranges
	Expired  int    // seals whose range starts before the oldest record kept (records expired): not checked
	Unsealed uint64 // records after the last seal
	Breaks   []AccessBreak
}

// OK reports whether every checked range verified.
func (r AccessReport) OK() bool { return len(r.Breaks) == 0 }

// AccessSealCheck checks the access log against its seals, fed with the
// stored records in stream order (Add), from the oldest kept.
type AccessSealCheck struct {
	seals    []AccessSeal
	first    uint64 // oldest stream sequence kept
	i        int    // seal whose range is being read
	digest   domain.Hash
	records  uint64
	report   AccessReport
	finished bool
}

// NewAccessSealCheck checks seals (signatures already verified by the
// caller, when it has the public key) against records of which firstKept is
// the oldest still stored (records expire after the log's retention): the
// ranges starting before it are counted as expired, not checked.
func NewAccessSealCheck(seals []AccessSeal, firstKept uint64) *AccessSealCheck {
	seals = append([]AccessSeal(nil), seals...)
	sort.Slice(seals, func(a, b int) bool { return seals[a].From < seals[b].From })
	c := &AccessSealCheck{seals: seals, first: firstKept}
	for k, s := range seals {
		if k > 0 && (s.From != seals[k-1].To+1 || s.Prev != seals[k-1].Digest) {
			c.report.Breaks = append(c.report.Breaks, AccessBreak{From: s.From, To: s.To, Kind: AccessBreakChain,
				Expected: seals[k-1].Digest, Found: s.Prev})
		}
	}
	c.skipExpired()
	if c.i < len(c.seals) {
		c.digest = c.seals[c.i].Prev
	}
	return c
}

// skipExpired passes the seals whose range starts before the oldest kept
// record.
func (c *AccessSealCheck) skipExpired() {
	for c.i < len(c.seals) && c.seals[c.i].From < c.first {
		c.report.Expired++
		c.i++
	}
}

// Add folds the next stored record, in stream order.
func (c *AccessSealCheck) Add(seq uint64, subject string, data []byte) {
	for c.i < len(c.seals) && seq > c.seals[c.i].To {
		c.close()
	}
	if c.i >= len(c.seals) {
		c.report.Unsealed++
		return
	}
	if seq < c.seals[c.i].From {
		return // before the first checked range (its seal expired)
	}
	c.digest = AccessLink(c.digest, seq, subject, data)
	c.records++
}

// close ends the range of the current seal and starts the next one.
func (c *AccessSealCheck) close() {
	s := c.seals[c.i]
	c.report.Seals++
	c.report.Verified += c.records
	if c.digest != s.Digest || c.records != s.Records {
		c.report.Breaks = append(c.report.Breaks, AccessBreak{From: s.From, To: s.To, Kind: AccessBreakDigest,
			Expected: s.Digest, Found: c.digest, Records: c.records, Sealed: s.Records})
	}
	c.i++
	c.records = 0
	if c.i < len(c.seals) {
		c.digest = c.seals[c.i].Prev
	}
}

// Finish closes the ranges still open (their last records missing, if
// any) and returns the report, breaks in log order.
func (c *AccessSealCheck) Finish() AccessReport {
	if !c.finished {
		for c.i < len(c.seals) {
			c.close()
		}
		sort.SliceStable(c.report.Breaks, func(a, b int) bool { return c.report.Breaks[a].From < c.report.Breaks[b].From })
		c.finished = true
	}
	return c.report
}
