package jetstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/maillage/maillage/domain"
)

// The binary body format (FormatBinary): a version byte, the number of
// events, then each event's fields in the order of domain.Event:
//
//	id, caseId               16 bytes each
//	sequence                 uvarint
//	type                     string
//	schemaVersion            varint
//	recordedAt, occurredAt   time
//	actor.institution        string
//	actor.professional       string
//	actor.familyMember       16 bytes
//	category                 string
//	correlationId            16 bytes
//	causationId              16 bytes
//	salt, payload            bytes
//	leafHash, chainHash      32 bytes each
//
// where string and bytes are a uvarint length then the bytes, and time is
// the Unix seconds (varint), the nanoseconds (uvarint) and the zone offset in
// seconds (varint): times keep their instant to the nanosecond and their
// offset (not a zone's name, as with JSON). Positions are not stored.
const binaryVersion = 1

var errTruncated = errors.New("truncated")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(offset))
}

// encodeBinary returns the binary body of events.
func encodeBinary(events []domain.Event) []byte {
	size := 2
	for _, e := range events {
		size += 300 + len(e.Type) + len(e.Actor.Institution) + len(e.Actor.Professional) + len(e.Category) + len(e.Salt) + len(e.Payload)
	}
	b := make([]byte, 0, size)
	b = append(b, binaryVersion)
	b = binary.AppendUvarint(b, uint64(len(events)))
	for _, e := range events {
		b = append(b, e.ID[:]...)
		b = append(b, e.CaseID[:]...)
		b = binary.AppendUvarint(b, e.Sequence)
		b = appendString(b, string(e.Type))
		b = binary.AppendVarint(b, int64(e.SchemaVersion))
		b = appendTime(b, e.RecordedAt)
		b = appendTime(b, e.OccurredAt)
		b = appendString(b, string(e.Actor.Institution))
		b = appendString(b, e.Actor.Professional)
		b = append(b, e.Actor.FamilyMember[:]...)
		b = appendString(b, string(e.Category))
		b = append(b, e.CorrelationID[:]...)
		b = append(b, e.CausationID[:]...)
		b = binary.AppendUvarint(b, uint64(len(e.Salt)))
		b = append(b, e.Salt...)
		b = binary.AppendUvarint(b, uint64(len(e.Payload)))
		b = append(b, e.Payload...)
		b = append(b, e.LeafHash[:]...)
		b = append(b, e.ChainHash[:]...)
	}
	return b
}

// reader reads a binary body; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fixed(dst []byte) {
	if r.err != nil {
		return
	}
	if len(r.b) < len(dst) {
		r.err = errTruncated
		return
	}
	copy(dst, r.b)
	r.b = r.b[len(dst):]
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next length-prefixed bytes, sharing the body's memory.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errTruncated
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) time() time.Time {
	sec, nsec, offset := r.varint(), r.uvarint(), r.varint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 || offset <= -86400 || offset >= 86400 {
		r.err = errors.New("bad time")
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	if offset == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(offset)))
}

// decodeBinary decodes a binary body. The events' salt and payload share
// data's memory: data must not be reused.
func decodeBinary(data []byte) ([]domain.Event, error) {
	r := &reader{b: data}
	var version [1]byte
	r.fixed(version[:])
	if r.err == nil && version[0] != binaryVersion {
		return nil, fmt.Errorf("binary format version %d", version[0])
	}
	n := r.uvarint()
	if r.err != nil {
		return nil, r.err
	}
	if n == 0 || n > MaxBatch || n > uint64(len(r.b))/100 {
		return nil, fmt.Errorf("bad event count %d", n)
	}
	events := make([]domain.Event, n)
	for i := range events {
		e := &events[i]
		r.fixed(e.ID[:])
		r.fixed(e.CaseID[:])
		e.Sequence = r.uvarint()
		e.Type = domain.EventType(r.string())
		sv := r.varint()
		if sv < math.MinInt32 || sv > math.MaxInt32 {
			return nil, fmt.Errorf("event %d: bad schema version %d", i, sv)
		}
		e.SchemaVersion = int(sv)
		e.RecordedAt = r.time()
		e.OccurredAt = r.time()
		e.Actor.Institution = domain.InstitutionID(r.string())
		e.Actor.Professional = r.string()
		r.fixed(e.Actor.FamilyMember[:])
		e.Category = domain.Category(r.string())
		r.fixed(e.CorrelationID[:])
		r.fixed(e.CausationID[:])
		if salt := r.bytes(); len(salt) > 0 {
			e.Salt = salt
		}
		if payload := r.bytes(); len(payload) > 0 {
			e.Payload = payload
		}
		r.fixed(e.LeafHash[:])
		r.fixed(e.ChainHash[:])
		if r.err != nil {
			return nil, fmt.Errorf("event %d: %w", i, r.err)
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the events", len(r.b))
	}
	return events, nil
}
