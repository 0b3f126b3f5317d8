package audit

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Replay is a case as it was at a past date: the events recorded at or
// before it, the state folded from them, and who could read the case then.
type Replay struct {
	CaseID  domain.CaseID
	AsOf    time.Time
	Version uint64      // the case's version at AsOf
	Head    domain.Hash // its chain hash then
	State   *domain.State
	Events  []domain.Event // recorded at or before AsOf, in sequence order
	// Viewers are the auditor, every institution that had joined (members
	// and former members) and every recorded family member, at AsOf.
	Viewers []ViewerRef
}

// ViewerRef is a viewer of a replayed case, with a label for people.
type ViewerRef struct {
	Viewer domain.Viewer
	Label  string
}

// Seen is what the policy let one viewer see of one event at the replay's
// date, and why: Rule, and Basis (the consent id or the order reference)
// when one decided; Why says it in French with the consent or order found.
type Seen struct {
	ViewerRef
	Decision domain.Decision
	Why      string
}

// ErrNotRecordedYet: the event asked about was recorded after the replay's
// date (or does not exist).
var ErrNotRecordedYet = errors.New("event not recorded at that date")

// ReplayAsOf folds a case's events recorded at or before asOf (their
// recorded-at, the server's clock): what the system knew then. events are
// the case's events in sequence order, as read from the store.
func ReplayAsOf(id domain.CaseID, events []domain.Event, asOf time.Time) *Replay {
	r := &Replay{CaseID: id, AsOf: asOf, State: domain.NewState(id)}
	for _, e := range events {
		if e.RecordedAt.After(asOf) {
			break // a replay is a prefix of the history, even if clocks went back
		}
		r.State.Apply(e)
		r.Events = append(r.Events, e)
	}
	r.Version, r.Head = r.State.Version, r.State.Head
	r.Viewers = append(r.Viewers, ViewerRef{Viewer: domain.Viewer{Role: domain.RoleAuditor}, Label: "auditeur"})
	for _, m := range sortedMembers(r.State) {
		label := string(m.Institution) + " — " + m.Name
		if !m.Active() {
			label += " (a quitté le dossier)"
		}
		r.Viewers = append(r.Viewers, ViewerRef{Viewer: domain.Viewer{Role: domain.RoleProfessional, Institution: m.Institution}, Label: label})
	}
	for _, f := range sortedFamily(r.State) {
		r.Viewers = append(r.Viewers, ViewerRef{Viewer: domain.Viewer{Role: domain.RoleFamily, FamilyMember: f.ID},
			Label: fmt.Sprintf("%s (%s)", f.Name, f.Relationship)})
	}
	return r
}

// Who answers "who could see event seq at the replay's date, and why".
// ErrNotRecordedYet when the event was not recorded then.
func (r *Replay) Who(seq uint64) ([]Seen, error) {
	if seq == 0 || seq > r.Version {
		return nil, fmt.Errorf("%w: event %d, the case was at version %d on %s", ErrNotRecordedYet, seq, r.Version, r.AsOf.Format(time.RFC3339))
	}
	e := r.Events[seq-1]
	out := make([]Seen, len(r.Viewers))
	for i, v := range r.Viewers {
		d := domain.See(r.State, v.Viewer, e, r.AsOf)
		out[i] = Seen{ViewerRef: v, Decision: d, Why: Explain(r.State, e, d)}
	}
	return out, nil
}

// Count is how much of the case one viewer could see at the replay's date.
type Count struct {
	ViewerRef
	Full, Redacted, Hidden int
}

// Counts tells, per viewer, how many events they could see in full,
// redacted or not at all at the replay's date.
func (r *Replay) Counts() []Count {
	out := make([]Count, len(r.Viewers))
	for i, v := range r.Viewers {
		out[i].ViewerRef = v
		sight := domain.SightOf(r.State, v.Viewer, r.AsOf)
		for _, e := range r.Events {
			switch sight.See(e).Visibility {
			case domain.Full:
				out[i].Full++
			case domain.Redacted:
				out[i].Redacted++
			default:
				out[i].Hidden++
			}
		}
	}
	return out
}

