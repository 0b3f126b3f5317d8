package projections

import (
	"encoding/binary"
	"time"

	"github.com/maillage/maillage/domain"
)

// A case's summary is what the reads across cases need of it without its
// access state: the observatory facts and the institutions that are current
// members (the membership index). The snapshot holds one per case, so that a
// restart restores those indexes without folding any case again; a case's
// access state is folded from its log the first time it is read (warm).
//
//	departement                                  string
//	opened, openedOn, closed, firstSynthesis     byte 0 (zero time), or 1 then an instant
//	daysToSynthesis                              varint
//	ruptures, crises                             uvarint count, then instants
//	sharedChanges                                uvarint count, then an instant and a byte (1: shared)
//	members                                      uvarint count, then strings
//
// where an instant is varint Unix nanoseconds then varint zone offset, as in
// the case log.

func appendMaybeInstant(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return appendInstant(append(b, 1), t)
}

func appendSummary(b []byte, f *caseFacts, members []domain.InstitutionID) []byte {
	b = appendStr(b, f.departement)
	for _, t := range []time.Time{f.opened, f.openedOn, f.closed, f.firstSynthesis} {
		b = appendMaybeInstant(b, t)
	}
	b = binary.AppendVarint(b, int64(f.daysToSynthesis))
	for _, ts := range [][]time.Time{f.ruptures, f.crises} {
		b = binary.AppendUvarint(b, uint64(len(ts)))
		for _, t := range ts {
			b = appendInstant(b, t)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(f.sharedChanges)))
	for _, s := range f.sharedChanges {
		b = appendInstant(b, s.at)
		if s.shared {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(members)))
	for _, inst := range members {
		b = appendStr(b, string(inst))
	}
	return b
}

func (r *logReader) instant() time.Time {
	ns, offset := r.varint(), r.varint()
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns).In(r.zones.zone(int(offset)))
}

func (r *logReader) maybeInstant() time.Time {
	if r.byte() == 0 {
		return time.Time{}
	}
	return r.instant()
}

// count reads a count of items of at least min bytes each, refusing one the
// rest of the bytes cannot hold.
func (r *logReader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.err = errCorruptLog
	}
	return int(n)
}

// readSummary decodes a summary.
func readSummary(b []byte, zones *zoneCache) (caseFacts, []domain.InstitutionID, error) {
	r := &logReader{b: b, zones: zones}
	var f caseFacts
	f.departement = string(r.bytes())
	f.opened, f.openedOn, f.closed, f.firstSynthesis = r.maybeInstant(), r.maybeInstant(), r.maybeInstant(), r.maybeInstant()
	f.daysToSynthesis = int(r.varint())
	for _, ts := range []*[]time.Time{&f.ruptures, &f.crises} {
		if n := r.count(2); n > 0 {
			*ts = make([]time.Time, n)
			for i := range *ts {
				(*ts)[i] = r.instant()
			}
		}
	}
	if n := r.count(3); n > 0 {
		f.sharedChanges = make([]sharedChange, n)
		for i := range f.sharedChanges {
			f.sharedChanges[i] = sharedChange{at: r.instant(), shared: r.byte() == 1}
		}
	}
	var members []domain.InstitutionID
	if n := r.count(1); n > 0 {
		members = make([]domain.InstitutionID, n)
		for i := range members {
			members[i] = domain.InstitutionID(r.bytes())
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = errCorruptLog
	}
	if r.err != nil {
		return caseFacts{}, nil, r.err
	}
	return f, members, nil
}
