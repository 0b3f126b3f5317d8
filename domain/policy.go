package domain

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// See decides what viewer v may see of event e of the case whose access state
// is s, at time now: full, redacted (fields named) or hidden, and which rule
// (and which consent or order) decided. It applies the rules of docs/domain.md, "The rules, in order",
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
	sight := SightOf(s, v, now)
	return sight.See(e)
}

// Sight is what one viewer may see of one case at one time: See for every
// event of a page, with what does not depend on the event (the viewer's
// membership, the orders naming them, who the family is not informed of)
// worked out once instead of at every event. A timeline read decides a page
// of a hundred events for the same viewer, and these were most of the cost.
// A Sight reads the State it was made from: make a new one when the state
// moves. It is not safe for concurrent use.
type Sight struct {
	s   *State
	v   Viewer
	now time.Time

	// A professional viewer's membership and the partner_excluded orders
	// that name its institution, earliest imposed first.
	member      *Member
	exclusions  []*Restriction
	health      Decision // healthForMember, once asked (healthKnown)
	healthKnown bool

	// A family viewer's recording, the orders in force now that name them
	// (familyOrders), and the needles of the redactions, once asked.
	family           bool
	limited, secret  *Restriction
	uninformed       []string
	uninformedKnown  bool
	placeOfLife      []string
	placeOfLifeKnown bool
}

// SightOf prepares the decisions of viewer v on the case whose access state
// is s, at time now.
func SightOf(s *State, v Viewer, now time.Time) Sight {
	g := Sight{s: s, v: v, now: now}
	switch v.Role {
	case RoleProfessional:
		if m, ok := s.Members[v.Institution]; ok && v.Institution != "" {
			g.member = m
			for _, r := range s.Restrictions {
				if r.Kind == PartnerExcluded && r.NamesInstitution(v.Institution) {
					g.exclusions = append(g.exclusions, r)
				}
			}
			slices.SortFunc(g.exclusions, func(a, b *Restriction) int { return cmp.Compare(a.ImposedSeq, b.ImposedSeq) })
		}
	case RoleFamily:
		if _, ok := s.Family[v.FamilyMember]; ok {
			g.family = true
			g.limited, g.secret = s.familyOrders(v.FamilyMember, now)
		}
	}
	return g
}

// See decides what the sight's viewer may see of event e (the package
// function See).
func (g *Sight) See(e Event) Decision {
	switch g.v.Role {
	case RoleAuditor:
		return Decision{Visibility: Full, Rule: "auditor"}
	case RoleAdmin:
		return hide("admin_no_case_access", "")
	case RoleProfessional:
		return g.seeAsProfessional(e)
	case RoleFamily:
		return g.seeAsFamily(e)
	}
	return hide("unknown_role", "")
}

func (g *Sight) seeAsProfessional(e Event) Decision {
	m := g.member
	if m == nil {
		return hide("not_a_member", "")
	}
	if m.LeftSeq != 0 && e.Sequence > m.LeftSeq {
		return hide("left_case", "")
	}
	for _, r := range g.exclusions { // earliest imposed first
		if r.ActiveAt(e.RecordedAt) {
			return hide("partner_excluded", r.OrderReference)
		}
	}
	switch {
	case e.Category == CategoryHealth:
		if !g.healthKnown {
			g.health, g.healthKnown = healthForMember(g.s, m, g.now), true
		}
		return g.health
	case e.Category == CategoryJudicial || familyAudience(e.Category):
		return show("default_audience", "")
	}
	return hide("unknown_category", "")
}

