package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// formSpec is a recording form: its path under the case, its fields'
// template, and how its values become commands. The commands then go the
// API's way: directory.Complete, Validate, reads.Service.Record.
type formSpec struct {
	path    string
	title   string
	fields  string // the template of its fields
	done    string // said once recorded
	options bool   // the form lists the case's members and family
	build   func(h *Handler, s *session, vals url.Values) ([]command, error)
	// fieldOf maps a payload's field (as in a *domain.Error) to the form's.
	fieldOf func(cmd int, field string) string
}

// command is one command a form records; key is appended to the form's
// idempotency key, so that each of its commands records once.
type command struct {
	payload  domain.Payload
	category domain.Category
	occurred time.Time
	key      string
}

var forms = []formSpec{meetingForm, observationForm, interventionForm, referentForm}

// formView is a form as rendered: filled with what was typed, with the
// errors next to their fields.
type formView struct {
	Spec    formSpec
	Path    string
	CaseID  string
	Child   string
	Version uint64
	CSRF    string
	Key     string
	Values  url.Values
	Errors  map[string]string
	List    []fieldError // in the order of the page, for the summary at the top
	Notice  string
	Members []option
	Family  []option
}

type fieldError struct{ Field, Message string }

type option struct{ Value, Label string }

// Value is the first value typed in a field.
func (f formView) Value(name string) string { return f.Values.Get(name) }

// Checked reports whether a value was chosen in a field.
func (f formView) Checked(name, value string) bool {
	for _, v := range f.Values[name] {
		if v == value {
			return true
		}
	}
	return false
}

// Title is the form's title.
func (f formView) Title() string { return f.Spec.title }

// Fields is the template of the form's fields.
func (f formView) Fields() string { return f.Spec.fields }

func (h *Handler) formPage(f formSpec) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		vals := url.Values{"occurredAt": {h.now().In(paris).Format(time.DateOnly)}}
		h.showForm(w, r, s, f, vals, nil, "")
	}
}

// showForm renders a form for the case, with the members and family the
// facade lets this viewer know (Summary); status 200 unless errs.
func (h *Handler) showForm(w http.ResponseWriter, r *http.Request, s *session, f formSpec, vals url.Values, errs []fieldError, notice string) {
	id, ok := h.caseID(w, r, s)
	if !ok {
		return
	}
	v := formView{Spec: f, Path: "/dossiers/" + id.String() + "/" + f.path, CaseID: id.String(), CSRF: s.csrf, Values: vals,
		Errors: map[string]string{}, List: errs, Notice: notice, Key: vals.Get("cle")}
	if v.Key == "" || len(v.Key) > 100 {
		v.Key = uuid.NewString()
	}
	for _, e := range errs {
		if _, seen := v.Errors[e.Field]; !seen {
			v.Errors[e.Field] = e.Message
		}
	}
	rd := reader(s, purposeForm)
	tl, err := h.reads.Timeline(r.Context(), rd, id, 1<<62, 0)
	if err != nil {
		h.readFailed(w, r, s, err)
		return
	}
	v.Version = tl.Version
	if f.options {
		sum, err := h.reads.Summary(r.Context(), rd, id)
		if err != nil {
			h.readFailed(w, r, s, err)
			return
		}
		v.Child = sum.ChildReference
		for _, m := range sum.Members {
			if m.Active {
				v.Members = append(v.Members, option{Value: string(m.Institution), Label: m.Name})
			}
		}
		for _, fm := range sum.Family {
			v.Family = append(v.Family, option{Value: fm.ID.String(), Label: fm.Name + " (" + fm.Relationship + ")"})
		}
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusUnprocessableEntity
	}
	h.render(w, r, status, "form", page{Title: f.title, Session: s, CaseID: v.CaseID, Data: v})
}

