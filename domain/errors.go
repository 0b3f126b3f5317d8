package domain

import (
	"errors"
	"fmt"
)

// Error codes: what kind of failure an error is, independent of transport.
// adapters/http alone maps them to HTTP statuses.
const (
	EInvalid   = "invalid"   // bad input: a field is missing or wrong
	ERefused   = "refused"   // a rule of the case forbids the command (docs/domain.md, "Rules a command must keep")
	ENotFound  = "not_found" // no such case, or not one the caller may know of
	EForbidden = "forbidden" // the caller's role may not do this at all
	EConflict  = "conflict"  // the case moved on since the caller read it
)

// Error is a domain failure that people can act on: the code says what kind,
// Rule names the broken rule (a stable identifier, e.g. "coordinator_only"),
// Field names the bad input field when there is one (JSON path, e.g.
// "payload.until"), and Message says it in French, in words a professional
// understands.
type Error struct {
	Code    string
	Rule    string
	Field   string
	Message string
	// Basis, when set, is the sequence of the event the refusal rests on (the
	// order of the judge that forbids it): TellRefusal hides the reason
	// from a requester whose timeline hides that event.
	Basis uint64 `json:"-"`
	// Withheld is the refusal as decided, when the requester is told a
	// neutral one (TellRefusal): for the audit trail, never for the
	// requester.
	Withheld *Error `json:"-"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s): %s", e.Code, e.Rule, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s: %s", e.Code, e.Rule, e.Message)
}

// Refuse returns a refusal naming the rule, with a French message.
func Refuse(rule, format string, args ...any) *Error {
	return &Error{Code: ERefused, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an input error naming the field, with a French message.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Rule: "invalid_field", Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of a domain *Error in err's chain, or "" if
// there is none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
