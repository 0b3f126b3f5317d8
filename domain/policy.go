package domain

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// See decides what viewer v may see of event e of the case whose access state
// is s, at time now: full, redacted (fields named) or hidden, and which rule
// (and which consent or order) decided. It applies DOMAIN.md's rules in order,
// the first that applies winning:
//
//  1. auditors see everything ("auditor"); admins run the directory and see
//     nothing of cases ("admin_no_case_access");
//  2. an institution that never was a member sees nothing ("not_a_member"),
//     a former member nothing recorded after its PartnerLeft ("left_case"),
//     a person not recorded as family nothing ("not_family"); a current
//     member sees the history from the opening;
//  3. a partner_excluded order naming the institution hides what was
//     recorded while it was in force ("partner_excluded");
//  4. health: care members in full ("health_care_member"), other members
//     while a consent in force now covers them ("health_consent", else
//     "health_needs_consent"), never the family ("health_not_for_family");
//  5. family: under a family_information_limited order only coordination
//     ("family_information_limited"); never a FamilyNotInformed decision
//     nor the membership events of the member it concerns, and with what
//     names that member redacted ("family_not_informed"); judicial events
//     only for orders naming them ("judicial_named", "judicial_not_named");
//     under a placement_address_secret order, with what tells where the
//     child lives redacted, or hidden when unknown ("placement_address_secret");
//  6. the category's default audience ("default_audience").
//
// Events this code does not understand (see Event.Known) are decided by their
// envelope category with the same rules, so nothing unknown leaks health. An
// unknown role or an unknown category is hidden from everyone but auditors
// ("unknown_role", "unknown_category"). When several consents or orders could
// decide, the earliest recorded one is named, so the answer is stable.
func See(s *State, v Viewer, e Event, now time.Time) Decision {
	switch v.Role {
	case RoleAuditor:
		return Decision{Visibility: Full, Rule: "auditor"}
	case RoleAdmin:
		return hide("admin_no_case_access", "")
	case RoleProfessional:
		return seeAsProfessional(s, v.Institution, e, now)
	case RoleFamily:
		return seeAsFamily(s, v.FamilyMember, e, now)
	}
	return hide("unknown_role", "")
}

func seeAsProfessional(s *State, inst InstitutionID, e Event, now time.Time) Decision {
	m, ok := s.Members[inst]
	if !ok || inst == "" {
		return hide("not_a_member", "")
	}
	if m.LeftSeq != 0 && e.Sequence > m.LeftSeq {
		return hide("left_case", "")
	}
	excluded := s.earliestRestriction(func(r *Restriction) bool {
		return r.Kind == PartnerExcluded && r.NamesInstitution(inst) && r.ActiveAt(e.RecordedAt)
	})
	if excluded != nil {
		return hide("partner_excluded", excluded.OrderReference)
	}
	switch {
	case e.Category == CategoryHealth:
		return healthForMember(s, m, now)
	case e.Category == CategoryJudicial || familyAudience(e.Category):
		return show("default_audience", "")
	}
	return hide("unknown_category", "")
}

// healthForMember is rule 4 for a member: care members see health, others
// only while a consent in force now names them (or their kind) and health.
func healthForMember(s *State, m *Member, now time.Time) Decision {
	if m.Kind.Care() {
		return show("health_care_member", "")
	}
	var found *Consent
	for _, c := range s.Consents {
		if c.ActiveAt(now) && c.Covers(m.Institution, m.Kind, CategoryHealth) && (found == nil || c.GivenSeq < found.GivenSeq) {
			found = c
		}
	}
	if found == nil {
		return hide("health_needs_consent", "")
	}
	return show("health_consent", found.ID.String())
}

// seeAsFamily is rules 2, 4, 5 and 6 for a family member, in this order:
//   - health is never shown ("health_not_for_family");
//   - under a family_information_limited order in force now that names them,
//     only coordination is shown ("family_information_limited");
//   - a FamilyNotInformed decision, and the PartnerJoined, ReferentChanged,
//     PartnerLeft and FamilyInformed events about a member the family is
//     currently not informed of, are hidden ("family_not_informed"): a
//     reasoned decision not to tell the family must not be told to it;
//   - judicial events only when the order names them ("judicial_named", else
//     "judicial_not_named");
//   - the rest is shown by category, redacted as redactForFamily says.
func seeAsFamily(s *State, p PersonID, e Event, now time.Time) Decision {
	if _, ok := s.Family[p]; !ok {
		return hide("not_family", "")
	}
	if e.Category == CategoryHealth {
		return hide("health_not_for_family", "")
	}
	limited := s.earliestRestriction(func(r *Restriction) bool {
		return r.Kind == FamilyInformationLimited && r.NamesFamilyMember(p) && r.ActiveAt(now)
	})
	if limited != nil && e.Category != CategoryCoordination {
		return hide("family_information_limited", limited.OrderReference)
	}
	if concealsUninformedMember(s, e) {
		return hide("family_not_informed", "")
	}
	d := show("default_audience", "")
	switch {
	case e.Category == CategoryJudicial:
		names, ref := s.orderNames(e, p)
		if !names {
			return hide("judicial_not_named", "")
		}
		d = show("judicial_named", ref)
	case !familyAudience(e.Category):
		return hide("unknown_category", "")
	}
	return redactForFamily(s, p, e, now, d)
}

