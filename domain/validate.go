package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Validation of payloads on their own. Each Validate returns nil or the
// *Error of the first bad field (Code EInvalid, Rule "invalid_field"), whose
// Field is the JSON path inside the payload ("until", "referent.name",
// "plans[0].reference"); Decide prefixes it with "payload.".

// Bounds on what a field may hold, so that nobody stores a novel in a name.
const (
	maxLine  = 200  // names, labels, references: one line
	maxText  = 4000 // free text
	maxItems = 100  // entries of a list
	maxInst  = 100  // institution identifiers
	maxPhone = 30
)

// Values of the string enums that have no named type.
var (
	legalFrames       = []LegalFrame{FrameAdministrative, FrameJudicial}
	objectiveStatuses = []ObjectiveStatus{ObjectiveInProgress, ObjectiveAchieved, ObjectivePartiallyAchieved, ObjectiveNotAchieved, ObjectiveAbandoned}
	closeReasons      = []string{"end_of_measure", "majority", "transfer"}
	planKinds         = []string{"PPE", "PPA", "PPS", "other"}
	impacts           = []string{"", "positive", "negative"}
	dateCertainties   = []DateCertainty{"", DateMonth, DateYear, DateApproximate}
)

func (p *CaseOpenedPayload) Validate() error {
	return firstError(
		requiredLine("childReference", p.ChildReference),
		enumValue("legalFrame", p.LegalFrame, legalFrames),
		checkDepartement("departement", p.Departement),
		checkInstitution("coordinator", p.Coordinator),
		checkKind("coordinatorKind", p.CoordinatorKind),
		requiredLine("coordinatorName", p.CoordinatorName),
		p.Referent.validate("referent"),
		checkBirthMonth("childBirthMonth", p.ChildBirthMonth),
	)
}

func (p *PartnerJoinedPayload) Validate() error {
	return firstError(
		checkInstitution("institution", p.Institution),
		checkKind("kind", p.Kind),
		requiredLine("name", p.Name),
		p.Referent.validate("referent"),
		requiredText("reason", p.Reason),
	)
}

func (p *PartnerLeftPayload) Validate() error {
	return firstError(
		checkInstitution("institution", p.Institution),
		requiredText("reason", p.Reason),
	)
}

func (p *ReferentChangedPayload) Validate() error {
	return firstError(
		checkInstitution("institution", p.Institution),
		p.Referent.validate("referent"),
		optionalText("reason", p.Reason),
	)
}

func (p *CoordinationHandedOverPayload) Validate() error {
	if err := firstError(checkInstitution("from", p.From), checkInstitution("to", p.To), requiredText("reason", p.Reason)); err != nil {
		return err
	}
	if p.From == p.To {
		return Invalid("to", "la coordination doit être transmise à une autre institution que celle qui la détient")
	}
	return nil
}

func (p *FamilyMemberRecordedPayload) Validate() error {
	return firstError(
		requiredID("familyMember", p.FamilyMember),
		requiredLine("name", p.Name),
		requiredLine("relationship", p.Relationship),
		optionalLine("address", p.Address),
	)
}

func (p *NeedIdentifiedPayload) Validate() error {
	return firstError(
		requiredID("need", p.Need),
		requiredLine("domain", p.Domain),
		requiredText("description", p.Description),
	)
}

func (p *ObjectiveSetPayload) Validate() error {
	return firstError(
		requiredID("objective", p.Objective),
		checkIDs("needs", p.Needs, 0),
		requiredLine("title", p.Title),
		optionalText("description", p.Description),
		optionalTime("dueDate", p.DueDate),
	)
}

func (p *ObjectiveReviewedPayload) Validate() error {
	return firstError(
		requiredID("objective", p.Objective),
		enumValue("status", p.Status, objectiveStatuses),
		optionalText("comment", p.Comment),
	)
}

func (p *InterventionAgreedPayload) Validate() error {
	err := firstError(
		requiredID("intervention", p.Intervention),
		checkInstitution("institution", p.Institution),
		checkIDs("objectives", p.Objectives, 0),
		requiredText("description", p.Description),
		requiredText("modalities", p.Modalities),
		requiredText("timing", p.Timing),
		requiredTime("start", p.Start),
		optionalTime("end", p.End),
		checkContacts("contacts", p.Contacts),
	)
	if err == nil && p.End != nil && !p.End.After(p.Start) {
		return Invalid("end", "la date de fin doit être postérieure à la date de début")
	}
	return err
}

