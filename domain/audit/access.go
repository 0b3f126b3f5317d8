package audit

import (
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// AccessFilter selects records of the access log.
type AccessFilter struct {
	CaseID      domain.CaseID        // uuid.Nil: every case
	Institution domain.InstitutionID // "": every reader
	From        time.Time            // inclusive; zero: from the start
	To          time.Time            // exclusive; zero: until now
	// Limit keeps the newest Limit records (0: DefaultAccessLimit).
	Limit int
}

// DefaultAccessLimit bounds an access query without a limit.
const DefaultAccessLimit = 1000

// Match reports whether a record is selected by the filter (Limit aside).
func (f AccessFilter) Match(r domain.AccessRecord) bool {
	switch {
	case f.CaseID != uuid.Nil && r.CaseID != f.CaseID:
		return false
	case f.Institution != "" && r.Institution != f.Institution:
		return false
	case !f.From.IsZero() && r.At.Before(f.From):
		return false
	case !f.To.IsZero() && !r.At.Before(f.To):
		return false
	}
	return true
}

// revealingFields are the fields of the event that brought an institution
// into a case that name it: when the policy removes one of them for a family
// member, that member must not learn of the institution from its reads
// either.
var revealingFields = []string{"institution", "name", "coordinator", "coordinatorName", "payload"}

// ForFamily returns the access records of a case that family member p may
// be shown ("who read my child's case"), given the case's state and events
// now, and the order that limits what they are told when one does:
//   - while a family_information_limited order naming them is in force, none
//     (the order is returned): reads tell of the case's activity, which the
//     order withholds;
//   - reads by an institution only when the policy lets them see, unredacted,
//     the event that brought it into the case: not an institution the
//     family is not informed of (family_not_informed), nor the child's place
//     of life kept secret from them (placement_address_secret);
//   - reads by auditors, without who they were;
//   - their own reads, not those of other family members;
//   - never the purpose given, nor the professional's identity.
func ForFamily(st *domain.State, events []domain.Event, p domain.PersonID, records []domain.AccessRecord, now time.Time) ([]domain.AccessRecord, *domain.Restriction) {
	for _, r := range sortedRestrictions(st) {
		if r.Kind == domain.FamilyInformationLimited && r.NamesFamilyMember(p) && r.ActiveAt(now) {
			return []domain.AccessRecord{}, r
		}
	}
	viewer := domain.Viewer{Role: domain.RoleFamily, FamilyMember: p}
	known := map[domain.InstitutionID]bool{}
	mayKnow := func(inst domain.InstitutionID) bool {
		if ok, seen := known[inst]; seen {
			return ok
		}
		ok := false
		if m, isMember := st.Members[inst]; isMember && m.JoinedSeq >= 1 && m.JoinedSeq <= uint64(len(events)) {
			d := domain.See(st, viewer, events[m.JoinedSeq-1], now)
			ok = d.Visibility == domain.Full ||
				(d.Visibility == domain.Redacted && !slices.ContainsFunc(d.Fields, func(f string) bool { return slices.Contains(revealingFields, f) }))
		}
		known[inst] = ok
		return ok
	}
	out := []domain.AccessRecord{}
	for _, r := range records {
		switch {
		case r.Role == domain.RoleAuditor:
		case r.Role == domain.RoleFamily && r.FamilyMember == p:
		case r.Role == domain.RoleProfessional && mayKnow(r.Institution):
		default:
			continue
		}
		r.Principal, r.Purpose = uuid.Nil, ""
		out = append(out, r)
	}
	return out, nil
}

// ByOtherInstitutions returns the reads of a case by professionals of
// institutions other than inst (the coordinator's view of who read the
// case).
func ByOtherInstitutions(inst domain.InstitutionID, records []domain.AccessRecord) []domain.AccessRecord {
	out := []domain.AccessRecord{}
	for _, r := range records {
		if r.Role == domain.RoleProfessional && r.Institution != inst {
			out = append(out, r)
		}
	}
	return out
}