// memberFields are the fields of a membership event that name the member.
var memberFields = map[EventType][]string{
	PartnerJoined:   {"institution", "name", "referent"},
	PartnerLeft:     {"institution"},
	ReferentChanged: {"institution", "referent"},
	FamilyInformed:  {"institution"},
}

// concealsUninformedMember reports whether e is a decision not to inform the
// family, or a membership event about a member the family is currently not
// informed of. A membership event whose member cannot be read is concealed
// while any such decision stands (fail closed).
func concealsUninformedMember(s *State, e Event) bool {
	if e.Type == FamilyNotInformed {
		return true
	}
	if _, ok := memberFields[e.Type]; !ok || len(s.NotInformed) == 0 {
		return false
	}
	var about struct {
		Institution InstitutionID `json:"institution"`
	}
	if err := json.Unmarshal(e.Payload, &about); err != nil {
		return true
	}
	_, concealed := s.NotInformed[about.Institution]
	return concealed
}

// orderNames reports whether the judicial event e is about an order that
// names family member p, and the order's reference.
func (s *State) orderNames(e Event, p PersonID) (bool, string) {
	if !e.Known() {
		return false, ""
	}
	payload, err := e.Decode()
	if err != nil {
		return false, ""
	}
	switch pl := payload.(type) {
	case *JudicialRestrictionImposedPayload:
		r := &Restriction{FamilyMembers: pl.FamilyMembers}
		return r.NamesFamilyMember(p), pl.OrderReference
	case *JudicialRestrictionLiftedPayload:
		r, ok := s.Restrictions[pl.Restriction]
		if !ok {
			return false, ""
		}
		return r.NamesFamilyMember(p), r.OrderReference
	}
	return false, ""
}

// redactForFamily removes from what a family member is shown (d) whatever
// would reveal what is kept from them.
//
// Where the child lives, while a placement_address_secret order in force now
// names them ("placement_address_secret", Basis the order reference). The
// order hides the place of life, and the place is told by more than the
// location fields (LocationFields), so this reading removes:
//   - the location fields of the event;
//   - who the place of life is: the envelope "actor" when the actor is a
//     member that can be a place of life (InstitutionKind.PlaceOfLife), and
//     "institution", "name" and "referent" of the PartnerJoined, PartnerLeft,
//     ReferentChanged and FamilyInformed events of such a member (those of
//     these fields the type has: memberFields);
//   - any other payload field, and the actor, that mentions (contains as a
//     substring of one of its strings) a value of the removed location fields
//     or the id or name of such a member, e.g. meeting participants, the
//     institution of an intervention, a reason quoting the address.
//
// Events this code does not understand are hidden instead, since their
// location fields cannot be known.
//
// Who the family is not informed of ("family_not_informed"): the payload
// fields and actor that mention the id or name of an institution in
// State.NotInformed, so that its notes, interventions and meeting attendance
// do not tell what the decision withholds.
//
// When both apply, the rule named is placement_address_secret.
func redactForFamily(s *State, p PersonID, e Event, now time.Time, d Decision) Decision {
	secret := s.earliestRestriction(func(r *Restriction) bool {
		return r.Kind == PlacementAddressSecret && r.NamesFamilyMember(p) && r.ActiveAt(now)
	})
	if secret != nil && !e.Known() {
		return hide("placement_address_secret", secret.OrderReference)
	}
	var fields []string
	if secret != nil {
		fields = placeOfLifeFields(s, e)
	}
	uninformed := mentioning(e, uninformedNeedles(s))
	switch {
	case len(fields) > 0:
		return Decision{Visibility: Redacted, Fields: union(fields, uninformed), Rule: "placement_address_secret", Basis: secret.OrderReference}
	case len(uninformed) > 0:
		return Decision{Visibility: Redacted, Fields: uninformed, Rule: "family_not_informed"}
	}
	return d
}

