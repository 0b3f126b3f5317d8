package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/maillage/maillage/domain"
)

// caseLog holds a case's events in a compact append-only encoding: what the
// policy (domain.See) and the read models need of each event, nothing more
// (no salt, no hashes, no correlation ids). One byte slice per case instead of
// a struct with five pointers per event keeps a million events in a few
// hundred megabytes, and cheap for the garbage collector to scan.
//
// Each event is, in order:
//
//	sequence, position        uvarint
//	recordedAt, occurredAt    varint Unix nanoseconds, varint zone offset (seconds)
//	type                      byte: index in domain.EventTypes()+1, or 0 then a string
//	schemaVersion             varint
//	category                  byte: index in domain.Categories+1, or 0 then a string
//	actor                     institution string, professional string, family member (byte 0, or 1 then 16 bytes)
//	id                        16 bytes
//	payload                   bytes
//
// where string and bytes are a uvarint length then the bytes. Bytes once
// written are never changed, so a decoded event may share them.
type caseLog struct {
	b []byte
	n int // events
}

var eventTypes = domain.EventTypes()

func typeCode(t domain.EventType) byte {
	if i := slices.Index(eventTypes, t); i >= 0 {
		return byte(i + 1)
	}
	return 0
}

func categoryCode(c domain.Category) byte {
	if i := slices.Index(domain.Categories, c); i >= 0 {
		return byte(i + 1)
	}
	return 0
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendInstant(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	b = binary.AppendVarint(b, t.UnixNano())
	return binary.AppendVarint(b, int64(offset))
}

// append adds one event at the end of the log. The log grows by an eighth
// at a time rather than doubling: a million events are held in logs, and
// append's doubling would leave a third of their memory unused on average.
func (l *caseLog) append(e domain.Event) {
	if need := len(e.Payload) + len(e.Actor.Professional) + len(e.Actor.Institution) + len(e.Type) + len(e.Category) + 128; cap(l.b)-len(l.b) < need {
		grown := make([]byte, len(l.b), len(l.b)+need+len(l.b)/8)
		copy(grown, l.b)
		l.b = grown
	}
	b := l.b
	b = binary.AppendUvarint(b, e.Sequence)
	b = binary.AppendUvarint(b, uint64(e.Position))
	b = appendInstant(b, e.RecordedAt)
	b = appendInstant(b, e.OccurredAt)
	code := typeCode(e.Type)
	b = append(b, code)
	if code == 0 {
		b = appendStr(b, string(e.Type))
	}
	b = binary.AppendVarint(b, int64(e.SchemaVersion))
	code = categoryCode(e.Category)
	b = append(b, code)
	if code == 0 {
		b = appendStr(b, string(e.Category))
	}
	b = appendStr(b, string(e.Actor.Institution))
	b = appendStr(b, e.Actor.Professional)
	if e.Actor.FamilyMember == (domain.PersonID{}) {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = append(b, e.Actor.FamilyMember[:]...)
	}
	b = append(b, e.ID[:]...)
	b = appendBytes(b, e.Payload)
	l.b = b
	l.n++
}

var errCorruptLog = errors.New("corrupt case log")

// logReader decodes a case log; the first error sticks.
type logReader struct {
	b     []byte
	err   error
	zones *zoneCache
}

func (r *logReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorruptLog
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *logReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorruptLog
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *logReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errCorruptLog
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *logReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errCorruptLog
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *logReader) fixed(dst []byte) {
	if r.err != nil || len(r.b) < len(dst) {
		r.err = errCorruptLog
		return
	}
	copy(dst, r.b)
	r.b = r.b[len(dst):]
}

// next decodes the next event. Its payload shares the log's bytes: it must
// not be modified.
func (r *logReader) next() (domain.Event, error) {
	e, _, err := r.nextOf(nil)
	return e, err
}

// nextOf decodes the next event when its type is in types (any type when
// types is nil), and otherwise only steps over it (ok false), allocating
// nothing.
func (r *logReader) nextOf(types map[domain.EventType]bool) (e domain.Event, ok bool, err error) {
	e.Sequence = r.uvarint()
	e.Position = domain.Position(r.uvarint())
	recorded, recordedOffset, occurred, occurredOffset := r.varint(), r.varint(), r.varint(), r.varint()
	if code := r.byte(); code == 0 {
		e.Type = domain.EventType(r.bytes())
	} else if int(code) <= len(eventTypes) {
		e.Type = eventTypes[code-1]
	} else {
		r.err = errCorruptLog
	}
	ok = types == nil || types[e.Type]
	e.SchemaVersion = int(r.varint())
	if code := r.byte(); code == 0 {
		e.Category = domain.Category(r.bytes())
	} else if int(code) <= len(domain.Categories) {
		e.Category = domain.Categories[code-1]
	} else {
		r.err = errCorruptLog
	}
	institution, professional := r.bytes(), r.bytes()
	if r.byte() == 1 {
		r.fixed(e.Actor.FamilyMember[:])
	}
	r.fixed(e.ID[:])
	payload := r.bytes()
	if r.err != nil {
		return domain.Event{}, false, r.err
	}
	if !ok {
		return domain.Event{}, false, nil
	}
	e.RecordedAt = time.Unix(0, recorded).In(r.zones.zone(int(recordedOffset)))
	e.OccurredAt = time.Unix(0, occurred).In(r.zones.zone(int(occurredOffset)))
	e.Actor.Institution, e.Actor.Professional = domain.InstitutionID(institution), string(professional)
	if len(payload) > 0 {
		e.Payload = payload
	}
	return e, true, nil
}

// events decodes the log's events of the given types (all when types is
// nil).
func (l *caseLog) events(id domain.CaseID, zones *zoneCache, types map[domain.EventType]bool) ([]domain.Event, error) {
	n := l.n
	if types != nil {
		n = 0
	}
	out := make([]domain.Event, 0, n)
	r := &logReader{b: l.b, zones: zones}
	for i := 1; len(r.b) > 0; i++ {
		e, ok, err := r.nextOf(types)
		if err != nil {
			return nil, fmt.Errorf("case %s, event %d of its log: %w", id, i, err)
		}
		if ok {
			e.CaseID = id
			out = append(out, e)
		}
	}
	return out, nil
}

// zoneCache shares one *time.Location per zone offset, so that decoded times
// do not each allocate their own.
type zoneCache struct {
	mu    sync.Mutex
	zones map[int]*time.Location
}

func (z *zoneCache) zone(offset int) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.zones == nil {
		z.zones = map[int]*time.Location{}
	}
	loc, ok := z.zones[offset]
	if !ok {
		loc = time.FixedZone("", offset)
		z.zones[offset] = loc
	}
	return loc
}
