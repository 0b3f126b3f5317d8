package projections

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// WhoSeesWhat tells, for each current member and each family member of a
// case, which information categories they see now (or at AsOf) and the rule,
// consent or order that decides it. It is computed by the domain policy
// itself (domain.See on an event of each category recorded at that time),
// from the access state folded from what the reader sees, so it never tells
// more than the reader's timeline.
type WhoSeesWhat struct {
	CaseID  domain.CaseID  `json:"caseId"`
	Version uint64         `json:"version"`
	At      time.Time      `json:"at"` // when the policy was evaluated
	AsOf    *time.Time     `json:"asOf,omitempty"`
	Members []MemberAccess `json:"members"`
	Family  []FamilyAccess `json:"family"`
}

// MemberAccess is what one member sees.
type MemberAccess struct {
	InstitutionRef
	Coordinator bool             `json:"coordinator"`
	Categories  []CategoryAccess `json:"categories"`
}

// FamilyAccess is what one family member sees.
type FamilyAccess struct {
	FamilyMember      domain.PersonID  `json:"familyMember"`
	Name              string           `json:"name"`
	Relationship      string           `json:"relationship"`
	ParentalAuthority bool             `json:"parentalAuthority"`
	Categories        []CategoryAccess `json:"categories"`
}

// CategoryAccess is the policy's decision for one category: full, redacted
// (Fields removed) or hidden; Rule names the rule that decided, Because says
// it in French, and Consent or Order is the consent or the judge's order
// that decided it (Decision.Basis), when one did.
type CategoryAccess struct {
	Category   domain.Category   `json:"category"`
	Visibility domain.Visibility `json:"visibility"`
	Fields     []string          `json:"fields,omitempty"`
	Rule       string            `json:"rule"`
	Because    string            `json:"because"`
	Consent    *ConsentRef       `json:"consent,omitempty"`
	Order      *OrderRef         `json:"order,omitempty"`
}

// ConsentRef is the consent a decision rests on.
type ConsentRef struct {
	ID      uuid.UUID `json:"id"`
	GivenBy string    `json:"givenBy"`
	From    time.Time `json:"from"`
	Until   time.Time `json:"until"`
}

// OrderRef is the order of the children's judge a decision rests on.
type OrderRef struct {
	Reference string                 `json:"reference"`
	Court     string                 `json:"court,omitempty"`
	Kind      domain.RestrictionKind `json:"kind,omitempty"`
	Until     *time.Time             `json:"until,omitempty"`
}

// probeTypes are the event types whose decisions stand for their category:
// those where the policy's redactions of the category show (a synthesis
// meeting's location, a placement's place of life).
var probeTypes = map[domain.Category]domain.EventType{
	domain.CategoryCoordination: domain.SynthesisMeetingHeld,
	domain.CategoryPlan:         domain.ObjectiveSet,
	domain.CategoryDailyLife:    domain.PlacementChanged,
	domain.CategoryHealth:       domain.ObservationRecorded,
	domain.CategoryJudicial:     domain.JudicialRestrictionImposed,
	domain.CategoryConsent:      domain.ConsentGiven,
}

var ruleExplanations = map[string]string{
	"auditor":                    "contrôle : accès complet, chaque lecture est journalisée",
	"not_a_member":               "n'est pas membre du dossier",
	"left_case":                  "a quitté le dossier : rien de ce qui a été enregistré depuis",
	"not_family":                 "n'est pas inscrit comme membre de la famille",
	"partner_excluded":           "écarté du dossier par une ordonnance du juge des enfants tant qu'elle est en vigueur",
	"health_care_member":         "membre soignant : partage au sein de l'équipe de soins (art. L1110-4 CSP)",
	"health_consent":             "information de santé partagée avec le consentement en vigueur d'un titulaire de l'autorité parentale",
	"health_needs_consent":       "information de santé : il faut un consentement en vigueur d'un titulaire de l'autorité parentale",
	"health_not_for_family":      "la famille reçoit les informations médicales du service de soins lui-même",
	"family_information_limited": "une ordonnance limite l'information de la famille à la coordination",
	"family_not_informed":        "décision motivée de ne pas informer la famille de l'entrée d'un partenaire",
	"judicial_named":             "ordonnances qui le ou la visent seulement",
	"judicial_not_named":         "ordonnances qui ne le ou la visent pas",
	"placement_address_secret":   "une ordonnance tient le lieu d'accueil secret : ce qui le révèle est retiré",
	"default_audience":           "destinataires habituels de cette catégorie",
	"unknown_category":           "catégorie inconnue : réservée au contrôle",
	"unknown_role":               "rôle inconnu",
	"admin_no_case_access":       "l'administration de l'annuaire ne donne pas accès aux dossiers",
}