// healthForMember is rule 4 for a member: care members see health, others
// only while a consent in force now names them (or their kind) and health.
// A former member only by a consent given before it left: one given later
// is recorded after its leaving, which it may not learn of in any form.
func healthForMember(s *State, m *Member, now time.Time) Decision {
	if m.Kind.Care() {
		return show("health_care_member", "")
	}
	var found *Consent
	for _, c := range s.Consents {
		if m.LeftSeq != 0 && c.GivenSeq > m.LeftSeq {
			continue
		}
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
func (g *Sight) seeAsFamily(e Event) Decision {
	if !g.family {
		return hide("not_family", "")
	}
	if e.Category == CategoryHealth {
		return hide("health_not_for_family", "")
	}
	if g.limited != nil && e.Category != CategoryCoordination {
		return hide("family_information_limited", g.limited.OrderReference)
	}
	pl := readPayload(e.Payload)
	if concealsUninformedMember(g.s, e, &pl) {
		return hide("family_not_informed", "")
	}
	d := show("default_audience", "")
	switch {
	case e.Category == CategoryJudicial:
		names, ref := g.s.orderNames(e, g.v.FamilyMember)
		if !names {
			return hide("judicial_not_named", "")
		}
		d = show("judicial_named", ref)
	case !familyAudience(e.Category):
		return hide("unknown_category", "")
	}
	return g.redactForFamily(e, &pl, d)
}

// uninformedNeedles is uninformedNeedles(s) without empty strings, worked
// out once.
func (g *Sight) uninformedNeedles() []string {
	if !g.uninformedKnown {
		g.uninformed, g.uninformedKnown = nonEmpty(uninformedNeedles(g.s)), true
	}
	return g.uninformed
}

// placeOfLifeNeedles are the ids and names of the members that can be a
// place of life, worked out once. Callers append to a clipped copy.
func (g *Sight) placeOfLifeNeedles() []string {
	if !g.placeOfLifeKnown {
		g.placeOfLife = slices.Clip(memberNeedles(g.s, func(m *Member) bool { return m.Kind.PlaceOfLife() }))
		g.placeOfLifeKnown = true
	}
	return g.placeOfLife
}

// familyOrders returns the earliest imposed family_information_limited and
// placement_address_secret orders in force at now that name family member p
// (nil when none), in one pass over the orders.
func (s *State) familyOrders(p PersonID, now time.Time) (limited, secret *Restriction) {
	for _, r := range s.Restrictions {
		var found **Restriction
		switch r.Kind {
		case FamilyInformationLimited:
			found = &limited
		case PlacementAddressSecret:
			found = &secret
		default:
			continue
		}
		if r.NamesFamilyMember(p) && r.ActiveAt(now) && (*found == nil || r.ImposedSeq < (*found).ImposedSeq) {
			*found = r
		}
	}
	return limited, secret
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
func concealsUninformedMember(s *State, e Event, pl *payloadText) bool {
	if e.Type == FamilyNotInformed {
		return true
	}
	if _, ok := memberFields[e.Type]; !ok || len(s.NotInformed) == 0 {
		return false
	}
	about, ok := pl.institution()
	if !ok {
		return true
	}
	_, concealed := s.NotInformed[about]
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
func (g *Sight) redactForFamily(e Event, pl *payloadText, d Decision) Decision {
	secret := g.secret
	if secret != nil && !e.Known() {
		return hide("placement_address_secret", secret.OrderReference)
	}
	var fields []string
	if secret != nil {
		fields = placeOfLifeFields(g.s, e, pl, g.placeOfLifeNeedles())
	}
	uninformed := mentioning(e, pl, g.uninformedNeedles())
	switch {
	case len(fields) > 0:
		return Decision{Visibility: Redacted, Fields: union(fields, uninformed), Rule: "placement_address_secret", Basis: secret.OrderReference}
	case len(uninformed) > 0:
		return Decision{Visibility: Redacted, Fields: uninformed, Rule: "family_not_informed"}
	}
	return d
}

// placeOfLifeFields lists the fields of e that tell where the child lives;
// needles are the ids and names of the members that can be a place of life
// (appended to only after a copy: slices.Clip).
func placeOfLifeFields(s *State, e Event, pl *payloadText, needles []string) []string {
	fields := LocationFields(e.Type)
	if len(fields) > 0 {
		members, _ := pl.objectMembers()
		for _, m := range members {
			if containsFold(fields, m.Key) {
				needles = pl.appendStrings(needles, m.Value)
			}
		}
	}
	if mf, ok := memberFields[e.Type]; ok {
		if about, ok := pl.institution(); ok {
			if m, ok := s.Members[about]; ok && m.Kind.PlaceOfLife() {
				fields = union(fields, mf)
			}
		}
	}
	if m, ok := s.Members[e.Actor.Institution]; ok && m.Kind.PlaceOfLife() {
		fields = union(fields, []string{"actor"})
	}
	return union(fields, mentioning(e, pl, needles))
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
func mentioning(e Event, pl *payloadText, needles []string) []string {
	needles = nonEmpty(needles)
	if len(needles) == 0 {
		return nil
	}
	byActor := containsAny([]string{string(e.Actor.Institution), e.Actor.Professional}, needles)
	if !byActor && pl.valid() && !pl.mentions(needles) {
		return nil
	}
	var fields []string
	members, ok := pl.objectMembers()
	if !ok && len(pl.raw) > 0 && (!pl.valid() || pl.mentions(needles)) {
		fields = append(fields, "payload")
	}
	for _, m := range members {
		if (containsAny([]string{m.Key}, needles) || pl.valueMentions(m.Value, needles)) && !containsFold(fields, m.Key) {
			fields = append(fields, m.Key)
		}
	}
	if byActor && !containsFold(fields, "actor") {
		fields = append(fields, "actor")
	}
	return fields
}

// mentions reports whether a string of the JSON value raw contains one of
// the needles. In valid UTF-8 without escapes, decoded strings are slices of
// raw: a needle absent from raw is then absent from them, which spares
// decoding.
func mentions(raw []byte, needles []string) bool {
	if utf8.Valid(raw) && !bytes.ContainsRune(raw, '\\') && !containsAnyBytes(raw, needles) {
		return false
	}
	return containsAny(jsonStrings(raw), needles)
}

// payloadText is a payload as the family's redactions read it, with what
// they learnt of it kept for their next questions about it.
//
// A plain payload (valid UTF-8 without a backslash) that is valid JSON has
// its strings, keys included, exactly between the pairs of double quotes of
// its text: a string cannot hold a quote without an escape, and has nothing
// to decode. Such a payload is read by slicing it, without the decoder, and
// each of its member values, a part of it, is plain valid JSON too.
type payloadText struct {
	raw       []byte
	plainness int8 // 0 not yet known, 1 plain, -1 not
	validity  int8 // 0 not yet known, 1 valid JSON, -1 not
	// members and membersOK are objectMembers' answer, once asked
	// (membersRead); about and aboutOK institution's (aboutRead).
	members     []jsonMember
	membersOK   bool
	membersRead bool
	about       InstitutionID
	aboutOK     bool
	aboutRead   bool
}

func readPayload(raw []byte) payloadText { return payloadText{raw: raw} }

// plain reports whether the payload is valid UTF-8 without a backslash.
func (p *payloadText) plain() bool {
	if p.plainness == 0 {
		p.plainness = -1
		if utf8.Valid(p.raw) && !bytes.ContainsRune(p.raw, '\\') {
			p.plainness = 1
		}
	}
	return p.plainness > 0
}

// institution is the "institution" of the membership events, as
// json.Unmarshal decodes it into a struct whose only field is it (tagged
// "institution"), and whether that decoding succeeds. Without the decoder:
// for a plain JSON object whose keys are ASCII, the keys that match are those
// equal to "institution" but for the case of letters, the last string one
// wins, null changes nothing, and any other value fails the decoding.
func (p *payloadText) institution() (InstitutionID, bool) {
	if !p.aboutRead {
		p.aboutRead = true
		p.about, p.aboutOK = p.decodeInstitution()
	}
	return p.about, p.aboutOK
}

func (p *payloadText) decodeInstitution() (InstitutionID, bool) {
	if members, ok := p.plainObject(); ok && asciiKeys(members) {
		var inst InstitutionID
		ok := true
		for _, m := range members {
			if !strings.EqualFold(m.Key, "institution") {
				continue
			}
			switch m.Value[0] {
			case '"':
				inst = InstitutionID(m.Value[1 : len(m.Value)-1])
			case 'n':
			default:
				ok = false
			}
		}
		return inst, ok
	}
	var about struct {
		Institution InstitutionID `json:"institution"`
	}
	err := json.Unmarshal(p.raw, &about)
	return about.Institution, err == nil
}

func asciiKeys(members []jsonMember) bool {
	for _, m := range members {
		for i := range len(m.Key) {
			if m.Key[i] >= utf8.RuneSelf {
				return false
			}
		}
	}
	return true
}

// valid is json.Valid(p.raw).
func (p *payloadText) valid() bool {
	if p.validity == 0 {
		p.validity = -1
		if p.plain() && plainValid(p.raw) || !p.plain() && json.Valid(p.raw) {
			p.validity = 1
		}
	}
	return p.validity > 0
}

// maxDepth is the nesting encoding/json accepts (its maxNestingDepth).
const maxDepth = 10000

// plainValid is json.Valid(raw) for raw, valid UTF-8 without a backslash:
// one JSON value between optional white space, strings without escapes
// (and without control characters), nested at most maxDepth deep.
func plainValid(raw []byte) bool {
	end, ok := plainValue(raw, skipSpace(raw, 0), 0)
	return ok && skipSpace(raw, end) == len(raw)
}

// plainValue returns the end of the valid JSON value at raw[i], at nesting
// depth depth, or false.
func plainValue(raw []byte, i, depth int) (int, bool) {
	if i >= len(raw) {
		return i, false
	}
	switch c := raw[i]; {
	case c == '"':
		return plainString(raw, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, false
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = skipSpace(raw, i+1)
		if i < len(raw) && raw[i] == closing {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(raw) || raw[i] != '"' {
					return i, false
				}
				if i, ok = plainString(raw, i); !ok {
					return i, false
				}
				if i = skipSpace(raw, i); i >= len(raw) || raw[i] != ':' {
					return i, false
				}
				i = skipSpace(raw, i+1)
			}
			if i, ok = plainValue(raw, i, depth+1); !ok {
				return i, false
			}
			if i = skipSpace(raw, i); i >= len(raw) {
				return i, false
			}
			switch raw[i] {
			case ',':
				i = skipSpace(raw, i+1)
			case closing:
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		return plainNumber(raw, i)
	case c == 't':
		return i + 4, bytes.HasPrefix(raw[i:], []byte("true"))
	case c == 'f':
		return i + 5, bytes.HasPrefix(raw[i:], []byte("false"))
	case c == 'n':
		return i + 4, bytes.HasPrefix(raw[i:], []byte("null"))
	}
	return i, false
}

// plainString returns the end of the string that opens at raw[i].
func plainString(raw []byte, i int) (int, bool) {
	for i++; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		}
	}
	return i, false
}

// plainNumber returns the end of the number at raw[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func plainNumber(raw []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(raw) && '0' <= raw[i] && raw[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if raw[i] == '-' {
		i++
	}
	switch {
	case i < len(raw) && raw[i] == '0':
		i++
	case i < len(raw) && '1' <= raw[i] && raw[i] <= '9':
		i, _ = digits(i)
	default:
		return i, false
	}
	var ok bool
	if i < len(raw) && raw[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return i, false
		}
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	return i, true
}

// plainJSON reports whether the payload is plain and valid JSON.
func (p *payloadText) plainJSON() bool { return p.plain() && p.valid() }

// mentions is mentions(p.raw, needles).
func (p *payloadText) mentions(needles []string) bool {
	if !p.plain() {
		return mentions(p.raw, needles)
	}
	if !containsAnyBytes(p.raw, needles) {
		return false
	}
	if p.valid() {
		return plainStringsContain(p.raw, needles)
	}
	return containsAny(jsonStrings(p.raw), needles)
}

// plainObject returns the members of the payload when it is a plain JSON
// object.
func (p *payloadText) plainObject() ([]jsonMember, bool) {
	if !p.plainJSON() {
		return nil, false
	}
	return p.objectMembers()
}

// objectMembers is objectMembers(p.raw).
func (p *payloadText) objectMembers() ([]jsonMember, bool) {
	if !p.membersRead {
		p.membersRead = true
		if p.plainJSON() {
			p.members, p.membersOK = plainObjectMembers(p.raw)
		} else {
			p.members, p.membersOK = objectMembers(p.raw)
		}
	}
	return p.members, p.membersOK
}

// valueMentions is mentions(v, needles) for v, the value of one of the
// payload's members.
func (p *payloadText) valueMentions(v []byte, needles []string) bool {
	if p.plainJSON() {
		return containsAnyBytes(v, needles) && plainStringsContain(v, needles)
	}
	return mentions(v, needles)
}

// appendStrings appends jsonStrings(v) to xs, for v the value of one of the
// payload's members.
func (p *payloadText) appendStrings(xs []string, v []byte) []string {
	if !p.plainJSON() {
		return append(xs, jsonStrings(v)...)
	}
	for {
		i := bytes.IndexByte(v, '"')
		if i < 0 {
			return xs
		}
		v = v[i+1:]
		j := bytes.IndexByte(v, '"')
		if j < 0 {
			return xs
		}
		xs = append(xs, string(v[:j]))
		v = v[j+1:]
	}
}

// containsAnyBytes reports whether raw contains one of the needles.
func containsAnyBytes(raw []byte, needles []string) bool {
	return slices.ContainsFunc(needles, func(n string) bool { return bytes.Contains(raw, []byte(n)) })
}

// plainStringsContain reports whether a string of raw, plain valid JSON,
// contains one of the needles: containsAny(jsonStrings(raw), needles).
func plainStringsContain(raw []byte, needles []string) bool {
	for {
		i := bytes.IndexByte(raw, '"')
		if i < 0 {
			return false
		}
		raw = raw[i+1:]
		j := bytes.IndexByte(raw, '"')
		if j < 0 {
			return false
		}
		if containsAnyBytes(raw[:j], needles) {
			return true
		}
		raw = raw[j+1:]
	}
}

// plainObjectMembers is objectMembers(raw) for raw, plain valid JSON: its
// keys are the text between their quotes, its values the exact text of
// each, without the white space around.
func plainObjectMembers(raw []byte) ([]jsonMember, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	var members []jsonMember
	for i = skipSpace(raw, i+1); i < len(raw) && raw[i] != '}'; i = skipSpace(raw, i) {
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		end := i + 1 + bytes.IndexByte(raw[i+1:], '"') // raw[i] opens the key
		key := string(raw[i+1 : end])
		i = skipSpace(raw, skipSpace(raw, end+1)+1) // past the colon
		end = valueEnd(raw, i)
		members = append(members, jsonMember{Key: key, Value: raw[i:end]})
		i = end
	}
	return members, true
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the JSON value that starts at raw[i], for raw
// plain valid JSON.
func valueEnd(raw []byte, i int) int {
	depth := 0
	for ; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			i += 1 + bytes.IndexByte(raw[i+1:], '"')
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
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
	if !slices.Contains(xs, "") {
		return xs
	}
	var out []string
	for _, x := range xs {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}
