// Package generate makes realistic, seeded case histories for benchmarks,
// scale tests and rebuild measurements: members of every kind joining and
// leaving, family members, consents given and withdrawn, judicial orders,
// health information, placement changes (planned and unplanned), meetings,
// decisions and crises.
//
// Every event goes through the real decider (domain.Decide), is sealed with
// the hash chain (domain.Seal) and applied (State.Apply), so a generated
// history is valid and verifies like a recorded one. The same seed gives the
// same histories (ids, salts and times included).
package generate

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Institution is an institution of the generated territory.
type Institution struct {
	ID          domain.InstitutionID
	Kind        domain.InstitutionKind
	Name        string
	Departement string
}

// Options shape the generated data.
type Options struct {
	Seed int64
	// Departements to spread cases over (default 35, 22, 29, 56, 44).
	Departements []string
	// EventsPerCase is the mean number of events of a case (default 50);
	// cases vary between half and one and a half times it.
	EventsPerCase int
	// Start is the earliest opening date (default 2024-01-01 UTC); cases
	// open over the two following years.
	Start time.Time
	// Canaries plants a unique token (Canary) in every free-text field of
	// every event (every field of Go type string, nested ones included),
	// so that a test can tell, by searching for it, where an event's
	// content went. A command the planted text makes invalid is recorded
	// without it.
	Canaries bool
}

func (o Options) withDefaults() Options {
	if len(o.Departements) == 0 {
		o.Departements = []string{"35", "22", "29", "56", "44"}
	}
	if o.EventsPerCase <= 0 {
		o.EventsPerCase = 50
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC)
	}
	return o
}

// perDepartement is how many institutions of each kind a département has.
var perDepartement = map[domain.InstitutionKind]int{
	domain.KindASE: 1, domain.KindMECS: 6, domain.KindFoster: 2, domain.KindDITEP: 3, domain.KindCMP: 3,
	domain.KindAEMO: 2, domain.KindAED: 2, domain.KindSchool: 8, domain.KindMDPH: 1, domain.KindPJJ: 1,
}

// Territory returns the institutions of the generated territory, to register
// in a directory.
func Territory(opts Options) []Institution {
	opts = opts.withDefaults()
	var out []Institution
	for _, dep := range opts.Departements {
		for _, kind := range domain.InstitutionKinds {
			for i := range perDepartement[kind] {
				out = append(out, institution(dep, kind, i))
			}
		}
	}
	return out
}

func institution(dep string, kind domain.InstitutionKind, i int) Institution {
	id := domain.InstitutionID(fmt.Sprintf("%s-%s-%02d", kind, dep, i+1))
	if kind == domain.KindASE {
		id = domain.InstitutionID("ase-" + dep)
	}
	return Institution{ID: id, Kind: kind, Name: fmt.Sprintf("%s %s n°%d", kindNames[kind], dep, i+1), Departement: dep}
}

var kindNames = map[domain.InstitutionKind]string{
	domain.KindASE: "ASE", domain.KindMECS: "MECS", domain.KindFoster: "Placement familial", domain.KindDITEP: "DITEP",
	domain.KindCMP: "CMP", domain.KindAEMO: "AEMO", domain.KindAED: "AED", domain.KindSchool: "Collège",
	domain.KindMDPH: "MDPH", domain.KindPJJ: "PJJ", domain.KindOther: "Association",
}

// Generator makes case histories from one seed.
type Generator struct {
	opts Options
	rnd  *rand.Rand
	// canaries counts the tokens planted (Options.Canaries).
	canaries int
	n        uint64 // cases made
}

// New returns a generator.
func New(opts Options) *Generator {
	opts = opts.withDefaults()
	return &Generator{opts: opts, rnd: rand.New(rand.NewPCG(uint64(opts.Seed), 0x6d61696c6c616765))}
}

// Case returns the next case's whole history, sealed and hash-chained.
func (g *Generator) Case() []domain.Event {
	g.n++
	c := &caseMaker{g: g, rnd: g.rnd}
	return c.make()
}

// caseMaker records one case through the decider.
type caseMaker struct {
	g      *Generator
	rnd    *rand.Rand
	st     *domain.State
	events []domain.Event
	now    time.Time
	dep    string
	coord  domain.InstitutionID
	// members by kind, as currently joined
	members []Institution
	family  []domain.PersonID
	needs   []uuid.UUID
	objs    []uuid.UUID
	ivs     []uuid.UUID
	crises  []uuid.UUID
	consent []uuid.UUID
	orders  []uuid.UUID
}

