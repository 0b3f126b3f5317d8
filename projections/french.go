package projections

import (
	"fmt"
	"strings"
	"time"

	"github.com/maillage/maillage/domain"
)

// The words professionals read: labels and the plain-French description of
// each event of the chronology.

var kindLabels = map[domain.InstitutionKind]string{
	domain.KindASE: "ASE", domain.KindMECS: "MECS", domain.KindDITEP: "DITEP", domain.KindAEMO: "AEMO", domain.KindAED: "AED",
	domain.KindCMP: "CMP", domain.KindSchool: "établissement scolaire", domain.KindMDPH: "MDPH", domain.KindPJJ: "PJJ",
	domain.KindFoster: "placement familial", domain.KindOther: "autre partenaire",
}

var categoryLabels = map[domain.Category]string{
	domain.CategoryCoordination: "coordination", domain.CategoryPlan: "projet", domain.CategoryDailyLife: "vie quotidienne",
	domain.CategoryHealth: "santé", domain.CategoryJudicial: "judiciaire", domain.CategoryConsent: "consentements",
}

var needDomainLabels = map[string]string{
	"safety": "sécurité", "health": "santé", "schooling": "scolarité", "relationships": "relations et liens",
	"education": "éducation", "identity": "identité", "autonomy": "autonomie",
}

var statusLabels = map[domain.ObjectiveStatus]string{
	domain.ObjectiveInProgress: "en cours", domain.ObjectiveAchieved: "atteint", domain.ObjectivePartiallyAchieved: "partiellement atteint",
	domain.ObjectiveNotAchieved: "non atteint", domain.ObjectiveAbandoned: "abandonné",
}

var restrictionLabels = map[domain.RestrictionKind]string{
	domain.PlacementAddressSecret:   "lieu d'accueil tenu secret",
	domain.ContactSuspended:         "contacts suspendus",
	domain.VisitsSupervised:         "visites en présence d'un tiers",
	domain.FamilyInformationLimited: "information de la famille limitée",
	domain.PartnerExcluded:          "partenaire écarté du dossier",
}

var closingLabels = map[string]string{"end_of_measure": "fin de mesure", "majority": "majorité", "transfer": "transfert"}

var frameLabels = map[domain.LegalFrame]string{domain.FrameAdministrative: "administratif", domain.FrameJudicial: "judiciaire"}

var months = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}

// frenchDate writes a date as professionals do: "1er mars 2026", "5 mars 2026".
func frenchDate(t time.Time) string {
	day := fmt.Sprint(t.Day())
	if t.Day() == 1 {
		day = "1er"
	}
	return fmt.Sprintf("%s %s %d", day, months[t.Month()-1], t.Year())
}

func label[K comparable](labels map[K]string, k K) string {
	if l, ok := labels[k]; ok {
		return l
	}
	return fmt.Sprint(k)
}

// describer writes what happened, remembering from earlier visible events
// the titles it refers back to (an objective's title for its review).
type describer struct {
	names  *names
	labels map[string]string
}

func (d *describer) learn(p domain.Payload) {
	switch p := p.(type) {
	case *domain.ObjectiveSetPayload:
		d.labels["objective "+p.Objective.String()] = p.Title
	case *domain.InterventionAgreedPayload:
		d.labels["intervention "+p.Intervention.String()] = p.Description
	case *domain.CrisisDeclaredPayload:
		d.labels["crisis "+p.Crisis.String()] = p.Description
	}
}

func (d *describer) label(key string) string {
	if l := d.labels[key]; l != "" {
		return " « " + l + " »"
	}
	return ""
}

// inst names an institution for a sentence; a withheld one is said so.
func (d *describer) inst(id domain.InstitutionID) string {
	if id == "" {
		return "une institution (information non communiquée)"
	}
	return d.names.institution(id)
}

func (d *describer) institutions(ids []domain.InstitutionID) string {
	var out []string
	for _, id := range ids {
		out = append(out, d.inst(id))
	}
	return strings.Join(out, ", ")
}