func (m *models) whoSeesWhat(ctx context.Context, id domain.CaseID, v domain.Viewer, now, asOf time.Time) (WhoSeesWhat, error) {
	var out WhoSeesWhat
	err := m.read(ctx, id, v, now, asOf, accessTypes, func(h *history) error {
		if err := h.currentMembersOnly(v, "visibility_members_only", "Le tableau « qui voit quoi »"); err != nil {
			return err
		}
		if h.asOf {
			// Who could see what on a past date is the auditors' question:
			// anyone else would learn of consents and orders as they were.
			if err := domain.AuditorOnly(v, "visibility_as_of_auditors_only",
				"« qui voit quoi » à une date passée est réservé aux auditeurs ; sans asOf, le tableau montre les accès en vigueur"); err != nil {
				return err
			}
		}
		out = foldWhoSeesWhat(h, v)
		return nil
	})
	return out, err
}

func foldWhoSeesWhat(h *history, v domain.Viewer) WhoSeesWhat {
	seen := h.seenState(v)
	w := WhoSeesWhat{CaseID: h.id, Version: h.version, At: h.at, Members: []MemberAccess{}, Family: []FamilyAccess{}}
	if h.asOf {
		w.AsOf = timePtr(h.at)
	}
	for _, mb := range seen.Members {
		if !mb.Active() {
			continue
		}
		row := MemberAccess{InstitutionRef: InstitutionRef{Institution: mb.Institution, Name: mb.Name, Kind: mb.Kind},
			Coordinator: mb.Institution == seen.Coordinator}
		for _, c := range domain.Categories {
			row.Categories = append(row.Categories, decideCategory(seen, domain.Viewer{Role: domain.RoleProfessional, Institution: mb.Institution}, c, h.at))
		}
		w.Members = append(w.Members, row)
	}
	slices.SortFunc(w.Members, func(a, b MemberAccess) int {
		return cmp.Compare(seen.Members[a.Institution].JoinedSeq, seen.Members[b.Institution].JoinedSeq)
	})
	for _, fm := range seen.Family {
		row := FamilyAccess{FamilyMember: fm.ID, Name: fm.Name, Relationship: fm.Relationship, ParentalAuthority: fm.ParentalAuthority}
		for _, c := range domain.Categories {
			row.Categories = append(row.Categories, decideCategory(seen, domain.Viewer{Role: domain.RoleFamily, FamilyMember: fm.ID}, c, h.at))
		}
		w.Family = append(w.Family, row)
	}
	slices.SortFunc(w.Family, func(a, b FamilyAccess) int {
		return cmp.Compare(seen.Family[a.FamilyMember].RecordedSeq, seen.Family[b.FamilyMember].RecordedSeq)
	})
	return w
}

// decideCategory asks the policy what viewer v would see of an event of
// category c recorded at time at. A judicial event is probed as an order
// naming the family member, since family members see exactly those.
func decideCategory(st *domain.State, v domain.Viewer, c domain.Category, at time.Time) CategoryAccess {
	payload := []byte("{}")
	if c == domain.CategoryJudicial && v.Role == domain.RoleFamily {
		payload, _ = json.Marshal(map[string]any{"familyMembers": []domain.PersonID{v.FamilyMember}})
	}
	probe := domain.Event{CaseID: st.ID, Sequence: st.Version + 1, Type: probeTypes[c], SchemaVersion: domain.CurrentSchemaVersion,
		RecordedAt: at, OccurredAt: at, Category: c, Payload: payload}
	d := domain.See(st, v, probe, at)
	a := CategoryAccess{Category: c, Visibility: d.Visibility, Fields: redactedFields(d), Rule: d.Rule, Because: label(ruleExplanations, d.Rule)}
	if d.Basis == "" {
		return a
	}
	if id, err := uuid.Parse(d.Basis); err == nil {
		if consent, ok := st.Consents[id]; ok {
			a.Consent = &ConsentRef{ID: id, GivenBy: familyName(st, consent.GivenBy), From: consent.From, Until: consent.Until}
			return a
		}
	}
	a.Order = &OrderRef{Reference: d.Basis}
	var found *domain.Restriction
	for _, r := range st.Restrictions {
		if r.OrderReference == d.Basis && string(r.Kind) == d.Rule && r.ActiveAt(at) && (found == nil || r.ImposedSeq < found.ImposedSeq) {
			found = r
		}
	}
	if found != nil {
		a.Order.Court, a.Order.Kind, a.Order.Until = found.Court, found.Kind, timePtr(found.Until)
	}
	return a
}

func familyName(st *domain.State, p domain.PersonID) string {
	if f, ok := st.Family[p]; ok {
		return f.Name
	}
	return ""
}