// ruleWords says each rule of domain.See in French.
var ruleWords = map[string]string{
	"auditor":                    "auditeur : voit tout, chaque lecture est journalisée",
	"admin_no_case_access":       "l'administration technique n'a pas accès aux dossiers",
	"not_a_member":               "institution non membre du dossier",
	"left_case":                  "événement enregistré après le départ de l'institution",
	"not_family":                 "personne non enregistrée comme famille du dossier",
	"partner_excluded":           "institution exclue par une ordonnance",
	"health_care_member":         "membre soignant : voit les informations de santé",
	"health_consent":             "information de santé partagée par consentement",
	"health_needs_consent":       "information de santé : aucun consentement en vigueur ne couvre cette institution",
	"health_not_for_family":      "information de santé : la famille l'obtient du service de soins",
	"family_information_limited": "information de la famille limitée par une ordonnance",
	"family_not_informed":        "décision motivée de ne pas informer la famille de ce partenaire",
	"judicial_named":             "ordonnance qui nomme cette personne",
	"judicial_not_named":         "ordonnance qui ne nomme pas cette personne",
	"placement_address_secret":   "lieu d'accueil tenu secret par une ordonnance",
	"default_audience":           "public par défaut de la catégorie",
	"unknown_role":               "rôle inconnu",
	"unknown_category":           "catégorie inconnue",
}

// Explain says in French why decision d was taken for event e, naming the
// consent or the order that decided, as state st holds them.
func Explain(st *domain.State, e domain.Event, d domain.Decision) string {
	words, ok := ruleWords[d.Rule]
	if !ok {
		words = d.Rule
	}
	if d.Rule == "default_audience" {
		words += " « " + string(e.Category) + " »"
	}
	if len(d.Fields) > 0 {
		words += " ; champs retirés : " + strings.Join(d.Fields, ", ")
	}
	if d.Basis == "" {
		return words
	}
	if id, err := uuid.Parse(d.Basis); err == nil {
		if c, ok := st.Consents[id]; ok {
			who := c.GivenBy.String()
			if f, ok := st.Family[c.GivenBy]; ok {
				who = fmt.Sprintf("%s (%s)", f.Name, f.Relationship)
			}
			return fmt.Sprintf("%s : consentement %s donné par %s (événement %d), du %s au %s", words, c.ID, who, c.GivenSeq,
				day(c.From), day(c.Until))
		}
	}
	for _, r := range sortedRestrictions(st) {
		if r.OrderReference == d.Basis {
			return fmt.Sprintf("%s : ordonnance %s (%s, %s, événement %d), du %s au %s", words, r.OrderReference, r.Court, r.Kind,
				r.ImposedSeq, day(r.From), day(r.Until))
		}
	}
	return words + " : " + d.Basis
}

func day(t time.Time) string { return t.Format("2006-01-02") }

func sortedMembers(st *domain.State) []*domain.Member {
	ms := make([]*domain.Member, 0, len(st.Members))
	for _, m := range st.Members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *domain.Member) int { return cmp.Compare(a.JoinedSeq, b.JoinedSeq) })
	return ms
}

func sortedFamily(st *domain.State) []*domain.FamilyMember {
	fs := make([]*domain.FamilyMember, 0, len(st.Family))
	for _, f := range st.Family {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *domain.FamilyMember) int { return cmp.Compare(a.RecordedSeq, b.RecordedSeq) })
	return fs
}

func sortedRestrictions(st *domain.State) []*domain.Restriction {
	rs := make([]*domain.Restriction, 0, len(st.Restrictions))
	for _, r := range st.Restrictions {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *domain.Restriction) int { return cmp.Compare(a.ImposedSeq, b.ImposedSeq) })
	return rs
}
