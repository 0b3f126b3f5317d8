package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// page is what the layout needs, around the page's own data.
type page struct {
	Title   string
	Session *session
	CaseID  string // set on a case's pages: the header links to them
	Data    any
}

// Name is who is signed in, for the header.
func (p page) Name() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.principal.Name
}

// CSRF is the session's token, for the sign-out form.
func (p page) CSRF() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.csrf
}

type errorPage struct{ Heading, Detail string }

// pageNames are the templates rendered as whole pages in the layout.
var pageNames = []string{"signin", "cases", "case", "print", "access", "form", "error"}

func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/sections.html")
	if err != nil {
		return nil, fmt.Errorf("web templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFS, "templates/"+name+".html"); err != nil {
			return nil, fmt.Errorf("web template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a whole page; a template failing is logged and answered
// with a plain error, never half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		h.log.Error("web: render", "page", name, "err", err)
		http.Error(w, "erreur d'affichage", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders one named template of a page (a live update).
func (h *Handler) fragment(name, block string, data any) ([]byte, error) {
	var buf bytes.Buffer
	err := h.pages[name].ExecuteTemplate(&buf, block, data)
	return buf.Bytes(), err
}

var paris = func() *time.Location {
	if l, err := time.LoadLocation("Europe/Paris"); err == nil {
		return l
	}
	return time.FixedZone("CET", 3600)
}()

var months = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}

// frenchDate is "5 mars 2026".
func frenchDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(paris)
	d := fmt.Sprint(t.Day())
	if t.Day() == 1 {
		d = "1er"
	}
	return fmt.Sprintf("%s %s %d", d, months[t.Month()-1], t.Year())
}

// chronologyDate is a chronology entry's date as precisely as it is known
// ("2026-03-05", "2026-03" or "2026").
func chronologyDate(s string) string {
	t, err := time.Parse(time.DateOnly, s)
	if err == nil {
		return frenchDate(time.Date(t.Year(), t.Month(), t.Day(), 12, 0, 0, 0, paris))
	}
	if t, err := time.Parse("2006-01", s); err == nil {
		return months[t.Month()-1] + " " + fmt.Sprint(t.Year())
	}
	return s
}

var kindLabels = map[domain.InstitutionKind]string{
	domain.KindASE: "ASE", domain.KindMECS: "MECS", domain.KindDITEP: "DITEP", domain.KindAEMO: "AEMO", domain.KindAED: "AED",
	domain.KindCMP: "CMP", domain.KindSchool: "établissement scolaire", domain.KindMDPH: "MDPH", domain.KindPJJ: "PJJ",
	domain.KindFoster: "placement familial", domain.KindOther: "autre partenaire",
}

var categoryLabels = map[domain.Category]string{
	domain.CategoryCoordination: "coordination", domain.CategoryPlan: "projet", domain.CategoryDailyLife: "vie quotidienne",
	domain.CategoryHealth: "santé", domain.CategoryJudicial: "judiciaire", domain.CategoryConsent: "consentements",
}

// restrictionWords say what an order of the judge means for the work.
var restrictionWords = map[domain.RestrictionKind]string{
	domain.PlacementAddressSecret:   "Le lieu d'accueil de l'enfant est tenu secret pour les personnes visées : ne leur communiquez ni adresse, ni nom de l'établissement, ni lieu de vie.",
	domain.ContactSuspended:         "Les contacts avec les personnes visées sont suspendus : aucune visite, sortie ou appel non prévus par le juge.",
	domain.VisitsSupervised:         "Les visites avec les personnes visées se font uniquement en présence d'un tiers.",
	domain.FamilyInformationLimited: "Les informations données aux personnes visées sont limitées par le juge.",
	domain.PartnerExcluded:          "Une institution est écartée du dossier par le juge : elle ne reçoit plus d'information.",
}

var restrictionLabels = map[domain.RestrictionKind]string{
	domain.PlacementAddressSecret: "Lieu d'accueil tenu secret", domain.ContactSuspended: "Contacts suspendus",
	domain.VisitsSupervised: "Visites en présence d'un tiers", domain.FamilyInformationLimited: "Information de la famille limitée",
	domain.PartnerExcluded: "Partenaire écarté du dossier",
}

var visibilityLabels = map[domain.Visibility]string{domain.Full: "voit tout", domain.Redacted: "voit en partie", domain.Hidden: "ne voit pas"}

var frameLabels = map[domain.LegalFrame]string{domain.FrameAdministrative: "Cadre administratif", domain.FrameJudicial: "Cadre judiciaire"}

var accessKindLabels = map[domain.AccessKind]string{
	domain.AccessTimeline: "l'historique", domain.AccessSummary: "la synthèse", domain.AccessPlan: "le projet",
	domain.AccessChronology: "la chronologie", domain.AccessVisibility: "« qui voit quoi »", domain.AccessDeadlines: "les échéances",
	domain.AccessList: "la liste des consultations", domain.AccessHead: "l'empreinte signée", domain.AccessExport: "l'export complet",
}

func label[K comparable](m map[K]string, k K) string {
	if s, ok := m[k]; ok {
		return s
	}
	return fmt.Sprint(k)
}

// redactionWords name what was withheld from an entry, in words.
func redactionWords(fields []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range fields {
		w := "information retirée"
		switch f {
		case "address", "placeOfLife", "hostInstitution":
			w = "adresse non communiquée"
		}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// describedBy is the ids a field's aria-describedby names: its hint and
// its error, when it has them.
func describedBy(hint, name, err string) string {
	var ids []string
	if hint != "" {
		ids = append(ids, "aide-"+name)
	}
	if err != "" {
		ids = append(ids, "erreur-"+name)
	}
	return strings.Join(ids, " ")
}

// args builds a template's arguments from name, value pairs.
func args(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("args: odd count")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("args: key %v", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

var impactOptions = []option{{Value: "positive", Label: "Ce qui va bien"}, {Value: "negative", Label: "Ce qui inquiète"}, {Value: "", Label: "Sans qualification"}}

var categoryOptions = []option{{Value: string(domain.CategoryDailyLife), Label: "Vie quotidienne"}, {Value: string(domain.CategoryPlan), Label: "Projet"},
	{Value: string(domain.CategoryCoordination), Label: "Coordination"}, {Value: string(domain.CategoryHealth), Label: "Santé (partage restreint)"}}

var statusLabels = map[domain.ObjectiveStatus]string{
	domain.ObjectiveInProgress: "en cours", domain.ObjectiveAchieved: "atteint", domain.ObjectivePartiallyAchieved: "partiellement atteint",
	domain.ObjectiveNotAchieved: "non atteint", domain.ObjectiveAbandoned: "abandonné",
}

// familyName is a family member's name as the summary gives it.
func familyName(family []cases.FamilySummary, id domain.PersonID) string {
	for _, f := range family {
		if f.ID == id {
			return f.Name + " (" + f.Relationship + ")"
		}
	}
	return "un membre de la famille"
}

var funcs = template.FuncMap{
	"date":       frenchDate,
	"chronoDate": chronologyDate,
	"isoDate":    func(t time.Time) string { return t.In(paris).Format(time.DateOnly) },
	"datePtr": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return frenchDate(*t)
	},
	"kind":        func(k domain.InstitutionKind) string { return label(kindLabels, k) },
	"category":    func(c domain.Category) string { return label(categoryLabels, c) },
	"restriction": func(k domain.RestrictionKind) string { return label(restrictionLabels, k) },
	"restrictionWords": func(k domain.RestrictionKind) string {
		return label(restrictionWords, k)
	},
	"visibility": func(v domain.Visibility) string { return label(visibilityLabels, v) },
	"frame":      func(f domain.LegalFrame) string { return label(frameLabels, f) },
	"accessKind": func(k domain.AccessKind) string { return label(accessKindLabels, k) },
	"redactions": redactionWords,
	"join":       strings.Join,
	"has": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
	"fieldID":         func(name string) string { return "champ-" + name },
	"args":            args,
	"describedBy":     describedBy,
	"impacts":         func() []option { return impactOptions },
	"categories":      func() []option { return categoryOptions },
	"familyName":      familyName,
	"objectiveStatus": func(s domain.ObjectiveStatus) string { return label(statusLabels, s) },
	"errID":           func(name string) string { return "erreur-" + name },
}