// submit records a form. An expired session brings the sign-in page, which
// carries the values back into the form; a stale CSRF token, an invalid
// input or a refusal bring the form back filled.
func (h *Handler) submit(f formSpec) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "formulaire illisible", http.StatusBadRequest)
			return
		}
		s, ok := h.sessions.get(r, h.directory)
		if !ok {
			h.signInForm(w, r, http.StatusUnauthorized, signIn{Return: r.URL.Path, Values: keptValues(r.PostForm, ""),
				Notice: "Votre session a expiré. Votre saisie est conservée : reconnectez-vous pour la retrouver et l'enregistrer."})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		vals := r.PostForm
		if !sameOrigin(r) || !tokensEqual(vals.Get("csrf"), s.csrf) {
			h.showForm(w, r, s, f, vals, nil, "Ce formulaire avait expiré : votre saisie est conservée. Vérifiez-la puis enregistrez.")
			return
		}
		id, ok := h.caseID(w, r, s)
		if !ok {
			return
		}
		cmds, err := f.build(h, s, vals)
		if err == nil {
			for i, c := range cmds {
				if err = h.directory.Complete(c.payload, s.principal); err == nil {
					err = c.payload.Validate()
				}
				if err != nil {
					err = cmdError{i, err}
					break
				}
			}
		}
		key := vals.Get("cle")
		if key == "" || len(key) > 100 {
			key = uuid.NewString()
		}
		var res cases.Result
		for i, c := range cmds {
			if err != nil {
				break
			}
			req := cases.Request{CaseID: id, IdempotencyKey: key + c.key, Command: domain.Command{Type: c.payload.EventType(),
				Category: c.category, Actor: s.principal.Actor(), Role: s.principal.Role, Payload: c.payload, OccurredAt: c.occurred}}
			if res, err = h.reads.Record(r.Context(), reader(s, purposeForm), req); err != nil {
				err = cmdError{i, err}
			}
		}
		if err != nil {
			if errors.Is(err, domain.ErrNotFound) {
				h.caseNotFound(w, r, s)
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) {
				h.log.Error("web: record failed", "err", err)
				de = &domain.Error{Message: "L'enregistrement n'a pas pu être fait (service momentanément indisponible). Votre saisie est conservée : réessayez."}
			}
			field := ""
			var ce cmdError
			if errors.As(err, &ce) && de.Field != "" {
				field = f.fieldOf(ce.cmd, normalField(de.Field))
			}
			h.showForm(w, r, s, f, vals, []fieldError{{Field: field, Message: de.Message}}, "")
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/dossiers/%s?enregistre=%s&version=%d#chronologie", id, f.path, res.Version), http.StatusSeeOther)
	}
}

// cmdError is the failure of a form's i-th command.
type cmdError struct {
	cmd int
	err error
}

func (e cmdError) Error() string { return e.err.Error() }
func (e cmdError) Unwrap() error { return e.err }

var indexes = regexp.MustCompile(`\[\d+\]`)

// normalField is a domain error's field without "payload." and indexes:
// "payload.dissenting[0].reason" is "dissenting.reason".
func normalField(f string) string {
	return indexes.ReplaceAllString(strings.TrimPrefix(f, "payload."), "")
}

// occurredAt reads a date field: today is now, another day its noon in
// Paris (the meeting's day, not its hour, is what is known).
func (h *Handler) occurredAt(vals url.Values) (time.Time, error) {
	s := strings.TrimSpace(vals.Get("occurredAt"))
	if s == "" {
		return h.now(), nil
	}
	d, err := time.ParseInLocation(time.DateOnly, s, paris)
	if err != nil {
		return time.Time{}, domain.Invalid("occurredAt", "date attendue au format jj/mm/aaaa")
	}
	if d.Format(time.DateOnly) == h.now().In(paris).Format(time.DateOnly) {
		return h.now(), nil
	}
	return d.Add(12 * time.Hour), nil
}