func (p *InterventionChangedPayload) Validate() error {
	return firstError(
		requiredID("intervention", p.Intervention),
		requiredText("modalities", p.Modalities),
		requiredText("timing", p.Timing),
		optionalTime("end", p.End),
		checkContacts("contacts", p.Contacts),
		requiredText("reason", p.Reason),
	)
}

func (p *InterventionEndedPayload) Validate() error {
	return firstError(
		requiredID("intervention", p.Intervention),
		requiredText("reason", p.Reason),
	)
}

func (p *PlansArticulatedPayload) Validate() error {
	if err := checkItems("plans", len(p.Plans), 1); err != nil {
		return err
	}
	for i, l := range p.Plans {
		f := fieldAt("plans", i)
		err := firstError(
			enumValue(f+".kind", l.Kind, planKinds),
			requiredLine(f+".reference", l.Reference),
			requiredLine(f+".version", l.Version),
			checkInstitution(f+".institution", l.Institution),
		)
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *SynthesisMeetingHeldPayload) Validate() error {
	err := firstError(
		requiredID("meeting", p.Meeting),
		checkInstitutions("participants", p.Participants, 1),
		checkIDs("familyPresent", p.FamilyPresent, 0),
		checkItems("decisions", len(p.Decisions), 0),
		optionalTime("nextReview", p.NextReview),
		optionalLine("location", p.Location),
	)
	if err != nil {
		return err
	}
	for i, d := range p.Decisions {
		if err := requiredText(fieldAt("decisions", i), d); err != nil {
			return err
		}
	}
	return nil
}

func (p *DecisionRecordedPayload) Validate() error {
	err := firstError(
		requiredID("decision", p.Decision),
		requiredLine("kind", p.Kind),
		requiredText("summary", p.Summary),
		checkInstitutions("agreeing", p.Agreeing, 1),
		checkItems("dissenting", len(p.Dissenting), 0),
		checkCategories("categories", p.Categories),
		checkContacts("contacts", p.Contacts),
	)
	if err != nil {
		return err
	}
	seen := map[InstitutionID]bool{}
	for i, d := range p.Dissenting {
		f := fieldAt("dissenting", i)
		if err := firstError(checkInstitution(f+".institution", d.Institution), requiredText(f+".reason", d.Reason)); err != nil {
			return err
		}
		switch {
		case seen[d.Institution]:
			return Invalid(f+".institution", "cette institution figure déjà parmi celles qui s'opposent")
		case slices.Contains(p.Agreeing, d.Institution):
			return Invalid(f+".institution", "une institution ne peut pas à la fois approuver la décision et s'y opposer")
		}
		seen[d.Institution] = true
	}
	return nil
}

func (p *CrisisDeclaredPayload) Validate() error {
	err := firstError(
		requiredID("crisis", p.Crisis),
		requiredText("description", p.Description),
		checkItems("onCall", len(p.OnCall), 1),
		requiredText("protocol", p.Protocol),
	)
	if err != nil {
		return err
	}
	for i, o := range p.OnCall {
		f := fieldAt("onCall", i)
		if err := firstError(checkInstitution(f+".institution", o.Institution), requiredLine(f+".contact", o.Contact), optionalLine(f+".hours", o.Hours)); err != nil {
			return err
		}
	}
	return nil
}

func (p *CrisisResolvedPayload) Validate() error {
	return firstError(
		requiredID("crisis", p.Crisis),
		requiredText("outcome", p.Outcome),
	)
}

func (p *PlacementChangedPayload) Validate() error {
	err := firstError(
		requiredText("reason", p.Reason),
		requiredLine("placeOfLife", p.PlaceOfLife),
		optionalLine("address", p.Address),
		p.UncertainDate.validate(),
	)
	if err == nil && p.HostInstitution != "" {
		return checkInstitution("hostInstitution", p.HostInstitution)
	}
	return err
}

func (p *ObservationRecordedPayload) Validate() error {
	return firstError(
		requiredText("summary", p.Summary),
		enumValue("impact", p.Impact, impacts),
		optionalText("actionTaken", p.ActionTaken),
		p.UncertainDate.validate(),
	)
}

func (u UncertainDate) validate() error {
	if u.OccurredUntil != nil && u.OccurredUntil.IsZero() {
		return Invalid("occurredUntil", "date de fin vide : omettez le champ ou donnez une date")
	}
	if u.OccurredUntil != nil {
		if err := CheckDate("occurredUntil", *u.OccurredUntil); err != nil {
			return err
		}
	}
	return enumValue("dateCertainty", u.DateCertainty, dateCertainties)
}

// checkOccurredUntil refuses a span that ends before the event's date.
func checkOccurredUntil(p Payload, occurred time.Time) error {
	u, ok := p.(interface{ Uncertainty() UncertainDate })
	if !ok || u.Uncertainty().OccurredUntil == nil || !u.Uncertainty().OccurredUntil.Before(occurred) {
		return nil
	}
	return &Error{Code: EInvalid, Rule: "occurred_until_before_occurred_at", Field: "payload.occurredUntil",
		Message: "la fin de la période précède sa date de début (occurredAt)"}
}

func (p *ConsentGivenPayload) Validate() error {
	err := firstError(
		requiredID("consent", p.Consent),
		requiredID("givenBy", p.GivenBy),
		checkInstitutions("institutions", p.Institutions, 0),
		checkItems("kinds", len(p.Kinds), 0),
		checkCategories("categories", p.Categories),
		requiredTime("from", p.From),
		requiredTime("until", p.Until),
		untilAfter("until", p.From, p.Until),
	)
	if err != nil {
		return err
	}
	if len(p.Institutions) == 0 && len(p.Kinds) == 0 {
		return Invalid("institutions", "le consentement doit nommer au moins une institution ou un type d'institution")
	}
	for i, k := range p.Kinds {
		if err := checkKind(fieldAt("kinds", i), k); err != nil {
			return err
		}
	}
	return noDuplicates("kinds", p.Kinds)
}

func (p *ConsentWithdrawnPayload) Validate() error {
	return firstError(
		requiredID("consent", p.Consent),
		requiredID("withdrawnBy", p.WithdrawnBy),
		optionalText("reason", p.Reason),
	)
}

func (p *JudicialRestrictionImposedPayload) Validate() error {
	err := firstError(
		requiredID("restriction", p.Restriction),
		enumValue("kind", p.Kind, RestrictionKinds),
		requiredLine("orderReference", p.OrderReference),
		requiredLine("court", p.Court),
		checkIDs("familyMembers", p.FamilyMembers, 0),
		checkInstitutions("institutions", p.Institutions, 0),
		optionalLine("thirdParty", p.ThirdParty),
		requiredTime("from", p.From),
		requiredTime("until", p.Until),
		untilAfter("until", p.From, p.Until),
	)
	if err != nil {
		return err
	}
	switch {
	case p.Kind == PartnerExcluded && len(p.Institutions) == 0:
		return Invalid("institutions", "une exclusion de partenaire doit nommer au moins une institution")
	case p.Kind != PartnerExcluded && len(p.FamilyMembers) == 0:
		return Invalid("familyMembers", "cette ordonnance doit nommer au moins un membre de la famille qu'elle concerne")
	case p.Kind != VisitsSupervised && p.ThirdParty != "":
		return Invalid("thirdParty", "un tiers n'est désigné que pour des visites accompagnées (visits_supervised)")
	}
	return nil
}

func (p *JudicialRestrictionLiftedPayload) Validate() error {
	return firstError(
		requiredID("restriction", p.Restriction),
		requiredLine("orderReference", p.OrderReference),
		optionalText("reason", p.Reason),
	)
}

func (p *FamilyInformedPayload) Validate() error {
	return firstError(
		checkInstitution("institution", p.Institution),
		checkIDs("familyMembers", p.FamilyMembers, 1),
		requiredText("how", p.How),
	)
}

func (p *FamilyNotInformedPayload) Validate() error {
	return firstError(
		checkInstitution("institution", p.Institution),
		requiredText("reason", p.Reason),
		requiredTime("reviewOn", p.ReviewOn),
	)
}

func (p *CaseClosedPayload) Validate() error {
	return firstError(
		enumValue("reason", p.Reason, closeReasons),
		optionalText("comment", p.Comment),
	)
}

func (r Referent) validate(field string) error {
	err := firstError(
		requiredLine(field+".name", r.Name),
		optionalLine(field+".function", r.Function),
		optionalLine(field+".email", r.Email),
	)
	if err != nil {
		return err
	}
	if r.Phone != "" && (len(r.Phone) > maxPhone || strings.ContainsFunc(r.Phone, notPhone)) {
		return Invalid(field+".phone", "numéro de téléphone invalide : chiffres, espaces, « + », « . », « - » et parenthèses uniquement, %d caractères au plus", maxPhone)
	}
	if at := strings.IndexByte(r.Email, '@'); r.Email != "" && (at < 1 || at == len(r.Email)-1 || strings.ContainsAny(r.Email, " \t")) {
		return Invalid(field+".email", "adresse électronique invalide (par exemple prenom.nom@exemple.fr)")
	}
	return nil
}

func checkContacts(field string, cs []ContactArrangement) error {
	if err := checkItems(field, len(cs), 0); err != nil {
		return err
	}
	for i, c := range cs {
		f := fieldAt(field, i)
		if err := firstError(requiredID(f+".familyMember", c.FamilyMember), optionalLine(f+".thirdParty", c.ThirdParty)); err != nil {
			return err
		}
		if c.ThirdParty != "" && !c.Supervised {
			return Invalid(f+".thirdParty", "un tiers n'est indiqué que pour un contact accompagné : cochez « accompagné » ou retirez le tiers")
		}
	}
	return nil
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func fieldAt(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

func requiredLine(field, v string) error { return checkString(field, v, true, maxLine, false) }
func optionalLine(field, v string) error { return checkString(field, v, false, maxLine, false) }
func requiredText(field, v string) error { return checkString(field, v, true, maxText, true) }
func optionalText(field, v string) error { return checkString(field, v, false, maxText, true) }

// checkString checks a string field: present when required, valid UTF-8, at most
// max characters, and free of control characters (line breaks and tabs are
// allowed in multiline text).
func checkString(field, v string, required bool, max int, multiline bool) error {
	if strings.TrimSpace(v) == "" {
		if required {
			return Invalid(field, "le champ est obligatoire")
		}
		return nil
	}
	if !utf8.ValidString(v) {
		return Invalid(field, "le texte contient des caractères illisibles : vérifiez son encodage (UTF-8)")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return Invalid(field, "le texte est trop long : %d caractères au plus, %d reçus", max, n)
	}
	control := func(r rune) bool {
		return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t'))
	}
	if strings.ContainsFunc(v, control) {
		if multiline {
			return Invalid(field, "le texte contient des caractères de contrôle : retirez-les")
		}
		return Invalid(field, "le champ tient sur une ligne, sans retour à la ligne ni caractère de contrôle")
	}
	return nil
}

func requiredID(field string, id uuid.UUID) error {
	if id == uuid.Nil {
		return Invalid(field, "l'identifiant est obligatoire")
	}
	return nil
}

func requiredTime(field string, t time.Time) error {
	if t.IsZero() {
		return Invalid(field, "la date est obligatoire")
	}
	return CheckDate(field, t)
}

func optionalTime(field string, t *time.Time) error {
	if t != nil && t.IsZero() {
		return Invalid(field, "la date est vide : renseignez-la ou omettez le champ")
	}
	if t != nil {
		return CheckDate(field, *t)
	}
	return nil
}

// untilAfter checks that until is after from (when both are given).
func untilAfter(field string, from, until time.Time) error {
	if !from.IsZero() && !until.IsZero() && !until.After(from) {
		return Invalid(field, "la date de fin doit être postérieure à la date de début")
	}
	return nil
}

// enumValue checks that v is one of the allowed values.
func enumValue[T ~string](field string, v T, allowed []T) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	names := make([]string, 0, len(allowed))
	for _, a := range allowed {
		if a != "" {
			names = append(names, string(a))
		}
	}
	if v == "" {
		return Invalid(field, "le champ est obligatoire ; valeurs possibles : %s", strings.Join(names, ", "))
	}
	return Invalid(field, "valeur non reconnue ; valeurs possibles : %s", strings.Join(names, ", "))
}

func checkKind(field string, k InstitutionKind) error { return enumValue(field, k, InstitutionKinds) }

// checkInstitution checks an institution identifier as the directory issues them
// ("ase-35", "mecs-les-tilleuls").
func checkInstitution(field string, id InstitutionID) error {
	if id == "" {
		return Invalid(field, "l'identifiant de l'institution est obligatoire")
	}
	if len(id) > maxInst || strings.ContainsFunc(string(id), notIdentifier) {
		return Invalid(field, "identifiant d'institution invalide : lettres sans accent, chiffres, « - », « _ » ou « . », %d caractères au plus (par exemple « ase-35 »)", maxInst)
	}
	return nil
}

func notIdentifier(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

func notPhone(r rune) bool {
	return !(r >= '0' && r <= '9' || strings.ContainsRune(" +.-()", r))
}

// checkItems checks the length of a list.
func checkItems(field string, n, min int) error {
	switch {
	case n < min && n == 0:
		return Invalid(field, "au moins un élément est attendu")
	case n < min:
		return Invalid(field, "au moins %d éléments sont attendus", min)
	case n > maxItems:
		return Invalid(field, "trop d'éléments : %d au plus", maxItems)
	}
	return nil
}

func checkIDs(field string, xs []uuid.UUID, min int) error {
	if err := checkItems(field, len(xs), min); err != nil {
		return err
	}
	for i, x := range xs {
		if err := requiredID(fieldAt(field, i), x); err != nil {
			return err
		}
	}
	return noDuplicates(field, xs)
}

func checkInstitutions(field string, xs []InstitutionID, min int) error {
	if err := checkItems(field, len(xs), min); err != nil {
		return err
	}
	for i, x := range xs {
		if err := checkInstitution(fieldAt(field, i), x); err != nil {
			return err
		}
	}
	return noDuplicates(field, xs)
}

func checkCategories(field string, cs []Category) error {
	if err := checkItems(field, len(cs), 1); err != nil {
		return err
	}
	for i, c := range cs {
		if err := enumValue(fieldAt(field, i), c, Categories); err != nil {
			return err
		}
	}
	return noDuplicates(field, cs)
}

func noDuplicates[T comparable](field string, xs []T) error {
	seen := make(map[T]int, len(xs))
	for i, x := range xs {
		if j, ok := seen[x]; ok {
			return Invalid(fieldAt(field, i), "valeur en double (déjà donnée en %s)", fieldAt(field, j))
		}
		seen[x] = i
	}
	return nil
}

// checkDepartement checks a French département code: 01 to 95 (no 20 since
// Corsica was split), 2A, 2B, or 971 to 976 overseas.
func checkDepartement(field, v string) error {
	if validDepartement(v) {
		return nil
	}
	if v == "" {
		return Invalid(field, "le champ est obligatoire : code du département, par exemple 35")
	}
	return Invalid(field, "code de département inconnu : deux chiffres de 01 à 95, 2A ou 2B pour la Corse, 971 à 976 pour l'outre-mer")
}

func validDepartement(v string) bool {
	if v == "2A" || v == "2B" {
		return true
	}
	if (len(v) != 2 && len(v) != 3) || strings.ContainsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		return false
	}
	n := 0
	for _, r := range v {
		n = n*10 + int(r-'0')
	}
	if len(v) == 3 {
		return n >= 971 && n <= 976
	}
	return n >= 1 && n <= 95 && n != 20
}

// checkBirthMonth checks an optional "YYYY-MM".
func checkBirthMonth(field, v string) error {
	if v == "" {
		return nil
	}
	if _, err := time.Parse("2006-01", v); err != nil || len(v) != 7 {
		return Invalid(field, "le mois de naissance s'écrit AAAA-MM, par exemple 2014-09")
	}
	return nil
}
