package domain

import "time"

// The dates a case may hold: every date field (an event's occurredAt, the
// dates of payloads, the dates reads are asked about) lies within
// [MinDate, MaxDate]. The read models keep times as nanoseconds since 1970
// in an int64, which holds years 1678 to 2262 only: a date outside them
// would come back as another date. The range is narrower still, and round,
// so that it is easy to document and to check.
var (
	MinDate = time.Date(1900, time.January, 1, 0, 0, 0, 0, time.UTC)
	MaxDate = time.Date(2200, time.December, 31, 23, 59, 59, 999_999_999, time.UTC)
)

// RuleDateOutOfRange names the refusal of a date outside [MinDate, MaxDate].
const RuleDateOutOfRange = "date_out_of_range"

// CheckDate refuses a date outside [MinDate, MaxDate], naming field. The
// zero time (year 1) is outside too: callers that take it for "not given"
// check that before.
func CheckDate(field string, t time.Time) error {
	if t.Before(MinDate) || t.After(MaxDate) {
		return &Error{Code: EInvalid, Rule: RuleDateOutOfRange, Field: field,
			Message: "la date doit être comprise entre le 1er janvier 1900 et le 31 décembre 2200 (UTC)"}
	}
	return nil
}