func sentence(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}

func colon(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// describe returns what happened in plain French, the impact and action
// taken when recorded, and the period the event concerns.
func (d *describer) describe(e domain.Event, p domain.Payload) (what, impact, action string, period *Period) {
	switch p := p.(type) {
	case *domain.CaseOpenedPayload:
		what = sentence(fmt.Sprintf("Ouverture du dossier (cadre %s), coordonné par %s", label(frameLabels, p.LegalFrame), d.inst(p.Coordinator)))
	case *domain.PartnerJoinedPayload:
		what = sentence("Entrée dans le dossier de", d.inst(p.Institution), kindSuffix(p.Kind), colon(p.Reason))
	case *domain.PartnerLeftPayload:
		what = sentence("Sortie du dossier de", d.inst(p.Institution), colon(p.Reason))
	case *domain.ReferentChangedPayload:
		what = sentence("Nouveau référent pour", d.inst(p.Institution), colon(referent(p.Referent)), reason(p.Reason))
	case *domain.CoordinationHandedOverPayload:
		what = sentence("Coordination transmise de", d.inst(p.From), "à", d.inst(p.To), colon(p.Reason))
	case *domain.FamilyMemberRecordedPayload:
		authority := "sans l'autorité parentale"
		if p.ParentalAuthority {
			authority = "titulaire de l'autorité parentale"
		}
		what = fmt.Sprintf("Inscription au dossier de %s (%s, %s)", d.names.person(p.FamilyMember), p.Relationship, authority)
	case *domain.NeedIdentifiedPayload:
		what = sentence(fmt.Sprintf("Besoin identifié (%s)", label(needDomainLabels, p.Domain)), colon(p.Description))
	case *domain.ObjectiveSetPayload:
		what = sentence("Objectif fixé", colon(p.Title))
		if p.DueDate != nil {
			what += ", échéance le " + frenchDate(*p.DueDate)
		}
	case *domain.ObjectiveReviewedPayload:
		what = sentence("Objectif réexaminé"+d.label("objective "+p.Objective.String()), colon(label(statusLabels, p.Status)))
		action = p.Comment
	case *domain.InterventionAgreedPayload:
		what = sentence("Intervention convenue pour", d.inst(p.Institution), colon(p.Description), paren(p.Modalities, p.Timing))
		period = &Period{From: p.Start, Until: p.End}
	case *domain.InterventionChangedPayload:
		what = sentence("Intervention modifiée"+d.label("intervention "+p.Intervention.String()), colon(joinNonEmpty(" ; ", p.Modalities, p.Timing)), reason(p.Reason))
	case *domain.InterventionEndedPayload:
		what = sentence("Fin de l'intervention"+d.label("intervention "+p.Intervention.String()), colon(p.Reason))
	case *domain.PlansArticulatedPayload:
		var links []string
		for _, l := range p.Plans {
			links = append(links, fmt.Sprintf("%s %s version %s (%s)", l.Kind, l.Reference, l.Version, d.inst(l.Institution)))
		}
		what = "Projet partagé articulé avec : " + strings.Join(links, ", ")
	case *domain.SynthesisMeetingHeldPayload:
		what = fmt.Sprintf("Réunion de synthèse avec %d institution(s)", len(p.Participants))
		if len(p.FamilyPresent) > 0 {
			what += ", famille présente"
		}
		if p.ChildHeard {
			what += ", enfant entendu"
		}
		if p.NextReview != nil {
			what += " ; prochain point le " + frenchDate(*p.NextReview)
		}
		action = strings.Join(p.Decisions, " ; ")
	case *domain.DecisionRecordedPayload:
		what = sentence(fmt.Sprintf("Décision (%s)", p.Kind), colon(p.Summary))
		for _, dis := range p.Dissenting {
			what += fmt.Sprintf(" ; désaccord de %s : %s", d.inst(dis.Institution), dis.Reason)
		}
		action = p.Summary
	case *domain.CrisisDeclaredPayload:
		what = sentence("Crise déclarée", colon(p.Description))
		var onCall []string
		for _, o := range p.OnCall {
			onCall = append(onCall, joinNonEmpty(" ", d.inst(o.Institution), o.Contact, o.Hours))
		}
		action = joinNonEmpty(" ; ", p.Protocol, prefixed("astreinte : ", strings.Join(onCall, ", ")))
	case *domain.CrisisResolvedPayload:
		what = "Fin de la crise" + d.label("crisis "+p.Crisis.String())
		action = p.Outcome
	case *domain.PlacementChangedPayload:
		if p.Planned {
			what = "Changement de lieu de vie programmé"
		} else {
			what = "Changement de lieu de vie non programmé (rupture)"
		}
		what = sentence(what, colon(p.Reason))
		if p.PlaceOfLife != "" {
			what += " ; nouveau lieu : " + p.PlaceOfLife
		}
	case *domain.ObservationRecordedPayload:
		what, impact, action = sentence("Observation", colon(p.Summary)), p.Impact, p.ActionTaken
		if e.Category == domain.CategoryHealth {
			what = sentence("Observation (santé)", colon(p.Summary))
		}
	case *domain.ConsentGivenPayload:
		var cats []string
		for _, c := range p.Categories {
			cats = append(cats, label(categoryLabels, c))
		}
		with := d.institutions(p.Institutions)
		for _, k := range p.Kinds {
			with = joinNonEmpty(", ", with, "les "+label(kindLabels, k))
		}
		what = fmt.Sprintf("Consentement de %s au partage (%s) avec %s, jusqu'au %s", d.names.person(p.GivenBy), strings.Join(cats, ", "),
			orDefault(with, "des partenaires"), frenchDate(p.Until))
		period = &Period{From: p.From, Until: timePtr(p.Until)}
	case *domain.ConsentWithdrawnPayload:
		what = sentence("Consentement retiré par "+d.names.person(p.WithdrawnBy), reason(p.Reason))
	case *domain.JudicialRestrictionImposedPayload:
		what = sentence(fmt.Sprintf("Ordonnance %s (%s) : %s", p.OrderReference, p.Court, label(restrictionLabels, p.Kind)))
		if !p.Until.IsZero() {
			what += ", jusqu'au " + frenchDate(p.Until)
		}
		period = &Period{From: p.From, Until: timePtr(p.Until)}
	case *domain.JudicialRestrictionLiftedPayload:
		what = sentence("Mainlevée de l'ordonnance "+p.OrderReference, reason(p.Reason))
	case *domain.FamilyInformedPayload:
		what = sentence("Famille informée de l'entrée de", d.inst(p.Institution), colon(p.How))
	case *domain.FamilyNotInformedPayload:
		what = sentence("Décision motivée de ne pas informer la famille de l'entrée de", d.inst(p.Institution), colon(p.Reason))
		if !p.ReviewOn.IsZero() {
			what += " ; à réexaminer le " + frenchDate(p.ReviewOn)
		}
	case *domain.CaseClosedPayload:
		what = sentence("Clôture du dossier ("+label(closingLabels, p.Reason)+")", colon(p.Comment))
	default:
		if e.Known() {
			what = "Événement dont le contenu n'est pas communiqué"
		} else {
			what = fmt.Sprintf("Événement d'un type inconnu de cette version (%s, schéma %d), conservé tel quel", e.Type, e.SchemaVersion)
		}
	}
	return what, impact, action, period
}

func kindSuffix(k domain.InstitutionKind) string {
	if k == "" {
		return ""
	}
	return "(" + label(kindLabels, k) + ")"
}

func referent(r domain.Referent) string {
	return joinNonEmpty(", ", r.Name, r.Function)
}

func reason(r string) string {
	if r == "" {
		return ""
	}
	return "(" + r + ")"
}

func paren(parts ...string) string {
	s := joinNonEmpty(" ; ", parts...)
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
