package projections

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/maillage/maillage/domain"
)

// Chronology is the multi-agency chronology of a case as one viewer may see
// it: its significant events in the form professionals use, in business
// date order, with what happened in plain words.
type Chronology struct {
	CaseID         domain.CaseID     `json:"caseId"`
	Version        uint64            `json:"version"`
	AsOf           *time.Time        `json:"asOf,omitempty"`
	ChildReference string            `json:"childReference,omitempty"`
	Entries        []ChronologyEntry `json:"entries"`
}

// ChronologyEntry is one event of the chronology.
type ChronologyEntry struct {
	// Date is the business day (occurred-at) in the event's own time zone,
	// only its month ("2024-03") or year ("2024") when that is all that is
	// known (DateCertainty); Rank orders the entries of one date (1, 2, ...)
	// by their sequence. A date known to the month comes before the days of
	// that month.
	Date string `json:"date"`
	// DateCertainty is "month", "year" or "approximate" for an event
	// recorded after the fact whose date is uncertain; absent when known.
	DateCertainty domain.DateCertainty `json:"dateCertainty,omitempty"`
	Rank          int                  `json:"rank"`
	OccurredAt    time.Time            `json:"occurredAt"`
	Sequence      uint64               `json:"sequence"`
	// Period is the span an event concerns (an intervention, a consent, an
	// order), when it has one.
	Period   *Period          `json:"period,omitempty"`
	Type     domain.EventType `json:"type"`
	Category domain.Category  `json:"category"`
	// Source is the institution that recorded the event; SourceFamily the
	// family member who did (a consent given or withdrawn in their name).
	Source       *InstitutionRef `json:"source,omitempty"`
	SourceFamily string          `json:"sourceFamily,omitempty"`
	// What happened, in plain French.
	What string `json:"what"`
	// Impact is "positive" or "negative" when it was recorded.
	Impact         string   `json:"impact,omitempty"`
	ActionTaken    string   `json:"actionTaken,omitempty"`
	RedactedFields []string `json:"redactedFields,omitempty"`
	// Known is false for an event of a type or schema version this server
	// does not know: it is listed, with its type, not dropped.
	Known bool `json:"known"`
}

// Period is a span of time; Until is absent when open-ended.
type Period struct {
	From  time.Time  `json:"from"`
	Until *time.Time `json:"until,omitempty"`
}

func (m *models) chronology(ctx context.Context, id domain.CaseID, v domain.Viewer, now, asOf time.Time) (Chronology, error) {
	var out Chronology
	err := m.read(ctx, id, v, now, asOf, nil, func(h *history) error {
		out = foldChronology(h, v)
		return nil
	})
	return out, err
}

func foldChronology(h *history, v domain.Viewer) Chronology {
	c := Chronology{CaseID: h.id, Version: h.version, Entries: []ChronologyEntry{}}
	if h.asOf {
		c.AsOf = timePtr(h.at)
	}
	n := newNames()
	d := describer{names: n, labels: map[string]string{}}
	h.visible(v, func(e domain.Event, dec domain.Decision) {
		p := decode(e)
		n.learn(p)
		d.learn(p)
		if op, ok := p.(*domain.CaseOpenedPayload); ok {
			c.ChildReference = op.ChildReference
		}
		entry := ChronologyEntry{Date: e.OccurredAt.Format(time.DateOnly), OccurredAt: e.OccurredAt, Sequence: e.Sequence,
			Type: e.Type, Category: e.Category, RedactedFields: redactedFields(dec), Known: e.Known()}
		if e.Actor.Institution != "" {
			entry.Source = &InstitutionRef{Institution: e.Actor.Institution, Name: n.institution(e.Actor.Institution), Kind: n.kinds[e.Actor.Institution]}
		}
		if e.Actor.FamilyMember != (domain.PersonID{}) {
			entry.SourceFamily = n.person(e.Actor.FamilyMember)
		}
		entry.What, entry.Impact, entry.ActionTaken, entry.Period = d.describe(e, p)
		if u, ok := p.(interface{ Uncertainty() domain.UncertainDate }); ok {
			uncertain(&entry, e, u.Uncertainty())
		}
		c.Entries = append(c.Entries, entry)
	})
	slices.SortStableFunc(c.Entries, func(a, b ChronologyEntry) int {
		return cmp.Or(cmp.Compare(a.Date, b.Date), cmp.Compare(a.Sequence, b.Sequence))
	})
	for i := range c.Entries {
		c.Entries[i].Rank = 1
		if i > 0 && c.Entries[i-1].Date == c.Entries[i].Date {
			c.Entries[i].Rank = c.Entries[i-1].Rank + 1
		}
	}
	return c
}

// uncertain gives an entry the date as precisely as it is known, and the
// span it happened within, and says so in words.
func uncertain(entry *ChronologyEntry, e domain.Event, u domain.UncertainDate) {
	entry.DateCertainty = u.DateCertainty
	switch u.DateCertainty {
	case domain.DateMonth:
		entry.Date = e.OccurredAt.Format("2006-01")
		entry.What += " (date connue au mois près)"
	case domain.DateYear:
		entry.Date = e.OccurredAt.Format("2006")
		entry.What += " (date connue à l'année près)"
	case domain.DateApproximate:
		entry.What += " (date approximative)"
	}
	if u.OccurredUntil != nil && entry.Period == nil {
		entry.Period = &Period{From: e.OccurredAt, Until: u.OccurredUntil}
		entry.What += fmt.Sprintf(" (entre le %s et le %s)", e.OccurredAt.Format("02/01/2006"), u.OccurredUntil.Format("02/01/2006"))
	}
}
