package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/maillage/maillage/domain"
)

// TestRuleDateWithinRange: every date a case holds lies between 1900 and
// 2200, bounds included; outside, the date is refused naming its field,
// never replaced.
func TestRuleDateWithinRange(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"first instant", domain.MinDate, true},
		{"last instant", domain.MaxDate, true},
		{"today", time.Date(2026, 3, 5, 18, 0, 0, 0, time.FixedZone("CET", 3600)), true},
		{"1900 in Paris is 1899 in UTC", time.Date(1900, 1, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), false},
		{"just before", domain.MinDate.Add(-time.Nanosecond), false},
		{"just after", domain.MaxDate.Add(time.Nanosecond), false},
		{"zero time", time.Time{}, false},
		{"9999-12-31", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), false},
		{"beyond int64 nanoseconds", time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := domain.CheckDate("occurredAt", tc.at)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EInvalid || de.Rule != domain.RuleDateOutOfRange || de.Field != "occurredAt" {
				t.Fatalf("got %v, want an invalid %s naming occurredAt", err, domain.RuleDateOutOfRange)
			}
		})
	}
}

// TestRuleDateWithinRangePayloads: the payload dates and a command's
// occurredAt obey the same range.
func TestRuleDateWithinRangePayloads(t *testing.T) {
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	p := &domain.ObservationRecordedPayload{Summary: "x", UncertainDate: domain.UncertainDate{OccurredUntil: &far}}
	var de *domain.Error
	if err := p.Validate(); !errors.As(err, &de) || de.Rule != domain.RuleDateOutOfRange || de.Field != "occurredUntil" {
		t.Fatalf("occurredUntil 9999: got %v", err)
	}
}
