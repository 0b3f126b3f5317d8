package domain

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The policy's promises, checked on random histories: members of random
// kinds joining and leaving, family members, consents and orders of every
// kind given, imposed, withdrawn and lifted over random intervals, health and
// other events, placement changes, events this code does not know, and a
// random reading time.

const stranger InstitutionID = "stranger-99"

var unknownPerson = uuid.MustParse("00000000-0000-4000-8000-0000000000ee")

func TestPolicyProperties(t *testing.T) {
	histories := 2000
	if testing.Short() {
		histories = 200
	}
	const shards = 4
	for shard := range uint64(shards) {
		t.Run(fmt.Sprint("shard ", shard), func(t *testing.T) {
			t.Parallel()
			decided := map[string]int{}
			for seed := shard; seed < uint64(histories); seed += shards {
				r := rand.New(rand.NewPCG(seed, 0x6d61696c6c616765))
				h, m, now := genHistory(t, r)
				if err := checkPolicy(h, m, now, decided); err != nil {
					t.Fatalf("seed %d (now %s): %v", seed, now.Format(time.RFC3339), err)
				}
			}
			// The histories must reach every rule, or the properties prove little.
			for _, rule := range []string{"auditor", "not_a_member", "left_case", "not_family", "partner_excluded",
				"health_care_member", "health_consent", "health_needs_consent", "health_not_for_family",
				"family_information_limited", "family_not_informed", "judicial_named", "judicial_not_named",
				"placement_address_secret", "default_audience", "unknown_category", string(Redacted)} {
				if decided[rule] == 0 {
					t.Errorf("no history reached rule %q: %v", rule, decided)
				}
			}
		})
	}
}

func FuzzPolicy(f *testing.F) {
	f.Add(uint64(0), []byte{})
	f.Add(uint64(7), []byte("placement secret"))
	f.Add(uint64(42), bytes.Repeat([]byte{0xff, 0x00, 0x7f}, 40))
	f.Add(uint64(1<<63), []byte{12, 12, 12, 12, 12, 12, 12, 12, 7, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, seed uint64, data []byte) {
		r := rand.New(&bytesThenPCG{data: data, rest: rand.NewPCG(seed, seed>>1|1)})
		h, m, now := genHistory(t, r)
		if err := checkPolicy(h, m, now, nil); err != nil {
			t.Fatalf("now %s: %v", now.Format(time.RFC3339), err)
		}
	})
}

// bytesThenPCG draws from the fuzzer's bytes first, then from a PCG.
type bytesThenPCG struct {
	data []byte
	rest *rand.PCG
}

