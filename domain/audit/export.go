package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

// ExportFormat names the export format, in its first line.
const ExportFormat = "maillage-export/v1"

// ExportLine is one line of an export: exactly one member is set. The first
// line is the Header; then every event of the case in sequence order (with
// its salt and hash fields, its personal-data fields opened or erased in
// payload and the stored payload in sealedPayload, so that each leaf hash
// can be recomputed); then the latest signed head when there is one; then
// the erasure record when the case was erased.
type ExportLine struct {
	Header     *ExportHeader     `json:"export,omitempty"`
	Event      *domain.Event     `json:"event,omitempty"`
	SignedHead *SignedHead       `json:"signedHead,omitempty"`
	Erasure    *personal.Erasure `json:"erasure,omitempty"`
}

// ExportHeader describes an export.
type ExportHeader struct {
	Format     string        `json:"format"`
	CaseID     domain.CaseID `json:"caseId"`
	ExportedAt time.Time     `json:"exportedAt"`
	Version    uint64        `json:"version"` // the case's version: how many events follow
	Head       domain.Hash   `json:"head"`    // the chain hash at Version
}

// WriteExport writes a case's export as JSON lines. head and erasure may be
// nil.
func WriteExport(w io.Writer, id domain.CaseID, events []domain.Event, head *SignedHead, erasure *personal.Erasure, now time.Time) error {
	hdr := ExportHeader{Format: ExportFormat, CaseID: id, ExportedAt: now.UTC(), Head: domain.Genesis(id)}
	if n := len(events); n > 0 {
		hdr.Version, hdr.Head = events[n-1].Sequence, events[n-1].ChainHash
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(ExportLine{Header: &hdr}); err != nil {
		return err
	}
	for i := range events {
		e := events[i]
		if err := enc.Encode(ExportLine{Event: &e}); err != nil {
			return err
		}
	}
	if head != nil {
		if err := enc.Encode(ExportLine{SignedHead: head}); err != nil {
			return err
		}
	}
	if erasure != nil {
		if err := enc.Encode(ExportLine{Erasure: erasure}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Export is an export as read back.
type Export struct {
	Header      ExportHeader
	Events      []domain.Event
	SignedHeads []SignedHead
	Erasure     *personal.Erasure
}

// ErrBadExport: the file is not an export this code reads.
var ErrBadExport = errors.New("not a maillage export")

// ReadExport reads an export written by WriteExport.
func ReadExport(r io.Reader) (Export, error) {
	var x Export
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		var line ExportLine
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&line); err != nil {
			return Export{}, fmt.Errorf("%w: line %d: %w", ErrBadExport, n, err)
		}
		switch {
		case n == 1:
			if line.Header == nil || line.Header.Format != ExportFormat {
				return Export{}, fmt.Errorf("%w: line 1 is not a %s header", ErrBadExport, ExportFormat)
			}
			x.Header = *line.Header
		case line.Event != nil:
			x.Events = append(x.Events, *line.Event)
		case line.SignedHead != nil:
			x.SignedHeads = append(x.SignedHeads, *line.SignedHead)
		case line.Erasure != nil:
			x.Erasure = line.Erasure
		default:
			return Export{}, fmt.Errorf("%w: line %d holds nothing known", ErrBadExport, n)
		}
	}
	if err := sc.Err(); err != nil {
		return Export{}, err
	}
	if n == 0 {
		return Export{}, fmt.Errorf("%w: empty", ErrBadExport)
	}
	return x, nil
}

// VerifyExport checks an export offline with the same code as the store's
// verification: every event's leaf and chain, the header's version and
// head, and, with pub, the signed heads' signatures and that the chain goes
// through them (keys: the server's signing keys, each head checked with
// the one it names). A break is reported in the Report; a signed head that
// does not verify, or an export for another case, is an error.
func VerifyExport(x Export, keys Keys) (Report, error) {
	var heads []SignedHead
	if len(keys) > 0 {
		for _, h := range x.SignedHeads {
			if h.CaseID != x.Header.CaseID {
				return Report{}, fmt.Errorf("%w: signed head of case %s in the export of %s", ErrBadExport, h.CaseID, x.Header.CaseID)
			}
			if err := keys.VerifyHead(h); err != nil {
				return Report{}, err
			}
		}
		heads = x.SignedHeads
	}
	v := NewVerifier(heads)
	var last *domain.Event
	for i := range x.Events {
		e := x.Events[i]
		if e.CaseID != x.Header.CaseID {
			return Report{}, fmt.Errorf("%w: event of case %s in the export of %s", ErrBadExport, e.CaseID, x.Header.CaseID)
		}
		v.Add(e)
		last = &x.Events[i]
	}
	rep := v.Finish()
	if rep.OK() {
		version, head := uint64(0), domain.Genesis(x.Header.CaseID)
		if last != nil {
			version, head = last.Sequence, last.ChainHash
		}
		if version != x.Header.Version || head != x.Header.Head {
			rep.Breaks = append(rep.Breaks, Break{CaseID: x.Header.CaseID, Sequence: version + 1, Field: BreakSequence,
				Expected: fmt.Sprintf("version %d (%s)", x.Header.Version, x.Header.Head), Found: fmt.Sprintf("version %d (%s)", version, head)})
		}
	}
	if rep.Cases == 0 && len(x.Events) == 0 {
		rep.Cases = 1
	}
	return rep, nil
}