func (c *caseMaker) uuid() uuid.UUID {
	var u uuid.UUID
	hi, lo := c.rnd.Uint64(), c.rnd.Uint64()
	for i := range 8 {
		u[i], u[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

func (c *caseMaker) pick(kind domain.InstitutionKind) Institution {
	return institution(c.dep, kind, c.rnd.IntN(perDepartement[kind]))
}

// record decides a command as actor at the current time and applies the
// events; a refusal is a bug in the generator.
func (c *caseMaker) record(actor domain.InstitutionID, cat domain.Category, p domain.Payload) bool {
	cmd := domain.Command{Type: p.EventType(), Category: cat, Role: domain.RoleProfessional,
		Actor: domain.Actor{Institution: actor, Professional: "référent " + string(actor)}, Payload: p, OccurredAt: c.now.Add(-time.Duration(c.rnd.IntN(72)) * time.Hour)}
	decided, err := domain.Decide(c.st, cmd, c.now)
	if c.g.opts.Canaries {
		if planted, ok := c.g.plant(p); ok {
			cmd.Payload = planted
			c.g.canaries++
			cmd.Actor.Professional += fmt.Sprintf(" ⟦c%d⟧", c.g.canaries)
			if d, perr := domain.Decide(c.st, cmd, c.now); perr == nil {
				decided, err = d, nil
			}
		}
	}
	if err != nil {
		return false
	}
	ids := make([]uuid.UUID, len(decided))
	salts := make([][]byte, len(decided))
	for i := range decided {
		ids[i] = c.uuid()
		salt := c.uuid()
		salts[i] = salt[:]
	}
	for _, e := range domain.Seal(c.st, decided, ids, salts, c.now) {
		c.st.Apply(e)
		c.events = append(c.events, e)
	}
	return true
}

func (c *caseMaker) advance(maxHours int) {
	c.now = c.now.Add(time.Duration(1+c.rnd.IntN(maxHours))*time.Hour + time.Duration(c.rnd.IntN(3600))*time.Second)
}

func (c *caseMaker) make() []domain.Event {
	g := c.g
	id := c.uuid()
	c.st = domain.NewState(id)
	c.dep = g.opts.Departements[c.rnd.IntN(len(g.opts.Departements))]
	c.now = g.opts.Start.Add(time.Duration(c.rnd.IntN(2*365*24)) * time.Hour)
	c.coord = domain.InstitutionID("ase-" + c.dep)
	target := g.opts.EventsPerCase/2 + c.rnd.IntN(g.opts.EventsPerCase+1)
	frame := domain.FrameAdministrative
	if c.rnd.IntN(3) > 0 {
		frame = domain.FrameJudicial
	}
	birth := c.now.AddDate(-c.rnd.IntN(18), -c.rnd.IntN(12), 0)
	c.record(c.coord, "", &domain.CaseOpenedPayload{ChildReference: fmt.Sprintf("%s-%06d", c.dep, g.n), LegalFrame: frame,
		Departement: c.dep, Coordinator: c.coord, CoordinatorKind: domain.KindASE, CoordinatorName: "ASE " + c.dep,
		Referent: domain.Referent{Name: "Référent ASE"}, ChildBirthMonth: birth.Format("2006-01")})
	c.members = []Institution{{ID: c.coord, Kind: domain.KindASE, Departement: c.dep}}
	for i := range 1 + c.rnd.IntN(2) {
		p := c.uuid()
		c.family = append(c.family, p)
		c.record(c.coord, "", &domain.FamilyMemberRecordedPayload{FamilyMember: p, Name: fmt.Sprintf("Parent %d", i+1),
			Relationship: []string{"mère", "père"}[i%2], ParentalAuthority: c.rnd.IntN(5) > 0})
	}
	// The usual partners: a place of life, care, school, open environment.
	for _, kind := range []domain.InstitutionKind{[]domain.InstitutionKind{domain.KindMECS, domain.KindFoster}[c.rnd.IntN(2)], domain.KindSchool} {
		c.join(c.pick(kind))
	}
	if c.rnd.IntN(2) == 0 {
		c.join(c.pick(domain.KindDITEP))
	}
	if c.rnd.IntN(2) == 0 {
		c.join(c.pick(domain.KindCMP))
	}
	for len(c.events) < target && !c.st.Closed {
		c.advance(24 * 14)
		c.step()
	}
	return c.events
}

func (c *caseMaker) join(inst Institution) {
	if c.st.IsMember(inst.ID) {
		return
	}
	if c.record(c.coord, "", &domain.PartnerJoinedPayload{Institution: inst.ID, Kind: inst.Kind, Name: inst.Name,
		Referent: domain.Referent{Name: "Référent " + string(inst.ID)}, Reason: "entrée dans le dossier"}) {
		c.members = append(c.members, inst)
		if c.rnd.IntN(6) > 0 {
			c.record(c.coord, "", &domain.FamilyInformedPayload{Institution: inst.ID, FamilyMembers: c.family[:1], How: "entretien"})
		} else {
			c.record(c.coord, "", &domain.FamilyNotInformedPayload{Institution: inst.ID, Reason: "information contraire à l'intérêt de l'enfant", ReviewOn: c.now.AddDate(0, 1, 0)})
		}
	}
}

func (c *caseMaker) member() Institution {
	for {
		m := c.members[c.rnd.IntN(len(c.members))]
		if c.st.IsMember(m.ID) {
			return m
		}
	}
}

func (c *caseMaker) careMember() (Institution, bool) {
	for _, m := range c.members {
		if m.Kind.Care() && c.st.IsMember(m.ID) {
			return m, true
		}
	}
	return Institution{}, false
}

// step records one more event, chosen with weights that look like a case's
// life: mostly observations and plan work, sometimes orders and crises.
func (c *caseMaker) step() {
	r := c.rnd.IntN(100)
	m := c.member()
	switch {
	case r < 22:
		cat := domain.CategoryDailyLife
		author := m
		if care, ok := c.careMember(); ok && c.rnd.IntN(3) == 0 {
			cat, author = domain.CategoryHealth, care
		}
		impact := []string{"", "positive", "negative"}[c.rnd.IntN(3)]
		c.record(author.ID, cat, &domain.ObservationRecordedPayload{Summary: "Observation du quotidien partagée avec les partenaires.", Impact: impact})
	case r < 30:
		n := c.uuid()
		cat := domain.CategoryPlan
		if m.Kind.Care() {
			cat = domain.CategoryHealth
		}
		if c.record(m.ID, cat, &domain.NeedIdentifiedPayload{Need: n, Domain: []string{"safety", "health", "schooling", "relationships"}[c.rnd.IntN(4)], Description: "Besoin identifié conjointement."}) {
			c.needs = append(c.needs, n)
		}
	case r < 37:
		o := c.uuid()
		var needs []uuid.UUID
		if len(c.needs) > 0 {
			needs = []uuid.UUID{c.needs[c.rnd.IntN(len(c.needs))]}
		}
		if c.record(m.ID, "", &domain.ObjectiveSetPayload{Objective: o, Needs: needs, Title: "Objectif du projet partagé", DueDate: ptr(c.now.AddDate(0, 6, 0))}) {
			c.objs = append(c.objs, o)
		}
	case r < 42 && len(c.objs) > 0:
		status := []domain.ObjectiveStatus{domain.ObjectiveInProgress, domain.ObjectiveAchieved, domain.ObjectivePartiallyAchieved, domain.ObjectiveNotAchieved}[c.rnd.IntN(4)]
		c.record(m.ID, "", &domain.ObjectiveReviewedPayload{Objective: c.objs[c.rnd.IntN(len(c.objs))], Status: status})
	case r < 50:
		iv := c.uuid()
		p := &domain.InterventionAgreedPayload{Intervention: iv, Institution: m.ID, Description: "Intervention convenue",
			Modalities: "accompagnement individuel", Timing: "hebdomadaire", Start: c.now}
		if c.rnd.IntN(4) == 0 && len(c.family) > 0 {
			p.Contacts = []domain.ContactArrangement{{FamilyMember: c.family[0], Supervised: true, ThirdParty: "Espace rencontre"}}
		}
		if c.record(m.ID, "", p) {
			c.ivs = append(c.ivs, iv)
		}
	case r < 54 && len(c.ivs) > 0:
		iv := c.ivs[c.rnd.IntN(len(c.ivs))]
		if c.rnd.IntN(2) == 0 {
			c.record(m.ID, "", &domain.InterventionChangedPayload{Intervention: iv, Modalities: "accompagnement renforcé", Timing: "deux fois par semaine", Reason: "point d'étape"})
		} else {
			c.record(m.ID, "", &domain.InterventionEndedPayload{Intervention: iv, Reason: "objectif atteint"})
		}
	case r < 58:
		var parts []domain.InstitutionID
		for _, mm := range c.members {
			if c.st.IsMember(mm.ID) {
				parts = append(parts, mm.ID)
			}
		}
		c.record(c.coord, "", &domain.SynthesisMeetingHeldPayload{Meeting: c.uuid(), Participants: parts, ChildHeard: c.rnd.IntN(2) == 0,
			Decisions: []string{"Poursuite du projet partagé"}, NextReview: ptr(c.now.AddDate(0, 6, 0))})
	case r < 62:
		c.record(m.ID, "", &domain.DecisionRecordedPayload{Decision: c.uuid(), Kind: "orientation", Summary: "Décision de coopération",
			Agreeing: []domain.InstitutionID{c.coord}, Categories: []domain.Category{domain.CategoryPlan}})
	case r < 66:
		planned := c.rnd.IntN(3) > 0
		host := c.pick([]domain.InstitutionKind{domain.KindMECS, domain.KindFoster}[c.rnd.IntN(2)])
		c.join(host)
		c.record(m.ID, "", &domain.PlacementChangedPayload{Planned: planned, Reason: "changement de lieu d'accueil",
			PlaceOfLife: host.Name, Address: fmt.Sprintf("%d rue des Lilas, %s000", 1+c.rnd.IntN(99), c.dep), HostInstitution: host.ID})
	case r < 72 && len(c.family) > 0:
		holder := c.parentalAuthority()
		if holder == uuid.Nil {
			return
		}
		if len(c.consent) > 0 && c.rnd.IntN(3) == 0 {
			k := c.rnd.IntN(len(c.consent))
			if c.record(m.ID, "", &domain.ConsentWithdrawnPayload{Consent: c.consent[k], WithdrawnBy: holder}) {
				c.consent = append(c.consent[:k], c.consent[k+1:]...)
			}
			return
		}
		cons := c.uuid()
		p := &domain.ConsentGivenPayload{Consent: cons, GivenBy: holder, Categories: []domain.Category{domain.CategoryHealth},
			From: c.now, Until: c.now.AddDate(1, 0, 0)}
		if c.rnd.IntN(2) == 0 {
			p.Kinds = []domain.InstitutionKind{domain.KindMECS, domain.KindFoster}
		} else {
			p.Institutions = []domain.InstitutionID{m.ID}
		}
		if c.record(m.ID, "", p) {
			c.consent = append(c.consent, cons)
		}
	case r < 77 && len(c.family) > 0:
		if len(c.orders) > 0 && c.rnd.IntN(3) == 0 {
			k := c.rnd.IntN(len(c.orders))
			r := c.st.Restrictions[c.orders[k]]
			if c.record(c.coord, "", &domain.JudicialRestrictionLiftedPayload{Restriction: r.ID, OrderReference: r.OrderReference, Reason: "mainlevée"}) {
				c.orders = append(c.orders[:k], c.orders[k+1:]...)
			}
			return
		}
		kind := domain.RestrictionKinds[c.rnd.IntN(len(domain.RestrictionKinds))]
		p := &domain.JudicialRestrictionImposedPayload{Restriction: c.uuid(), Kind: kind, OrderReference: fmt.Sprintf("TPE %s %d/%05d", c.dep, c.now.Year()%100, c.rnd.IntN(99999)),
			Court: "Tribunal pour enfants", From: c.now, Until: c.now.AddDate(1, 0, 0)}
		if kind == domain.PartnerExcluded {
			p.Institutions = []domain.InstitutionID{c.member().ID}
			if p.Institutions[0] == c.coord {
				return
			}
		} else {
			p.FamilyMembers = []domain.PersonID{c.family[c.rnd.IntN(len(c.family))]}
		}
		if kind == domain.VisitsSupervised {
			p.ThirdParty = "Espace rencontre"
		}
		if c.record(c.coord, "", p) {
			c.orders = append(c.orders, p.Restriction)
		}
	case r < 81:
		if len(c.crises) > 0 && c.rnd.IntN(2) == 0 {
			c.record(m.ID, "", &domain.CrisisResolvedPayload{Crisis: c.crises[0], Outcome: "situation apaisée"})
			c.crises = c.crises[1:]
			return
		}
		cr := c.uuid()
		if c.record(m.ID, "", &domain.CrisisDeclaredPayload{Crisis: cr, Description: "Crise : fugue de 24 h",
			OnCall: []domain.OnCall{{Institution: c.coord, Contact: "astreinte ASE"}}, Protocol: "protocole de crise partagé"}) {
			c.crises = append(c.crises, cr)
		}
	case r < 84:
		c.join(c.pick([]domain.InstitutionKind{domain.KindAEMO, domain.KindAED, domain.KindCMP, domain.KindDITEP, domain.KindPJJ, domain.KindMDPH}[c.rnd.IntN(6)]))
	case r < 86:
		if m.ID != c.coord {
			c.record(c.coord, "", &domain.PartnerLeftPayload{Institution: m.ID, Reason: "fin d'intervention"})
		}
	case r < 88:
		c.record(m.ID, "", &domain.ReferentChangedPayload{Institution: m.ID, Referent: domain.Referent{Name: "Nouveau référent " + string(m.ID)}, Reason: "départ du référent"})
	case r < 89 && len(c.events) > 40:
		c.record(c.coord, "", &domain.CaseClosedPayload{Reason: "end_of_measure"})
	default:
		c.record(m.ID, "", &domain.ObservationRecordedPayload{Summary: "Nouvelles de la semaine."})
	}
}

func (c *caseMaker) parentalAuthority() domain.PersonID {
	for _, p := range c.family {
		if c.st.Family[p].ParentalAuthority {
			return p
		}
	}
	return uuid.Nil
}

func ptr[T any](v T) *T { return &v }