func (b *bytesThenPCG) Uint64() uint64 {
	if len(b.data) == 0 {
		return b.rest.Uint64()
	}
	var buf [8]byte
	n := copy(buf[:], b.data)
	b.data = b.data[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

// genModel is the generator's own record of the history, from which the
// checks recompute what the policy must decide without reading State.
type genModel struct {
	ever      []InstitutionID // every institution that joined, in order
	kinds     map[InstitutionID]InstitutionKind
	active    []InstitutionID
	former    []InstitutionID
	family    []PersonID
	consents  []*genConsent
	orders    []*genOrder
	locations []string // every value of a location field in the history
	n         int      // counter for unique values
}

type genConsent struct {
	id                      uuid.UUID
	insts                   []InstitutionID
	kinds                   []InstitutionKind
	cats                    []Category
	from, until, withdrawAt time.Time
	withdrawn               bool
}

type genOrder struct {
	id                  uuid.UUID
	ref                 string
	kind                RestrictionKind
	family              []PersonID
	from, until, liftAt time.Time
	lifted              bool
}

func between(t, from, until time.Time, ended bool, endedAt time.Time) bool {
	return !t.Before(from) && t.Before(until) && (!ended || t.Before(endedAt))
}

// healthConsented reports whether a consent in force at now names the
// institution or its kind, and health.
func (m *genModel) healthConsented(inst InstitutionID, now time.Time) bool {
	for _, c := range m.consents {
		if between(now, c.from, c.until, c.withdrawn, c.withdrawAt) && slices.Contains(c.cats, CategoryHealth) &&
			(slices.Contains(c.insts, inst) || slices.Contains(c.kinds, m.kinds[inst])) {
			return true
		}
	}
	return false
}

// addressSecret reports whether a placement_address_secret in force at now
// names the family member.
func (m *genModel) addressSecret(p PersonID, now time.Time) bool {
	for _, o := range m.orders {
		if o.kind == PlacementAddressSecret && slices.Contains(o.family, p) && between(now, o.from, o.until, o.lifted, o.liftAt) {
			return true
		}
	}
	return false
}

func (m *genModel) unique(prefix string) string {
	m.n++
	return fmt.Sprintf("%s-%03dz", prefix, m.n)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func subset[T any](r *rand.Rand, xs []T) []T {
	var out []T
	for _, x := range xs {
		if r.IntN(3) == 0 {
			out = append(out, x)
		}
	}
	return out
}

func randomDuration(r *rand.Rand, max time.Duration) time.Duration {
	return time.Duration(r.Int64N(int64(max)))
}

// genHistory draws a case history from r, and the time to read it at.
func genHistory(tb testing.TB, r *rand.Rand) (*history, *genModel, time.Time) {
	h := newHistory(tb)
	m := &genModel{ever: []InstitutionID{ase}, kinds: map[InstitutionID]InstitutionKind{ase: KindASE}, active: []InstitutionID{ase}}
	h.open()
	for range 3 + r.IntN(30) {
		h.clock = h.clock.Add(randomDuration(r, 72*time.Hour))
		m.step(h, r)
	}
	span := h.clock.Sub(t0) + 60*24*time.Hour
	return h, m, t0.Add(-48*time.Hour + randomDuration(r, span))
}

func (m *genModel) step(h *history, r *rand.Rand) {
	by := pick(r, m.active)
	switch r.IntN(17) {
	case 0, 1:
		m.join(h, r)
	case 2:
		m.leave(h, r)
	case 3:
		if len(m.family) < 3 {
			p := uuid.UUID{}
			binary.BigEndian.PutUint64(p[:8], r.Uint64())
			binary.BigEndian.PutUint64(p[8:], r.Uint64())
			m.family = append(m.family, p)
			h.family(p, m.unique("parent"))
		}
	case 4, 5:
		m.consent(h, r)
	case 6:
		if c := pickOpen(r, m.consents, func(c *genConsent) bool { return !c.withdrawn }); c != nil {
			e := h.withdraw(c.id, unknownPerson)
			c.withdrawn, c.withdrawAt = true, e.RecordedAt
		}
	case 7, 8:
		m.restrict(h, r)
	case 9:
		if o := pickOpen(r, m.orders, func(o *genOrder) bool { return !o.lifted }); o != nil {
			e := h.lift(o.id, o.ref)
			o.lifted, o.liftAt = true, e.RecordedAt
		}
	case 10, 11:
		t := pick(r, []EventType{ObservationRecorded, NeedIdentified, DecisionRecorded, CrisisDeclared, InterventionAgreed})
		payload := map[string]any{"summary": "note about " + string(pick(r, m.ever)), "agreeing": subset(r, m.active),
			"institution": pick(r, m.ever), "description": m.unique("texte")}
		h.record(t, pick(r, AllowedCategories(t)), by, payload)
	case 12:
		m.placement(h, r, by)
	case 13:
		loc := m.unique("salle")
		m.locations = append(m.locations, loc)
		h.record(SynthesisMeetingHeld, CategoryCoordination, by, SynthesisMeetingHeldPayload{Meeting: uuid.New(),
			Participants: subset(r, m.active), FamilyPresent: subset(r, m.family), Location: loc})
	case 14:
		about := pick(r, m.ever)
		if r.IntN(2) == 0 {
			h.record(FamilyNotInformed, CategoryCoordination, ase, FamilyNotInformedPayload{Institution: about, Reason: "intérêt de l'enfant", ReviewOn: h.clock})
		} else {
			h.record(FamilyInformed, CategoryCoordination, ase, FamilyInformedPayload{Institution: about, FamilyMembers: m.family, How: "courrier"})
		}
	case 15:
		h.record(ReferentChanged, CategoryCoordination, by, ReferentChangedPayload{Institution: pick(r, m.ever), Referent: Referent{Name: m.unique("referent")}})
	case 16:
		m.unknown(h, r, by)
	}
}

func pickOpen[T any](r *rand.Rand, xs []T, open func(T) bool) T {
	var zero T
	var candidates []T
	for _, x := range xs {
		if open(x) {
			candidates = append(candidates, x)
		}
	}
	if len(candidates) == 0 {
		return zero
	}
	return pick(r, candidates)
}

func (m *genModel) join(h *history, r *rand.Rand) {
	if len(m.former) > 0 && r.IntN(3) == 0 {
		i := r.IntN(len(m.former))
		inst := m.former[i]
		m.former = slices.Delete(m.former, i, i+1)
		m.active = append(m.active, inst)
		h.join(inst, m.kinds[inst], "Etablissement "+string(inst))
		return
	}
	kind := pick(r, InstitutionKinds)
	inst := InstitutionID(fmt.Sprintf("%s-%02d", kind, len(m.ever)))
	m.ever, m.active = append(m.ever, inst), append(m.active, inst)
	m.kinds[inst] = kind
	h.join(inst, kind, "Etablissement "+string(inst))
}

func (m *genModel) leave(h *history, r *rand.Rand) {
	if len(m.active) < 2 {
		return
	}
	i := 1 + r.IntN(len(m.active)-1) // never the coordinator, active[0]
	inst := m.active[i]
	m.active = slices.Delete(m.active, i, i+1)
	m.former = append(m.former, inst)
	h.leave(inst)
}

func (m *genModel) consent(h *history, r *rand.Rand) {
	from := h.clock.Add(-30*24*time.Hour + randomDuration(r, 40*24*time.Hour))
	c := &genConsent{insts: subset(r, append(slices.Clone(m.ever), stranger)), kinds: subset(r, InstitutionKinds),
		cats: subset(r, Categories), from: from, until: from.Add(time.Hour + randomDuration(r, 60*24*time.Hour))}
	if r.IntN(2) == 0 {
		c.cats = append(c.cats, CategoryHealth)
	}
	by := unknownPerson
	if len(m.family) > 0 {
		by = pick(r, m.family)
	}
	c.id = h.consent(by, c.insts, c.kinds, c.cats, c.from, c.until)
	m.consents = append(m.consents, c)
}

func (m *genModel) restrict(h *history, r *rand.Rand) {
	from := h.clock.Add(-30*24*time.Hour + randomDuration(r, 40*24*time.Hour))
	o := &genOrder{ref: m.unique("JE"), kind: pick(r, RestrictionKinds), family: subset(r, append(slices.Clone(m.family), unknownPerson)),
		from: from, until: from.Add(time.Hour + randomDuration(r, 90*24*time.Hour))}
	if len(m.family) > 0 && r.IntN(2) == 0 {
		o.family = append(o.family, pick(r, m.family))
	}
	if r.IntN(3) == 0 {
		o.kind = PlacementAddressSecret
	}
	o.id, _ = h.restrict(o.kind, o.ref, o.family, subset(r, append(slices.Clone(m.ever), stranger)), o.from, o.until)
	m.orders = append(m.orders, o)
}

func (m *genModel) placement(h *history, r *rand.Rand, by InstitutionID) {
	var homes []InstitutionID
	for _, i := range m.ever {
		if m.kinds[i].PlaceOfLife() {
			homes = append(homes, i)
		}
	}
	host := InstitutionID(m.unique("hote"))
	if len(homes) > 0 && r.IntN(3) > 0 {
		host = pick(r, homes)
	}
	p := PlacementChangedPayload{Planned: r.IntN(2) == 0, Reason: m.unique("motif"), PlaceOfLife: m.unique("lieu"), Address: m.unique("adresse"), HostInstitution: host}
	if r.IntN(4) == 0 {
		p.Address = ""
	}
	m.locations = append(m.locations, p.PlaceOfLife, string(p.HostInstitution))
	if p.Address != "" {
		m.locations = append(m.locations, p.Address)
	}
	h.record(PlacementChanged, CategoryDailyLife, by, p)
}

// unknown records an event this code does not know: a type outside the
// catalogue, or a newer schema of a placement change, in any category.
func (m *genModel) unknown(h *history, r *rand.Rand, by InstitutionID) {
	loc := m.unique("lieu")
	m.locations = append(m.locations, loc)
	e := Event{Type: "FutureEvent", SchemaVersion: 1, Category: pick(r, append(slices.Clone(Categories), "finance")), Actor: Actor{Institution: by}}
	e.Payload = json.RawMessage(fmt.Sprintf(`{"note":%q,"location":%q}`, m.unique("futur"), loc))
	if r.IntN(2) == 0 {
		e.Type, e.SchemaVersion = PlacementChanged, 2
		e.Payload = json.RawMessage(fmt.Sprintf(`{"placeOfLife":%q,"planned":true}`, loc))
	}
	if r.IntN(5) == 0 {
		e.Payload = json.RawMessage(fmt.Sprintf(`[%q]`, loc))
	}
	h.recordEvent(e)
}

var locationKeys = []string{"placeOfLife", "address", "hostInstitution", "location"}

// checkPolicy checks every viewer's view of every event, and counts the
// decisions by rule (and by visibility) in decided when not nil.
func checkPolicy(h *history, m *genModel, now time.Time, decided map[string]int) error {
	s := h.state
	type viewer struct {
		v     Viewer
		check func(e Event, d Decision, raw []byte) error
		// inJSON: the check reads the view's JSON (raw is nil otherwise,
		// unless the view is redacted).
		inJSON bool
	}
	var viewers []viewer
	viewers = append(viewers, viewer{v: Viewer{Role: RoleAuditor}, check: func(e Event, d Decision, _ []byte) error {
		if d.Visibility != Full {
			return fmt.Errorf("auditor got %+v", d)
		}
		return nil
	}})
	for _, inst := range m.ever {
		care := m.kinds[inst].Care()
		viewers = append(viewers, viewer{v: professional(inst), check: func(e Event, d Decision, _ []byte) error {
			// (a) health reaches a non-care member only under a consent in force now.
			if e.Category == CategoryHealth && !care && d.Visibility != Hidden && !m.healthConsented(inst, now) {
				return fmt.Errorf("(a) %s (%s) sees health event %d without consent: %+v", inst, m.kinds[inst], e.Sequence, d)
			}
			return nil
		}})
	}
	for _, p := range m.family {
		secret := m.addressSecret(p, now)
		viewers = append(viewers, viewer{v: parent(p), inJSON: secret, check: func(e Event, d Decision, raw []byte) error {
			// (b) the family never gets health.
			if e.Category == CategoryHealth && d.Visibility != Hidden {
				return fmt.Errorf("(b) family %s sees health event %d: %+v", p, e.Sequence, d)
			}
			// (c) under an address secret, no location key nor value.
			if secret {
				for _, k := range locationKeys {
					if bytes.Contains(raw, []byte(`"`+k+`":`)) {
						return fmt.Errorf("(c) family %s under an address secret gets key %q: %s", p, k, raw)
					}
				}
				for _, v := range m.locations {
					if bytes.Contains(raw, []byte(v)) {
						return fmt.Errorf("(c) family %s under an address secret gets location %q: %s", p, v, raw)
					}
				}
			}
			return nil
		}})
	}
	onlyStubs := func(e Event, d Decision, _ []byte) error {
		// (d) strangers get only stubs (whose JSON TestViewStubCarriesOnlySequenceAndHashes checks).
		v := View(e, d)
		stub := v.Sequence == e.Sequence && v.LeafHash == e.LeafHash && v.ChainHash == e.ChainHash && v.Visibility == Hidden &&
			v.ID == nil && v.CaseID == nil && v.Type == "" && v.SchemaVersion == 0 && v.RecordedAt == nil && v.OccurredAt == nil &&
			v.Actor == nil && v.Category == "" && v.CorrelationID == nil && v.CausationID == nil && v.Salt == nil &&
			v.Payload == nil && v.Position == nil && v.RedactedFields == nil && !v.Known
		if d.Visibility != Hidden || !stub {
			return fmt.Errorf("(d) a stranger gets %+v", v)
		}
		return nil
	}
	viewers = append(viewers, viewer{v: professional(stranger), check: onlyStubs}, viewer{v: parent(unknownPerson), check: onlyStubs})

	for _, vw := range viewers {
		chain := NewChainVerifier(s.ID)
		for _, e := range h.events {
			d := See(s, vw.v, e, now)
			if decided != nil {
				decided[d.Rule]++
				decided[string(d.Visibility)]++
			}
			view := View(e, d)
			if err := chain.Link(view.Sequence, view.LeafHash, view.ChainHash); err != nil {
				return fmt.Errorf("%+v: %w", vw.v, err)
			}
			var raw []byte
			if vw.inJSON || view.Visibility == Redacted {
				var err error
				if raw, err = json.Marshal(view); err != nil {
					return fmt.Errorf("%+v: event %d: %w", vw.v, e.Sequence, err)
				}
			}
			if err := checkView(d, view, raw); err != nil {
				return fmt.Errorf("%+v: event %d: %w", vw.v, e.Sequence, err)
			}
			if err := vw.check(e, d, raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkView checks that a view has the shape its decision says.
func checkView(d Decision, v EventView, raw []byte) error {
	want := d.Visibility
	if want != Full && want != Redacted {
		want = Hidden
	}
	switch {
	case v.Visibility != want:
		return fmt.Errorf("view %s for decision %s", v.Visibility, d.Visibility)
	case v.Visibility == Hidden && (v.ID != nil || v.Payload != nil || v.Actor != nil):
		return fmt.Errorf("stub carries content: %s", raw)
	case v.Visibility == Redacted && v.Salt != nil:
		return fmt.Errorf("redacted view carries the salt: %s", raw)
	}
	if v.Visibility != Redacted || v.Payload == nil || slices.Equal(d.Fields, []string{"actor"}) {
		return nil
	}
	members, ok := objectMembers(v.Payload)
	if !ok {
		return fmt.Errorf("redacted payload is not an object: %s", v.Payload)
	}
	for _, mb := range members {
		for _, f := range d.Fields {
			if strings.EqualFold(mb.Key, f) {
				return fmt.Errorf("redacted payload keeps %q: %s", f, v.Payload)
			}
		}
	}
	return nil
}