// placeOfLifeFields lists the fields of e that tell where the child lives.
func placeOfLifeFields(s *State, e Event) []string {
	fields := LocationFields(e.Type)
	needles := memberNeedles(s, func(m *Member) bool { return m.Kind.PlaceOfLife() })
	if len(fields) > 0 {
		members, _ := objectMembers(e.Payload)
		for _, m := range members {
			if containsFold(fields, m.Key) {
				needles = append(needles, jsonStrings(m.Value)...)
			}
		}
	}
	if mf, ok := memberFields[e.Type]; ok {
		var about struct {
			Institution InstitutionID `json:"institution"`
		}
		if json.Unmarshal(e.Payload, &about) == nil {
			if m, ok := s.Members[about.Institution]; ok && m.Kind.PlaceOfLife() {
				fields = union(fields, mf)
			}
		}
	}
	if m, ok := s.Members[e.Actor.Institution]; ok && m.Kind.PlaceOfLife() {
		fields = union(fields, []string{"actor"})
	}
	return union(fields, mentioning(e, needles))
}

// memberNeedles returns the ids and names of the members that match.
func memberNeedles(s *State, match func(*Member) bool) []string {
	var needles []string
	for _, m := range s.Members {
		if match(m) {
			needles = append(needles, string(m.Institution), m.Name)
		}
	}
	return needles
}

// uninformedNeedles returns the ids, and names when members, of the
// institutions the family is currently not informed of.
func uninformedNeedles(s *State) []string {
	var needles []string
	for inst := range s.NotInformed {
		needles = append(needles, string(inst))
		if m, ok := s.Members[inst]; ok {
			needles = append(needles, m.Name)
		}
	}
	return needles
}

// mentioning lists, in payload order, the top-level payload fields whose key
// or strings contain one of the needles, then "actor" when the actor's
// institution or professional does; "payload" when the payload is not a JSON
// object and mentions one (or cannot be read). Empty needles are ignored.
func mentioning(e Event, needles []string) []string {
	needles = nonEmpty(needles)
	byActor := containsAny([]string{string(e.Actor.Institution), e.Actor.Professional}, needles)
	if len(needles) == 0 || (!byActor && json.Valid(e.Payload) && !mentions(e.Payload, needles)) {
		return nil
	}
	var fields []string
	members, ok := objectMembers(e.Payload)
	if !ok && len(e.Payload) > 0 && (!json.Valid(e.Payload) || mentions(e.Payload, needles)) {
		fields = append(fields, "payload")
	}
	for _, m := range members {
		if containsAny([]string{m.Key}, needles) || mentions(m.Value, needles) {
			fields = union(fields, []string{m.Key})
		}
	}
	if byActor {
		fields = union(fields, []string{"actor"})
	}
	return fields
}

// mentions reports whether a string of the JSON value raw contains one of
// the needles. In valid UTF-8 without escapes, decoded strings are slices of
// raw: a needle absent from raw is then absent from them, which spares
// decoding.
func mentions(raw []byte, needles []string) bool {
	if utf8.Valid(raw) && !bytes.ContainsRune(raw, '\\') && !slices.ContainsFunc(needles, func(n string) bool { return bytes.Contains(raw, []byte(n)) }) {
		return false
	}
	return containsAny(jsonStrings(raw), needles)
}

// earliestRestriction returns the earliest imposed order that matches, or nil.
func (s *State) earliestRestriction(match func(*Restriction) bool) *Restriction {
	var found *Restriction
	for _, r := range s.Restrictions {
		if match(r) && (found == nil || r.ImposedSeq < found.ImposedSeq) {
			found = r
		}
	}
	return found
}

// familyAudience reports whether the category's default audience is all
// members and the family.
func familyAudience(c Category) bool {
	switch c {
	case CategoryCoordination, CategoryPlan, CategoryDailyLife, CategoryConsent:
		return true
	}
	return false
}

func show(rule, basis string) Decision {
	return Decision{Visibility: Full, Rule: rule, Basis: basis}
}

func hide(rule, basis string) Decision {
	return Decision{Visibility: Hidden, Rule: rule, Basis: basis}
}

func containsAny(haystacks, needles []string) bool {
	for _, h := range haystacks {
		for _, n := range needles {
			if strings.Contains(h, n) {
				return true
			}
		}
	}
	return false
}

func containsFold(xs []string, x string) bool {
	for _, v := range xs {
		if strings.EqualFold(v, x) {
			return true
		}
	}
	return false
}

// union returns a followed by the elements of b not already in it.
func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !containsFold(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func nonEmpty(xs []string) []string {
	var out []string
	for _, x := range xs {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}
