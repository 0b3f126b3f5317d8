package domain

import (
	"errors"
	"time"
)

// The rules of this file decide what a viewer may learn of a case on every
// path out of the system beside the events themselves (See decides those):
// whether the case exists for them, which version they may know of, which
// reads and actions their role allows, which policy date a read as of a past
// date uses, and what a refusal may tell them (docs/domain.md, "Every path
// out of the system"). Adapters, read models and the web view only call
// them.

// ErrNotFound: no such case, or one the caller may not know of. Both are
// answered the same, so that nobody learns a case exists.
var ErrNotFound = errors.New("case not found")

// MayKnow reports whether viewer v may know the case exists: auditors,
// current and former members, and recorded family members. Everyone else is
// answered as if the case did not exist (ErrNotFound).
func MayKnow(s *State, v Viewer) bool {
	if !s.Opened {
		return false
	}
	switch v.Role {
	case RoleAuditor:
		return true
	case RoleProfessional:
		_, ok := s.Members[v.Institution]
		return ok && v.Institution != ""
	case RoleFamily:
		_, ok := s.Family[v.FamilyMember]
		return ok
	}
	return false
}

// KnownVersion is the last sequence of the case viewer v may know of: the
// case's version, except for a former member, who knows the case up to its
// leaving and nothing after it, not even that it moved (no stub, version,
// ETag or head beyond). 0 for a viewer who may not know the case.
func KnownVersion(s *State, v Viewer) uint64 {
	if !MayKnow(s, v) {
		return 0
	}
	if v.Role == RoleProfessional {
		if m := s.Members[v.Institution]; !m.Active() {
			return m.LeftSeq
		}
	}
	return s.Version
}

// CurrentMembersOnly lets auditors and current members through and refuses
// everyone else who may know the case (family members and former members),
// naming the rule and what they may read instead. Callers check MayKnow
// first.
func CurrentMembersOnly(s *State, v Viewer, rule, message string) error {
	if v.Role == RoleAuditor || v.Role == RoleProfessional && s.IsMember(v.Institution) {
		return nil
	}
	return &Error{Code: EForbidden, Rule: rule, Message: message}
}

// AuditorOnly refuses every role but auditors (the full export, the access
// log of the territory, the history as it was on a past date).
func AuditorOnly(v Viewer, rule, message string) error {
	if v.Role == RoleAuditor {
		return nil
	}
	return &Error{Code: EForbidden, Rule: rule, Message: message}
}

// MayErase lets auditors and administrators destroy a case's personal data
// key (the legal retention ended); everyone else is refused.
func MayErase(v Viewer) error {
	if v.Role == RoleAuditor || v.Role == RoleAdmin {
		return nil
	}
	return &Error{Code: EForbidden, Rule: "erase_auditor_or_admin",
		Message: "l'effacement des données personnelles d'un dossier est réservé aux auditeurs et à l'administration"}
}

// MayReadObservatory lets professionals, auditors and administrators read
// the territory's observatory; the family is refused.
func MayReadObservatory(v Viewer) error {
	if v.Role == RoleFamily {
		return &Error{Code: EForbidden, Rule: "observatory_professionals_only",
			Message: "l'observatoire est destiné aux professionnels et aux autorités du territoire"}
	}
	return nil
}

// ProfessionalsOnly refuses every role but professionals of an institution
// (an institution's tray of deadlines, its list of cases).
func ProfessionalsOnly(v Viewer, rule, message string) error {
	if v.Role == RoleProfessional && v.Institution != "" {
		return nil
	}
	return &Error{Code: EForbidden, Rule: rule, Message: message}
}

// OwnInstitution reports whether inst is the viewer's own institution: what
// an institution is a member of (its cases in the directory) is told to its
// professionals only.
func OwnInstitution(v Viewer, inst InstitutionID) bool {
	return ProfessionalsOnly(v, "", "") == nil && v.Institution == inst
}

// AccessListReader says whose reads of the case viewer v may see in the
// access list (who read the case): all of them for an auditor; the reads by
// other institutions for the coordinator; the reads the family may know of
// for a family member (audit.ForFamily). Other members are refused.
type AccessListReader int

// Access list readers.
const (
	AccessListAuditor AccessListReader = iota + 1
	AccessListCoordinator
	AccessListFamily
)

// AccessListOf decides which access list viewer v may read on the case;
// callers check MayKnow first.
func AccessListOf(s *State, v Viewer) (AccessListReader, error) {
	switch {
	case v.Role == RoleAuditor:
		return AccessListAuditor, nil
	case v.Role == RoleFamily:
		return AccessListFamily, nil
	case v.Role == RoleProfessional && s.Coordinator == v.Institution && s.IsMember(v.Institution):
		return AccessListCoordinator, nil
	}
	return 0, &Error{Code: EForbidden, Rule: "access_list_coordinator_only",
		Message: "la liste des consultations du dossier est réservée à la coordination, à la famille et aux auditeurs"}
}

// PolicyAt returns the access-state time and the policy date of a read by v
// as of asOf (zero: now): for an auditor, the state and date asOf itself
// ("who could see what on that date, and why"); for everyone else, now,
// whatever asOf: the history up to asOf is shown as the policy lets the
// viewer see it now, so a consent withdrawn since, an order imposed since or
// an exclusion in force now apply (historical reports false).
func PolicyAt(v Viewer, asOf, now time.Time) (at time.Time, historical bool) {
	if v.Role == RoleAuditor && !asOf.IsZero() && asOf.Before(now) {
		return asOf, true
	}
	return now, false
}

// Withheld refusal: what a requester is told when the reason for a refusal
// is an order or a member hidden from them.
const (
	RuleUndisclosedDecision = "undisclosed_decision"
	undisclosedMessage      = "refusé en raison d'une décision qui ne vous est pas communiquée ; contactez le coordinateur du dossier"
)

// TellRefusal returns refusal err as viewer v may be told it on the case
// whose state is s and events are events, at now. A refusal resting on an
// event the viewer's timeline hides (Error.Basis: an order of the judge, a
// member) becomes the one neutral refusal RuleUndisclosedDecision, the same
// whatever the order, with no field and the original kept in Withheld for
// the audit trail; any other refusal is told as it is.
func TellRefusal(s *State, events []Event, v Viewer, now time.Time, err *Error) *Error {
	if err == nil || err.Basis == 0 {
		return err
	}
	if err.Basis <= uint64(len(events)) {
		sight := SightOf(s, v, now)
		if sight.See(events[err.Basis-1]).Visibility != Hidden {
			return err
		}
	}
	return &Error{Code: ERefused, Rule: RuleUndisclosedDecision, Message: undisclosedMessage, Withheld: err}
}
