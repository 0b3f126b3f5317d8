package domain_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
)

// The policy's fast paths must decide exactly as the straightforward reading
// of its rules did: TestSeeMatchesReference compares domain.See with a copy
// of that reading (referenceSee and its helpers below, as policy.go had them
// before the fast paths) on generated histories, every kind of viewer, many
// reading times, and events altered to reach the slow paths (needles in
// keys, escaped, in non-object or invalid payloads, in the actor).

func TestSeeMatchesReference(t *testing.T) {
	seeds := []int64{1, 2, 3, 7, 42}
	cases := 3
	if testing.Short() {
		seeds, cases = seeds[:2], 2
	}
	compared := 0
	rules := map[string]int{}
	for _, seed := range seeds {
		g := generate.New(generate.Options{Seed: seed, EventsPerCase: 80})
		for range cases {
			h := g.Case()
			// The final state, and states part-way through the history.
			var states []*domain.State
			for k := len(h) / 3; k < len(h); k += len(h) / 3 {
				states = append(states, domain.Fold(h[0].CaseID, h[:k]))
			}
			states = append(states, domain.Fold(h[0].CaseID, h))
			for _, s := range states {
				events := append(slices.Clone(h), alteredEvents(s, h)...)
				viewers := seeViewers(s)
				for _, now := range readingTimes(s, h) {
					for _, v := range viewers {
						// One Sight decides every event, as a page read does.
						sight := domain.SightOf(s, v, now)
						for _, e := range events {
							got, want := domain.See(s, v, e, now), referenceSee(s, v, e, now)
							if fromSight := sight.See(e); !reflect.DeepEqual(fromSight, want) {
								t.Fatalf("seed %d case %s viewer %+v event %d (%s %s) at %s, one Sight for all events:\n got %#v\nwant %#v",
									seed, h[0].CaseID, v, e.Sequence, e.Type, e.Payload, now.Format(time.RFC3339Nano), fromSight, want)
							}
							compared++
							rules[want.Rule]++
							rules[string(want.Visibility)]++
							if !reflect.DeepEqual(got, want) {
								t.Fatalf("seed %d case %s viewer %+v event %d (%s %s) at %s:\n got %#v\nwant %#v",
									seed, h[0].CaseID, v, e.Sequence, e.Type, e.Payload, now.Format(time.RFC3339Nano), got, want)
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d decisions compared: %v", compared, rules)
	for _, rule := range []string{"auditor", "admin_no_case_access", "unknown_role", "not_a_member", "left_case", "not_family",
		"partner_excluded", "health_care_member", "health_consent", "health_needs_consent", "health_not_for_family",
		"family_information_limited", "family_not_informed", "judicial_named", "judicial_not_named",
		"placement_address_secret", "default_audience", "unknown_category", "redacted"} {
		if rules[rule] == 0 {
			t.Errorf("no decision by rule %q: %v", rule, rules)
		}
	}
}

// seeViewers lists every kind of viewer of the case: auditor, admin, an
// unknown role, every member (current and former), a stranger institution,
// the empty institution, every family member and an unknown person.
func seeViewers(s *domain.State) []domain.Viewer {
	vs := []domain.Viewer{{Role: domain.RoleAuditor}, {Role: domain.RoleAdmin}, {Role: "janitor"},
		{Role: domain.RoleProfessional, Institution: "stranger-99"}, {Role: domain.RoleProfessional},
		{Role: domain.RoleFamily, FamilyMember: uuid.MustParse("00000000-0000-4000-8000-0000000000ee")}}
	for _, id := range slices.Sorted(mapsKeys(s.Members)) {
		vs = append(vs, domain.Viewer{Role: domain.RoleProfessional, Institution: id})
	}
	for _, p := range slices.SortedFunc(mapsKeys(s.Family), func(a, b domain.PersonID) int { return bytes.Compare(a[:], b[:]) }) {
		vs = append(vs, domain.Viewer{Role: domain.RoleFamily, FamilyMember: p})
	}
	return vs
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// readingTimes are the times around every start and end of a consent or an
// order (just before, at, just after), before the case, in its life and
// long after it.
func readingTimes(s *domain.State, h []domain.Event) []time.Time {
	first, last := h[0].RecordedAt, h[len(h)-1].RecordedAt
	ts := []time.Time{first.Add(-24 * time.Hour), first.Add(last.Sub(first) / 2), last, last.AddDate(3, 0, 0)}
	around := func(t time.Time) {
		if !t.IsZero() {
			ts = append(ts, t.Add(-time.Nanosecond), t, t.Add(time.Second))
		}
	}
	for _, c := range s.Consents {
		around(c.From)
		around(c.Until)
		around(c.WithdrawnAt)
	}
	for _, r := range s.Restrictions {
		around(r.From)
		around(r.Until)
		around(r.LiftedAt)
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	ts = slices.CompactFunc(ts, func(a, b time.Time) bool { return a.Equal(b) })
	// At most 8, spread over them, the first and last kept.
	if n := len(ts); n > 8 {
		var kept []time.Time
		for i := range 8 {
			kept = append(kept, ts[i*(n-1)/7])
		}
		ts = kept
	}
	return ts
}

// alteredEvents returns variants of some events of h made to reach the
// policy's slow paths: the ids and names of the members (the needles of the
// family's redactions) written in a payload's strings, in its keys, escaped,
// in a payload that is not an object or not JSON, not UTF-8, in the actor;
// and unknown types or schema versions.
func alteredEvents(s *domain.State, h []domain.Event) []domain.Event {
	var needles []string
	for _, id := range slices.Sorted(mapsKeys(s.Members)) {
		needles = append(needles, string(id), s.Members[id].Name)
	}
	needles = append(needles, "stranger-99", "")
	escaped := func(x string) string {
		if x == "" {
			return x
		}
		return fmt.Sprintf(`\u%04x`, x[0]) + x[1:]
	}
	var out []domain.Event
	for i, e := range h {
		if i%11 != 0 {
			continue
		}
		n := needles[i%len(needles)]
		jn, _ := json.Marshal(n)
		alter := func(payload string, change func(*domain.Event)) {
			a := e
			a.Payload = json.RawMessage(payload)
			if change != nil {
				change(&a)
			}
			out = append(out, a)
		}
		p := string(e.Payload)
		inner := strings.TrimSuffix(strings.TrimPrefix(p, "{"), "}")
		alter(`{"zz":`+string(jn)+`,`+inner+`}`, nil)
		alter(`{`+string(jn)+`:1,`+inner+`}`, nil)
		alter(`{"zz":"`+escaped(n)+`",`+inner+`}`, nil)
		alter(`{"zz":"a\\b",`+inner+`}`, nil)
		alter(`{"zz":["x",{"y":`+string(jn)+`}],`+inner+`}`, nil)
		alter(`[`+string(jn)+`]`, nil)
		alter(string(jn), nil)
		alter(`[1,2]`, nil)
		alter(``, nil)
		alter(`null`, nil)
		alter(p[:len(p)/2], nil)
		alter(p+` `+string(jn), nil)
		alter(p+`{}`, nil)
		alter(`{"zz":"`+n+"\xff"+`",`+inner+`}`, nil)
		alter(`{"zz":"x\xff"}`, nil)
		alter(`{"INSTITUTION":`+string(jn)+`,`+inner+`}`, nil)
		alter(`{"institution":`+string(jn)+`}`, nil)
		alter(`{"institution":`+string(jn)+`,"placeOfLife":"`+n+`","location":"quelque part"}`, nil)
		var indented bytes.Buffer
		if json.Indent(&indented, e.Payload, " \r", "\t ") == nil {
			alter(" \n"+indented.String()+"\n\t ", nil)
		}
		alter(`{ "zz" : [ 1 , -2.5e3 , true , null , { "k" : [ ] , "n" : `+string(jn)+` } ] , "yy" : {} , "xx":"",`+inner+` }`, nil)
		alter(`{"a":1,"b":"`+n+`","c":{"d":[{"e":"`+n+`"}]},"f":false,"g":null,"A":"`+n+`","placeOfLife":0}`, nil)
		alter(`{}`, nil)
		alter(` { } `, nil)
		alter(`{"zz":"`+n+`"}x`, nil)
		alter(`{"zz":"`+n+`",}`, nil)
		alter(`{"zz":`+string(jn)+`}{"yy":`+string(jn)+`}`, nil)
		alter(`{"zz":"`+n+`"`, nil)
		alter(`"`+n+``, nil)
		alter(p, func(a *domain.Event) { a.Actor.Institution = domain.InstitutionID(n) })
		alter(p, func(a *domain.Event) { a.Actor.Professional = "pro de " + n })
		alter(p, func(a *domain.Event) { a.SchemaVersion = 2 })
		alter(p, func(a *domain.Event) { a.Type = "FutureEvent" })
		alter(p, func(a *domain.Event) { a.Category = "finance" })
		alter(p, func(a *domain.Event) { a.Category = domain.CategoryHealth })
		alter(p, func(a *domain.Event) { a.Category = domain.CategoryCoordination })
		for _, payload := range []string{`{"institution":1}`, `{"institution":null}`, `null`, `{"institution":true}`, `{"institution":{}}`,
			`{"institution":[` + string(jn) + `]}`, `{"Institution":` + string(jn) + `,"INSTITUTION":null}`, `{"institution":` + string(jn) + `,"institutioN":"x"}`,
			`{"inſtitution":` + string(jn) + `}`, `{"institution":` + string(jn) + `,"é":1}`, `{"institution" : ` + string(jn) + ` }`, `{"institution":""}`,
			`{"institution":"\u0061` + n + `"}`, `"` + n + `"`, `[` + string(jn) + `]`, `{"institution":"` + n + "\xff" + `"}`} {
			for _, typ := range []domain.EventType{domain.PartnerJoined, domain.PartnerLeft, domain.ReferentChanged, domain.FamilyInformed} {
				alter(payload, func(a *domain.Event) { a.Type = typ })
			}
		}
		for _, typ := range []domain.EventType{domain.PartnerJoined, domain.PartnerLeft, domain.ReferentChanged, domain.FamilyInformed, domain.FamilyNotInformed, domain.PlacementChanged, domain.SynthesisMeetingHeld} {
			alter(`{"institution":`+string(jn)+`,"name":"x","referent":{"name":"y"},"placeOfLife":"p","address":"a","hostInstitution":`+string(jn)+`,"location":"l"}`,
				func(a *domain.Event) { a.Type = typ })
		}
	}
	return out
}

// BenchmarkSeeFamilyPage decides a page of 100 events for every family
// member of generated cases, read at the last event's time.
func BenchmarkSeeFamilyPage(b *testing.B) {
	benchmarkSeePage(b, func(v domain.Viewer) bool { return v.Role == domain.RoleFamily })
}

// BenchmarkSeePage decides a page of 100 events for every reader of
// generated cases (auditor, members, family), as the read benchmark does.
func BenchmarkSeePage(b *testing.B) {
	benchmarkSeePage(b, func(domain.Viewer) bool { return true })
}

func benchmarkSeePage(b *testing.B, which func(domain.Viewer) bool) {
	type read struct {
		s      *domain.State
		v      domain.Viewer
		events []domain.Event
		now    time.Time
	}
	var reads []read
	g := generate.New(generate.Options{Seed: 1, EventsPerCase: 100})
	for range 40 {
		h := g.Case()
		s := domain.Fold(h[0].CaseID, h)
		vs := []domain.Viewer{{Role: domain.RoleAuditor}}
		for _, id := range slices.Sorted(mapsKeys(s.Members)) {
			vs = append(vs, domain.Viewer{Role: domain.RoleProfessional, Institution: id})
		}
		for _, p := range slices.SortedFunc(mapsKeys(s.Family), func(a, b domain.PersonID) int { return bytes.Compare(a[:], b[:]) }) {
			vs = append(vs, domain.Viewer{Role: domain.RoleFamily, FamilyMember: p})
		}
		for _, v := range vs {
			if which(v) {
				reads = append(reads, read{s, v, h[:min(len(h), 100)], h[len(h)-1].RecordedAt})
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := reads[i%len(reads)]
		sight := domain.SightOf(r.s, r.v, r.now)
		for _, e := range r.events {
			sight.See(e)
		}
	}
}

// --- The reference: the policy as it was before its fast paths. ---

func referenceSee(s *domain.State, v domain.Viewer, e domain.Event, now time.Time) domain.Decision {
	switch v.Role {
	case domain.RoleAuditor:
		return domain.Decision{Visibility: domain.Full, Rule: "auditor"}
	case domain.RoleAdmin:
		return refHide("admin_no_case_access", "")
	case domain.RoleProfessional:
		return refSeeAsProfessional(s, v.Institution, e, now)
	case domain.RoleFamily:
		return refSeeAsFamily(s, v.FamilyMember, e, now)
	}
	return refHide("unknown_role", "")
}

func refSeeAsProfessional(s *domain.State, inst domain.InstitutionID, e domain.Event, now time.Time) domain.Decision {
	m, ok := s.Members[inst]
	if !ok || inst == "" {
		return refHide("not_a_member", "")
	}
	if m.LeftSeq != 0 && e.Sequence > m.LeftSeq {
		return refHide("left_case", "")
	}
	excluded := refEarliestRestriction(s, func(r *domain.Restriction) bool {
		return r.Kind == domain.PartnerExcluded && r.NamesInstitution(inst) && r.ActiveAt(e.RecordedAt)
	})
	if excluded != nil {
		return refHide("partner_excluded", excluded.OrderReference)
	}
	switch {
	case e.Category == domain.CategoryHealth:
		return refHealthForMember(s, m, now)
	case e.Category == domain.CategoryJudicial || refFamilyAudience(e.Category):
		return refShow("default_audience", "")
	}
	return refHide("unknown_category", "")
}

func refHealthForMember(s *domain.State, m *domain.Member, now time.Time) domain.Decision {
	if m.Kind.Care() {
		return refShow("health_care_member", "")
	}
	var found *domain.Consent
	for _, c := range s.Consents {
		givenBeforeLeaving := m.LeftSeq == 0 || c.GivenSeq <= m.LeftSeq
		if givenBeforeLeaving && c.ActiveAt(now) && c.Covers(m.Institution, m.Kind, domain.CategoryHealth) && (found == nil || c.GivenSeq < found.GivenSeq) {
			found = c
		}
	}
	if found == nil {
		return refHide("health_needs_consent", "")
	}
	return refShow("health_consent", found.ID.String())
}

func refSeeAsFamily(s *domain.State, p domain.PersonID, e domain.Event, now time.Time) domain.Decision {
	if _, ok := s.Family[p]; !ok {
		return refHide("not_family", "")
	}
	if e.Category == domain.CategoryHealth {
		return refHide("health_not_for_family", "")
	}
	limited := refEarliestRestriction(s, func(r *domain.Restriction) bool {
		return r.Kind == domain.FamilyInformationLimited && r.NamesFamilyMember(p) && r.ActiveAt(now)
	})
	if limited != nil && e.Category != domain.CategoryCoordination {
		return refHide("family_information_limited", limited.OrderReference)
	}
	if refConcealsUninformedMember(s, e) {
		return refHide("family_not_informed", "")
	}
	d := refShow("default_audience", "")
	switch {
	case e.Category == domain.CategoryJudicial:
		names, ref := refOrderNames(s, e, p)
		if !names {
			return refHide("judicial_not_named", "")
		}
		d = refShow("judicial_named", ref)
	case !refFamilyAudience(e.Category):
		return refHide("unknown_category", "")
	}
	return refRedactForFamily(s, p, e, now, d)
}

var refMemberFields = map[domain.EventType][]string{
	domain.PartnerJoined:   {"institution", "name", "referent"},
	domain.PartnerLeft:     {"institution"},
	domain.ReferentChanged: {"institution", "referent"},
	domain.FamilyInformed:  {"institution"},
}

func refConcealsUninformedMember(s *domain.State, e domain.Event) bool {
	if e.Type == domain.FamilyNotInformed {
		return true
	}
	if _, ok := refMemberFields[e.Type]; !ok || len(s.NotInformed) == 0 {
		return false
	}
	var about struct {
		Institution domain.InstitutionID `json:"institution"`
	}
	if err := json.Unmarshal(e.Payload, &about); err != nil {
		return true
	}
	_, concealed := s.NotInformed[about.Institution]
	return concealed
}

func refOrderNames(s *domain.State, e domain.Event, p domain.PersonID) (bool, string) {
	if !e.Known() {
		return false, ""
	}
	payload, err := e.Decode()
	if err != nil {
		return false, ""
	}
	switch pl := payload.(type) {
	case *domain.JudicialRestrictionImposedPayload:
		r := &domain.Restriction{FamilyMembers: pl.FamilyMembers}
		return r.NamesFamilyMember(p), pl.OrderReference
	case *domain.JudicialRestrictionLiftedPayload:
		r, ok := s.Restrictions[pl.Restriction]
		if !ok {
			return false, ""
		}
		return r.NamesFamilyMember(p), r.OrderReference
	}
	return false, ""
}

func refRedactForFamily(s *domain.State, p domain.PersonID, e domain.Event, now time.Time, d domain.Decision) domain.Decision {
	secret := refEarliestRestriction(s, func(r *domain.Restriction) bool {
		return r.Kind == domain.PlacementAddressSecret && r.NamesFamilyMember(p) && r.ActiveAt(now)
	})
	if secret != nil && !e.Known() {
		return refHide("placement_address_secret", secret.OrderReference)
	}
	var fields []string
	if secret != nil {
		fields = refPlaceOfLifeFields(s, e)
	}
	uninformed := refMentioning(e, refUninformedNeedles(s))
	switch {
	case len(fields) > 0:
		return domain.Decision{Visibility: domain.Redacted, Fields: refUnion(fields, uninformed), Rule: "placement_address_secret", Basis: secret.OrderReference}
	case len(uninformed) > 0:
		return domain.Decision{Visibility: domain.Redacted, Fields: uninformed, Rule: "family_not_informed"}
	}
	return d
}

func refPlaceOfLifeFields(s *domain.State, e domain.Event) []string {
	fields := domain.LocationFields(e.Type)
	needles := refMemberNeedles(s, func(m *domain.Member) bool { return m.Kind.PlaceOfLife() })
	if len(fields) > 0 {
		members, _ := refObjectMembers(e.Payload)
		for _, m := range members {
			if refContainsFold(fields, m.Key) {
				needles = append(needles, refJSONStrings(m.Value)...)
			}
		}
	}
	if mf, ok := refMemberFields[e.Type]; ok {
		var about struct {
			Institution domain.InstitutionID `json:"institution"`
		}
		if json.Unmarshal(e.Payload, &about) == nil {
			if m, ok := s.Members[about.Institution]; ok && m.Kind.PlaceOfLife() {
				fields = refUnion(fields, mf)
			}
		}
	}
	if m, ok := s.Members[e.Actor.Institution]; ok && m.Kind.PlaceOfLife() {
		fields = refUnion(fields, []string{"actor"})
	}
	return refUnion(fields, refMentioning(e, needles))
}

func refMemberNeedles(s *domain.State, match func(*domain.Member) bool) []string {
	var needles []string
	for _, m := range s.Members {
		if match(m) {
			needles = append(needles, string(m.Institution), m.Name)
		}
	}
	return needles
}

func refUninformedNeedles(s *domain.State) []string {
	var needles []string
	for inst := range s.NotInformed {
		needles = append(needles, string(inst))
		if m, ok := s.Members[inst]; ok {
			needles = append(needles, m.Name)
		}
	}
	return needles
}

func refMentioning(e domain.Event, needles []string) []string {
	needles = refNonEmpty(needles)
	byActor := refContainsAny([]string{string(e.Actor.Institution), e.Actor.Professional}, needles)
	if len(needles) == 0 || (!byActor && json.Valid(e.Payload) && !refMentions(e.Payload, needles)) {
		return nil
	}
	var fields []string
	members, ok := refObjectMembers(e.Payload)
	if !ok && len(e.Payload) > 0 && (!json.Valid(e.Payload) || refMentions(e.Payload, needles)) {
		fields = append(fields, "payload")
	}
	for _, m := range members {
		if refContainsAny([]string{m.Key}, needles) || refMentions(m.Value, needles) {
			fields = refUnion(fields, []string{m.Key})
		}
	}
	if byActor {
		fields = refUnion(fields, []string{"actor"})
	}
	return fields
}

func refMentions(raw []byte, needles []string) bool {
	if utf8.Valid(raw) && !bytes.ContainsRune(raw, '\\') && !slices.ContainsFunc(needles, func(n string) bool { return bytes.Contains(raw, []byte(n)) }) {
		return false
	}
	return refContainsAny(refJSONStrings(raw), needles)
}

func refEarliestRestriction(s *domain.State, match func(*domain.Restriction) bool) *domain.Restriction {
	var found *domain.Restriction
	for _, r := range s.Restrictions {
		if match(r) && (found == nil || r.ImposedSeq < found.ImposedSeq) {
			found = r
		}
	}
	return found
}

func refFamilyAudience(c domain.Category) bool {
	switch c {
	case domain.CategoryCoordination, domain.CategoryPlan, domain.CategoryDailyLife, domain.CategoryConsent:
		return true
	}
	return false
}

func refShow(rule, basis string) domain.Decision {
	return domain.Decision{Visibility: domain.Full, Rule: rule, Basis: basis}
}

func refHide(rule, basis string) domain.Decision {
	return domain.Decision{Visibility: domain.Hidden, Rule: rule, Basis: basis}
}

func refContainsAny(haystacks, needles []string) bool {
	for _, h := range haystacks {
		for _, n := range needles {
			if strings.Contains(h, n) {
				return true
			}
		}
	}
	return false
}

func refContainsFold(xs []string, x string) bool {
	for _, v := range xs {
		if strings.EqualFold(v, x) {
			return true
		}
	}
	return false
}

func refUnion(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !refContainsFold(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func refNonEmpty(xs []string) []string {
	var out []string
	for _, x := range xs {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

type refJSONMember struct {
	Key   string
	Value json.RawMessage
}

func refObjectMembers(raw []byte) ([]refJSONMember, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var members []refJSONMember
	for dec.More() {
		t, err := dec.Token()
		key, isKey := t.(string)
		if err != nil || !isKey {
			return nil, false
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, false
		}
		members = append(members, refJSONMember{Key: key, Value: value})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return members, true
}

func refJSONStrings(raw []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var out []string
	for {
		t, err := dec.Token()
		if err != nil {
			return out
		}
		if s, ok := t.(string); ok {
			out = append(out, s)
		}
	}
}

// TestSeeMatchesReferenceOnMangledPayloads compares the decisions on
// payloads mangled byte by byte, valid JSON or not, deep or not, for every
// viewer of a case whose family is not informed of a member and is under an
// address secret, so that every payload is read.
func TestSeeMatchesReferenceOnMangledPayloads(t *testing.T) {
	s, base, now := mangleCase(t)
	viewers := seeViewers(s)
	check := func(payload []byte) {
		e := base
		e.Payload = payload
		for _, v := range viewers {
			if got, want := domain.See(s, v, e, now), referenceSee(s, v, e, now); !reflect.DeepEqual(got, want) {
				t.Fatalf("viewer %+v payload %q:\n got %#v\nwant %#v", v, payload, got, want)
			}
		}
	}
	var seeds [][]byte
	for _, e := range mangleEvents {
		seeds = append(seeds, e)
	}
	for _, d := range []int{9999, 10000, 10001} {
		seeds = append(seeds, []byte(strings.Repeat("[", d)+strings.Repeat("]", d)),
			[]byte(`{"a":`+strings.Repeat(`{"b":`, d-1)+`"x"`+strings.Repeat("}", d)))
	}
	for _, p := range seeds {
		check(p)
	}
	alphabet := []byte("{}[]\",:0123456789.eE+- \t\r\ntruefalsnx\x00\x1f\xc3\xa9\\")
	rnd := uint64(1)
	next := func(n int) int {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		return int(rnd>>33) % n
	}
	rounds := 20000
	if testing.Short() {
		rounds = 2000
	}
	for range rounds {
		p := slices.Clone(mangleEvents[next(len(mangleEvents))])
		for range 1 + next(3) {
			i := next(len(p) + 1)
			switch next(3) {
			case 0:
				p = slices.Insert(p, i, alphabet[next(len(alphabet))])
			case 1:
				if i < len(p) {
					p = slices.Delete(p, i, i+1)
				}
			case 2:
				if i < len(p) {
					p[i] = alphabet[next(len(alphabet))]
				}
			}
		}
		check(p)
	}
}

// mangleEvents are the payloads TestSeeMatchesReferenceOnMangledPayloads
// mangles.
var mangleEvents = [][]byte{
	[]byte(`{"summary":"note about mecs-35-01","agreeing":["ase-35","école"],"n":-12.5e+3,"ok":true,"no":false,"z":null,"o":{"a":[1,{"b":"MECS 35 n°1"}]}}`),
	[]byte(`{"placeOfLife":"Maison","address":"1 rue","hostInstitution":"mecs-35-01","planned":true}`),
	[]byte(`[1, "mecs-35-01", {"x": [0.5, -0, 1E9]}]`),
	[]byte(` "mecs-35-01" `),
	[]byte(`{"institution":"mecs-35-01","name":"MECS 35 n°1","referent":{"name":"r"}}`),
	[]byte(`{}`),
	[]byte(`0`),
}

// mangleCase returns a generated case whose family is not informed of a
// member and has a placement_address_secret order in force, one of its
// events, and a time at which the order is in force.
func mangleCase(tb testing.TB) (*domain.State, domain.Event, time.Time) {
	for seed := int64(1); seed < 200; seed++ {
		g := generate.New(generate.Options{Seed: seed, EventsPerCase: 80})
		for range 20 {
			h := g.Case()
			s := domain.Fold(h[0].CaseID, h)
			if len(s.NotInformed) == 0 {
				continue
			}
			for _, r := range s.Restrictions {
				if r.Kind == domain.PlacementAddressSecret && r.LiftedSeq == 0 {
					for _, e := range h {
						if e.Type == domain.ObservationRecorded && e.Category == domain.CategoryDailyLife {
							e.Type = domain.PlacementChanged
							return s, e, r.From
						}
					}
				}
			}
		}
	}
	tb.Fatal("no generated case has a family not informed of a member under an address secret")
	return nil, domain.Event{}, time.Time{}
}

// FuzzSeeMatchesReference compares the decisions on any payload.
func FuzzSeeMatchesReference(f *testing.F) {
	for _, p := range mangleEvents {
		f.Add(p)
	}
	s, base, now := mangleCase(f)
	viewers := seeViewers(s)
	f.Fuzz(func(t *testing.T, payload []byte) {
		e := base
		e.Payload = payload
		for _, v := range viewers {
			if got, want := domain.See(s, v, e, now), referenceSee(s, v, e, now); !reflect.DeepEqual(got, want) {
				t.Fatalf("viewer %+v payload %q:\n got %#v\nwant %#v", v, payload, got, want)
			}
		}
	})
}