func optionalDate(vals url.Values, name string) (*time.Time, error) {
	s := strings.TrimSpace(vals.Get(name))
	if s == "" {
		return nil, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, s, paris)
	if err != nil {
		return nil, domain.Invalid(name, "date attendue au format jj/mm/aaaa")
	}
	return &d, nil
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func institutions(vs []string) []domain.InstitutionID {
	out := []domain.InstitutionID{}
	for _, v := range vs {
		out = append(out, domain.InstitutionID(v))
	}
	return out
}

var meetingForm = formSpec{
	path: "synthese", title: "Enregistrer une réunion de synthèse", fields: "meeting-fields", options: true,
	done: "La réunion de synthèse est enregistrée.",
	build: func(h *Handler, s *session, vals url.Values) ([]command, error) {
		at, err := h.occurredAt(vals)
		if err != nil {
			return nil, cmdError{0, err}
		}
		next, err := optionalDate(vals, "nextReview")
		if err != nil {
			return nil, cmdError{0, err}
		}
		meeting := &domain.SynthesisMeetingHeldPayload{Meeting: uuid.New(), Participants: institutions(vals["participants"]),
			ChildHeard: vals.Get("childHeard") == "oui", Decisions: lines(vals.Get("decisions")), NextReview: next,
			Location: strings.TrimSpace(vals.Get("location"))}
		for _, v := range vals["familyPresent"] {
			id, err := uuid.Parse(v)
			if err != nil {
				return nil, cmdError{0, domain.Invalid("familyPresent", "membre de la famille inconnu")}
			}
			meeting.FamilyPresent = append(meeting.FamilyPresent, id)
		}
		// The three questions of the meeting, when answered, are part of
		// its decisions as recorded, each under its heading.
		for _, q := range meetingQuestions {
			for _, l := range lines(vals.Get(q.Value)) {
				meeting.Decisions = append(meeting.Decisions, q.Label+" : "+l)
			}
		}
		cmds := []command{{payload: meeting, occurred: at, key: "-synthese"}}
		if summary := strings.TrimSpace(vals.Get("decisionSummary")); summary != "" || len(vals["agreeing"]) > 0 {
			d := &domain.DecisionRecordedPayload{Decision: uuid.New(), Kind: strings.TrimSpace(vals.Get("decisionKind")), Summary: summary,
				Agreeing: institutions(vals["agreeing"]), Categories: []domain.Category{domain.CategoryPlan}}
			if inst := vals.Get("dissentInstitution"); inst != "" || strings.TrimSpace(vals.Get("dissentReason")) != "" {
				d.Dissenting = []domain.Dissent{{Institution: domain.InstitutionID(inst), Reason: strings.TrimSpace(vals.Get("dissentReason"))}}
			}
			cmds = append(cmds, command{payload: d, category: domain.CategoryPlan, occurred: at, key: "-decision"})
		}
		return cmds, nil
	},
	fieldOf: func(cmd int, f string) string {
		if cmd == 1 {
			switch f {
			case "summary":
				return "decisionSummary"
			case "kind":
				return "decisionKind"
			case "dissenting.institution", "dissenting":
				return "dissentInstitution"
			case "dissenting.reason":
				return "dissentReason"
			case "agreeing", "occurredAt":
				return f
			}
			return "decisionSummary"
		}
		switch f {
		case "participants", "familyPresent", "decisions", "nextReview", "location", "occurredAt", "childHeard":
			return f
		}
		return ""
	},
}

// meetingQuestions structure a meeting's conclusions the way the
// professionals of child protection do.
var meetingQuestions = []option{
	{Value: "worries", Label: "Ce qui inquiète"},
	{Value: "strengths", Label: "Ce qui va bien"},
	{Value: "next", Label: "Ce qui doit se passer"},
}

var observationForm = formSpec{
	path: "observation", title: "Enregistrer une observation", fields: "observation-fields",
	done: "L'observation est enregistrée.",
	build: func(h *Handler, s *session, vals url.Values) ([]command, error) {
		at, err := h.occurredAt(vals)
		if err != nil {
			return nil, cmdError{0, err}
		}
		cat := domain.Category(vals.Get("category"))
		if cat == "" {
			cat = domain.CategoryDailyLife
		}
		return []command{{payload: &domain.ObservationRecordedPayload{Summary: strings.TrimSpace(vals.Get("summary")),
			Impact: vals.Get("impact"), ActionTaken: strings.TrimSpace(vals.Get("actionTaken"))}, category: cat, occurred: at, key: "-observation"}}, nil
	},
	fieldOf: func(_ int, f string) string {
		switch f {
		case "summary", "impact", "actionTaken", "occurredAt", "category":
			return f
		}
		return ""
	},
}

var referentForm = formSpec{
	path: "referent", title: "Changer de référent", fields: "referent-fields",
	done: "Le changement de référent est enregistré.",
	build: func(h *Handler, s *session, vals url.Values) ([]command, error) {
		return []command{{payload: &domain.ReferentChangedPayload{Institution: s.principal.Institution,
			Referent: domain.Referent{Name: strings.TrimSpace(vals.Get("referentName")), Function: strings.TrimSpace(vals.Get("referentFunction")),
				Phone: strings.TrimSpace(vals.Get("referentPhone")), Email: strings.TrimSpace(vals.Get("referentEmail"))},
			Reason: strings.TrimSpace(vals.Get("reason"))}, occurred: h.now(), key: "-referent"}}, nil
	},
	fieldOf: func(_ int, f string) string {
		switch f {
		case "referent.name", "referent":
			return "referentName"
		case "referent.function":
			return "referentFunction"
		case "referent.phone":
			return "referentPhone"
		case "referent.email":
			return "referentEmail"
		case "reason":
			return "reason"
		}
		return ""
	},
}

// interventionForm records who does what, how and when (charter art. 3),
// with the contacts with the family it schedules: the judge's orders on
// contacts bind it as they bind the API (contact_suspended,
// visits_supervised), and the refusal comes back next to the contact.
var interventionForm = formSpec{
	path: "intervention", title: "Enregistrer une intervention convenue", fields: "intervention-fields", options: true,
	done: "L'intervention est enregistrée.",
	build: func(h *Handler, s *session, vals url.Values) ([]command, error) {
		start, err := optionalDate(vals, "start")
		if err != nil {
			return nil, cmdError{0, err}
		}
		end, err := optionalDate(vals, "end")
		if err != nil {
			return nil, cmdError{0, err}
		}
		p := &domain.InterventionAgreedPayload{Intervention: uuid.New(), Institution: domain.InstitutionID(vals.Get("institution")),
			Description: strings.TrimSpace(vals.Get("description")), Modalities: strings.TrimSpace(vals.Get("modalities")),
			Timing: strings.TrimSpace(vals.Get("timing")), End: end}
		if start != nil {
			p.Start = *start
		}
		if fm := vals.Get("contactWith"); fm != "" {
			id, err := uuid.Parse(fm)
			if err != nil {
				return nil, cmdError{0, domain.Invalid("contacts.familyMember", "membre de la famille inconnu")}
			}
			p.Contacts = []domain.ContactArrangement{{FamilyMember: id, Supervised: vals.Get("supervised") == "oui",
				ThirdParty: strings.TrimSpace(vals.Get("thirdParty"))}}
		}
		cat := domain.CategoryPlan
		if vals.Get("category") == string(domain.CategoryHealth) {
			cat = domain.CategoryHealth
		}
		return []command{{payload: p, category: cat, occurred: h.now(), key: "-intervention"}}, nil
	},
	fieldOf: func(_ int, f string) string {
		switch f {
		case "institution", "description", "modalities", "timing", "start", "end", "category":
			return f
		case "contacts.familyMember", "contacts":
			return "contactWith"
		case "contacts.supervised":
			return "supervised"
		case "contacts.thirdParty":
			return "thirdParty"
		}
		return ""
	},
}
