// Package audit is what inspectors, data-protection officers and judges use
// to check a case history: chain verification over any number of cases
// (Verifier), signed chain heads (SignedHead), the state and each viewer's
// view of a case as of a past date (ReplayAsOf), a case's export as JSON
// lines (WriteExport, VerifyExport), and what the access log may show to
// whom (ForFamily, ByOtherInstitutions). It is pure: the standard library,
// uuid and the domain. docs/audit.md describes its use.
package audit

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/maillage/maillage/domain"
)

// Fields a Break names.
const (
	BreakSequence   = "sequence"   // an event is missing, repeated or out of order
	BreakLeaf       = "leafHash"   // an event's content does not hash to its leaf
	BreakChain      = "chainHash"  // an event's chain hash does not follow
	BreakSignedHead = "signedHead" // the chain differs from a signed head
)

// Break is the first broken link of a case's chain.
type Break struct {
	CaseID domain.CaseID `json:"caseId"`
	// Sequence is the link that does not hold: the sequence expected there
	// (for a missing event, the one missing), or the version of the signed
	// head the chain contradicts.
	Sequence uint64 `json:"sequence"`
	Field    string `json:"field"`
	Expected string `json:"expected"`
	Found    string `json:"found"`
	// Position is where the offending event is stored (0 when the break is
	// an absence).
	Position domain.Position `json:"position,omitempty"`
}

func (b Break) Error() string {
	return fmt.Sprintf("case %s: link %d: %s expected %s, found %s", b.CaseID, b.Sequence, b.Field, b.Expected, b.Found)
}

// Report is the outcome of a verification.
type Report struct {
	Cases  int `json:"cases"`
	Events int `json:"events"`
	// SignedHeads is how many signed heads were compared with the chains.
	SignedHeads int `json:"signedHeads"`
	// Breaks holds the first break of each broken case, in the order they
	// were found.
	Breaks []Break `json:"breaks"`
}

// OK reports whether nothing is broken.
func (r Report) OK() bool { return len(r.Breaks) == 0 }

// Verifier checks the hash chains of any number of cases from their events
// in the order the store holds them (a case's events must come in sequence
// order, other cases' events in between). It stops checking a case at its
// first break. Not safe for concurrent use.
type Verifier struct {
	cases  map[domain.CaseID]*caseCheck
	heads  map[domain.CaseID][]SignedHead
	report Report
	done   bool
}

type caseCheck struct {
	chain  *domain.ChainVerifier
	heads  []SignedHead // signed heads of the case not yet reached, by version
	broken bool
}

// NewVerifier returns a verifier. heads are signed heads whose signatures
// were checked (see SignedHead.Verify): each case's chain must go through
// each of them, and reach the highest one.
func NewVerifier(heads []SignedHead) *Verifier {
	v := &Verifier{cases: map[domain.CaseID]*caseCheck{}, heads: map[domain.CaseID][]SignedHead{}, report: Report{Breaks: []Break{}}}
	for _, h := range heads {
		v.heads[h.CaseID] = append(v.heads[h.CaseID], h)
	}
	for id, hs := range v.heads {
		slices.SortFunc(hs, func(a, b SignedHead) int { return cmp.Compare(a.Version, b.Version) })
		v.heads[id] = hs
	}
	return v
}

// Add checks the next event of its case and reports the case's first break
// when this event is it.
func (v *Verifier) Add(e domain.Event) *Break {
	c, ok := v.cases[e.CaseID]
	if !ok {
		c = &caseCheck{chain: domain.NewChainVerifier(e.CaseID), heads: v.heads[e.CaseID]}
		v.cases[e.CaseID] = c
		v.report.Cases++
	}
	v.report.Events++
	if c.broken {
		return nil
	}
	link := c.chain.Last + 1
	var err error
	if e.Sequence != link {
		err = &domain.ChainBreak{Field: BreakSequence, Expected: strconv.FormatUint(link, 10), Found: strconv.FormatUint(e.Sequence, 10)}
	} else {
		err = c.chain.Event(e)
	}
	if err != nil {
		cb := err.(*domain.ChainBreak)
		return v.broke(c, Break{CaseID: e.CaseID, Sequence: link, Field: cb.Field, Expected: cb.Expected, Found: cb.Found, Position: e.Position})
	}
	for len(c.heads) > 0 && c.heads[0].Version <= link {
		h := c.heads[0]
		c.heads = c.heads[1:]
		if h.Version < link {
			continue // cannot happen: heads are reached in order
		}
		v.report.SignedHeads++
		if h.ChainHash != e.ChainHash {
			return v.broke(c, Break{CaseID: e.CaseID, Sequence: link, Field: BreakSignedHead, Expected: h.ChainHash.String(), Found: e.ChainHash.String(), Position: e.Position})
		}
	}
	return nil
}

func (v *Verifier) broke(c *caseCheck, b Break) *Break {
	c.broken = true
	v.report.Breaks = append(v.report.Breaks, b)
	return &v.report.Breaks[len(v.report.Breaks)-1]
}

// Finish reports the cases whose chain stops before a signed head (events
// removed from the end, or the whole case), and returns the report.
func (v *Verifier) Finish() Report {
	if v.done {
		return v.report
	}
	v.done = true
	for _, id := range slices.SortedFunc(maps.Keys(v.heads), func(a, b domain.CaseID) int { return cmp.Compare(a.String(), b.String()) }) {
		c, ok := v.cases[id]
		var last uint64
		pending := v.heads[id]
		if ok {
			if c.broken {
				continue
			}
			last, pending = c.chain.Last, c.heads
		}
		if len(pending) == 0 {
			continue
		}
		h := pending[len(pending)-1]
		v.report.SignedHeads++
		v.report.Breaks = append(v.report.Breaks, Break{CaseID: id, Sequence: last + 1, Field: BreakSignedHead,
			Expected: fmt.Sprintf("version %d (%s)", h.Version, h.ChainHash), Found: fmt.Sprintf("version %d", last)})
		if ok {
			c.broken = true
		}
	}
	return v.report
}

// Report returns the report so far.
func (v *Verifier) Report() Report { return v.report }
