package domain

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Decide decides a command against a case's state: the events to record, or
// a refusal (*Error with Code ERefused/EForbidden/EInvalid) naming the rule. It never changes s.
//
// The events carry their type, category, actor, occurred-at (the command's,
// or now), schema version, correlation and causation ids and the payload as
// compact JSON; Seal gives them the rest. Refusals, in the order they are
// checked:
//   - EInvalid: "payload_mismatch" (no payload, or not the command's type);
//     "invalid_field" with Field "payload.<path>" (the payload's Validate),
//     "category" (a category the type may not be recorded under) or
//     "actor.institution" / "actor.familyMember" (no actor);
//   - EForbidden: "role_cannot_record", "family_records_own_consent_only";
//   - ERefused: "case_already_opened", "case_not_opened", "case_closed";
//   - EForbidden: "partner_excluded", "coordinator_only", "members_only",
//     "referent_own_only";
//   - ERefused: the rule the command breaks given the case (see the checks
//     per type below).
//
// Messages are French and may name the people and institutions of the case:
// log the rule, not the message.
func Decide(s *State, cmd Command, now time.Time) ([]Event, error) {
	if err := checkPayload(cmd); err != nil {
		return nil, err
	}
	cat, err := eventCategory(cmd)
	if err != nil {
		return nil, err
	}
	if err := authorize(s, cmd, now); err != nil {
		return nil, err
	}
	if err := keepRules(s, cmd, now); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(cmd.Payload)
	if err != nil {
		return nil, fmt.Errorf("domain: encoding the %s payload: %w", cmd.Type, err)
	}
	occurred := cmd.OccurredAt
	if occurred.IsZero() {
		occurred = now
	} else if err := CheckDate("occurredAt", occurred); err != nil {
		return nil, err
	}
	if err := checkOccurredUntil(cmd.Payload, occurred); err != nil {
		return nil, err
	}
	return []Event{{
		Type:          cmd.Type,
		SchemaVersion: CurrentSchemaVersion,
		OccurredAt:    occurred,
		Actor:         cmd.Actor,
		Category:      cat,
		CorrelationID: cmd.CorrelationID,
		CausationID:   cmd.CausationID,
		Payload:       payload,
	}}, nil
}

// checkPayload checks the payload is there, of the command's type, and valid
// on its own.
func checkPayload(cmd Command) error {
	if cmd.Payload == nil || reflect.ValueOf(cmd.Payload).Kind() == reflect.Pointer && reflect.ValueOf(cmd.Payload).IsNil() {
		return &Error{Code: EInvalid, Rule: "payload_mismatch", Field: "payload",
			Message: "le contenu de l'événement est absent"}
	}
	if t := cmd.Payload.EventType(); t != cmd.Type {
		return &Error{Code: EInvalid, Rule: "payload_mismatch", Field: "type",
			Message: fmt.Sprintf("le contenu fourni est celui d'un événement %s, pas %s", t, cmd.Type)}
	}
	if err := cmd.Payload.Validate(); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return err
		}
		c := *e
		c.Field = strings.TrimSuffix("payload."+e.Field, ".")
		return &c
	}
	return nil
}

// eventCategory returns the command's category, or the type's default.
func eventCategory(cmd Command) (Category, error) {
	allowed := AllowedCategories(cmd.Type)
	if cmd.Category == "" {
		return allowed[0], nil
	}
	if !slices.Contains(allowed, cmd.Category) {
		names := make([]string, len(allowed))
		for i, c := range allowed {
			names[i] = string(c)
		}
		return "", Invalid("category", "un événement %s ne peut pas être classé « %s » ; catégories possibles : %s",
			cmd.Type, cmd.Category, strings.Join(names, ", "))
	}
	return cmd.Category, nil
}

// authorize checks who may record what: the role, the case's life cycle,
// judicial exclusion, and membership or coordination.
func authorize(s *State, cmd Command, now time.Time) error {
	switch cmd.Role {
	case RoleProfessional:
		if cmd.Actor.Institution == "" {
			return Invalid("actor.institution", "l'institution de l'auteur est obligatoire")
		}
	case RoleFamily:
		if cmd.Actor.FamilyMember == uuid.Nil {
			return Invalid("actor.familyMember", "l'identité du membre de la famille est obligatoire")
		}
		if err := familyOwnConsent(cmd); err != nil {
			return err
		}
	case RoleAuditor:
		return forbid("role_cannot_record", "Un auditeur consulte les dossiers mais n'y enregistre rien.")
	case RoleAdmin:
		return forbid("role_cannot_record", "Un administrateur gère l'annuaire et les accès mais n'enregistre rien dans les dossiers.")
	default:
		return forbid("role_cannot_record", "Seuls les professionnels des institutions membres et les titulaires de l'autorité parentale enregistrent dans un dossier.")
	}

	if p, ok := cmd.Payload.(*CaseOpenedPayload); ok {
		return canOpen(s, cmd, p)
	}
	if !s.Opened {
		return Refuse("case_not_opened", "Le dossier n'est pas encore ouvert : l'institution coordinatrice doit d'abord l'ouvrir.")
	}
	if s.Closed {
		return Refuse("case_closed", "Le dossier est clôturé : plus rien n'y est enregistré.")
	}
	if cmd.Role == RoleFamily {
		return nil // consents in their own name: checked by keepRules
	}

	inst := cmd.Actor.Institution
	for _, r := range s.activeRestrictions(PartnerExcluded, now) {
		if r.NamesInstitution(inst) {
			return basedOn(r, forbid("partner_excluded", "Le juge des enfants a exclu %s de la coopération (ordonnance %s, %s) : elle ne peut rien enregistrer dans ce dossier.",
				s.institutionName(inst), r.OrderReference, r.Court))
		}
	}
	if action, ok := coordinatorActions[cmd.Type]; ok {
		if inst != s.Coordinator {
			return forbid("coordinator_only", "Seule l'institution coordinatrice (%s) peut %s.", s.institutionName(s.Coordinator), action)
		}
		return nil
	}
	if !s.IsMember(inst) {
		return forbid("members_only", "%s n'est pas membre du dossier : seuls les membres y enregistrent.", s.institutionName(inst))
	}
	return nil
}

// coordinatorActions are the commands only the coordinator records, and what
// they do in words.
var coordinatorActions = map[EventType]string{
	PartnerJoined:          "ajouter une institution au dossier",
	PartnerLeft:            "retirer une institution du dossier",
	FamilyMemberRecorded:   "enregistrer un membre de la famille",
	CoordinationHandedOver: "transmettre la coordination",
	CaseClosed:             "clôturer le dossier",
}

// familyOwnConsent keeps family members to giving and withdrawing consents in
// their own name.
func familyOwnConsent(cmd Command) error {
	me := cmd.Actor.FamilyMember
	switch p := cmd.Payload.(type) {
	case *ConsentGivenPayload:
		if p.GivenBy == me {
			return nil
		}
	case *ConsentWithdrawnPayload:
		if p.WithdrawnBy == me {
			return nil
		}
	}
	return forbid("family_records_own_consent_only", "Un membre de la famille peut seulement donner ou retirer un consentement, en son propre nom.")
}

func canOpen(s *State, cmd Command, p *CaseOpenedPayload) error {
	if s.Opened || s.Version > 0 {
		return Refuse("case_already_opened", "Ce dossier est déjà ouvert.")
	}
	if cmd.Actor.Institution != p.Coordinator {
		return forbid("coordinator_only", "Seule l'institution désignée comme coordinatrice (%s) peut ouvrir le dossier.", p.Coordinator)
	}
	return nil
}

// keepRules checks the rules a command must keep given the case.
func keepRules(s *State, cmd Command, now time.Time) error {
	switch p := cmd.Payload.(type) {
	case *PartnerJoinedPayload:
		return partnerJoined(s, p, now)
	case *PartnerLeftPayload:
		return partnerLeft(s, p)
	case *ReferentChangedPayload:
		return referentChanged(s, cmd.Actor.Institution, p)
	case *CoordinationHandedOverPayload:
		return coordinationHandedOver(s, p)
	case *FamilyMemberRecordedPayload:
		if _, ok := s.Family[p.FamilyMember]; ok {
			return refuseAt("payload.familyMember", "family_member_already_recorded", "Cette personne est déjà enregistrée au dossier.")
		}
	case *NeedIdentifiedPayload:
		if _, ok := s.Needs[p.Need]; ok {
			return duplicate("payload.need", "besoin")
		}
	case *ObjectiveSetPayload:
		return objectiveSet(s, p)
	case *ObjectiveReviewedPayload:
		if _, ok := s.Objectives[p.Objective]; !ok {
			return refuseAt("payload.objective", "unknown_objective", "Cet objectif n'existe pas dans le plan du dossier.")
		}
	case *InterventionAgreedPayload:
		return interventionAgreed(s, p, now)
	case *InterventionChangedPayload:
		if err := knownIntervention(s, p.Intervention); err != nil {
			return err
		}
		return contactsAllowed(s, p.Contacts, now)
	case *InterventionEndedPayload:
		return knownIntervention(s, p.Intervention)
	case *PlansArticulatedPayload:
		for i, l := range p.Plans {
			if _, ok := s.Members[l.Institution]; !ok {
				return refuseAt(fieldAt("payload.plans", i)+".institution", "plan_institution_unknown",
					"%s n'a jamais été membre du dossier : seul le plan d'une institution membre peut y être articulé.", l.Institution)
			}
		}
	case *SynthesisMeetingHeldPayload:
		return meetingHeld(s, p)
	case *DecisionRecordedPayload:
		return decisionRecorded(s, p, now)
	case *CrisisDeclaredPayload:
		if _, ok := s.Crises[p.Crisis]; ok {
			return duplicate("payload.crisis", "crise")
		}
		for i, o := range p.OnCall {
			if !s.IsMember(o.Institution) {
				return refuseAt(fieldAt("payload.onCall", i)+".institution", "oncall_members_only",
					"%s n'est pas membre du dossier : seuls les membres assurent l'astreinte d'une crise.", s.institutionName(o.Institution))
			}
		}
	case *CrisisResolvedPayload:
		if c, ok := s.Crises[p.Crisis]; !ok || c.Resolved {
			return refuseAt("payload.crisis", "unknown_crisis", "Aucune crise en cours ne porte cet identifiant dans le dossier.")
		}
	case *ConsentGivenPayload:
		return consentGiven(s, p)
	case *ConsentWithdrawnPayload:
		if c, ok := s.Consents[p.Consent]; !ok || c.WithdrawnSeq != 0 {
			return refuseAt("payload.consent", "unknown_consent", "Aucun consentement en vigueur ne porte cet identifiant dans le dossier (inconnu ou déjà retiré).")
		}
		return parentalAuthority(s, "payload.withdrawnBy", p.WithdrawnBy, "retirer")
	case *JudicialRestrictionImposedPayload:
		return restrictionImposed(s, p)
	case *JudicialRestrictionLiftedPayload:
		r, ok := s.Restrictions[p.Restriction]
		if !ok || r.LiftedSeq != 0 {
			return refuseAt("payload.restriction", "unknown_restriction", "Aucune ordonnance en vigueur ne porte cet identifiant dans le dossier (inconnue ou déjà levée).")
		}
		if r.OrderReference != p.OrderReference {
			return refuseAt("payload.orderReference", "unknown_restriction",
				"La référence indiquée ne correspond pas à l'ordonnance enregistrée (%s).", r.OrderReference)
		}
	case *FamilyInformedPayload:
		if err := formerOrCurrentMember(s, p.Institution); err != nil {
			return err
		}
		for i, f := range p.FamilyMembers {
			if _, ok := s.Family[f]; !ok {
				return refuseAt(fieldAt("payload.familyMembers", i), "family_member_unknown",
					"Cette personne n'est pas enregistrée au dossier : le coordinateur doit d'abord l'enregistrer.")
			}
		}
	case *FamilyNotInformedPayload:
		return formerOrCurrentMember(s, p.Institution)
	}
	return nil
}

func partnerJoined(s *State, p *PartnerJoinedPayload, now time.Time) error {
	if s.IsMember(p.Institution) {
		return refuseAt("payload.institution", "already_member", "%s est déjà membre du dossier.", s.institutionName(p.Institution))
	}
	for _, r := range s.activeRestrictions(PartnerExcluded, now) {
		if r.NamesInstitution(p.Institution) {
			return basedOn(r, refuseAt("payload.institution", "partner_excluded", "Le juge des enfants a exclu %s de la coopération (ordonnance %s, %s) : elle ne peut pas rejoindre le dossier.",
				s.institutionName(p.Institution), r.OrderReference, r.Court))
		}
	}
	return nil
}

func partnerLeft(s *State, p *PartnerLeftPayload) error {
	if !s.IsMember(p.Institution) {
		return refuseAt("payload.institution", "not_a_member", "%s n'est pas membre du dossier.", s.institutionName(p.Institution))
	}
	if p.Institution == s.Coordinator {
		return refuseAt("payload.institution", "coordinator_cannot_leave",
			"%s coordonne le dossier : elle doit transmettre la coordination à un autre membre avant de le quitter.", s.institutionName(p.Institution))
	}
	return nil
}

func referentChanged(s *State, actor InstitutionID, p *ReferentChangedPayload) error {
	if !s.IsMember(p.Institution) {
		return refuseAt("payload.institution", "not_a_member", "%s n'est pas membre du dossier.", s.institutionName(p.Institution))
	}
	if actor != p.Institution && actor != s.Coordinator {
		e := forbid("referent_own_only", "Seule %s, ou l'institution coordinatrice, peut changer son référent.", s.institutionName(p.Institution))
		e.Field = "payload.institution"
		return e
	}
	return nil
}

func coordinationHandedOver(s *State, p *CoordinationHandedOverPayload) error {
	if p.From != s.Coordinator {
		return refuseAt("payload.from", "handover_to_member", "La coordination est détenue par %s : c'est elle qui la transmet.", s.institutionName(s.Coordinator))
	}
	if !s.IsMember(p.To) || p.To == p.From {
		return refuseAt("payload.to", "handover_to_member", "La coordination ne peut être transmise qu'à un autre membre du dossier ; %s n'en est pas membre.", s.institutionName(p.To))
	}
	return nil
}

func objectiveSet(s *State, p *ObjectiveSetPayload) error {
	if _, ok := s.Objectives[p.Objective]; ok {
		return duplicate("payload.objective", "objectif")
	}
	for i, n := range p.Needs {
		if _, ok := s.Needs[n]; !ok {
			return refuseAt(fieldAt("payload.needs", i), "unknown_need", "Ce besoin n'a pas été identifié dans le dossier : identifiez-le d'abord.")
		}
	}
	return nil
}

func interventionAgreed(s *State, p *InterventionAgreedPayload, now time.Time) error {
	if _, ok := s.Interventions[p.Intervention]; ok {
		return duplicate("payload.intervention", "intervention")
	}
	if !s.IsMember(p.Institution) {
		return refuseAt("payload.institution", "intervention_member_only",
			"%s n'est pas membre du dossier : seule une institution membre peut s'engager sur une intervention.", s.institutionName(p.Institution))
	}
	for i, o := range p.Objectives {
		if _, ok := s.Objectives[o]; !ok {
			return refuseAt(fieldAt("payload.objectives", i), "unknown_objective", "Cet objectif n'existe pas dans le plan du dossier.")
		}
	}
	return contactsAllowed(s, p.Contacts, now)
}

func knownIntervention(s *State, id uuid.UUID) error {
	if i, ok := s.Interventions[id]; !ok || i.Ended {
		return refuseAt("payload.intervention", "unknown_intervention", "Aucune intervention en cours ne porte cet identifiant dans le dossier (inconnue ou terminée).")
	}
	return nil
}

func meetingHeld(s *State, p *SynthesisMeetingHeldPayload) error {
	if s.Meetings[p.Meeting] {
		return duplicate("payload.meeting", "réunion")
	}
	for i, inst := range p.Participants {
		// A meeting is often recorded after it was held: a member that has
		// left since may be listed.
		if _, ok := s.Members[inst]; !ok {
			return refuseAt(fieldAt("payload.participants", i), "meeting_participants_known",
				"%s n'est pas membre du dossier : seuls les membres figurent parmi les participants.", inst)
		}
	}
	for i, f := range p.FamilyPresent {
		if _, ok := s.Family[f]; !ok {
			return refuseAt(fieldAt("payload.familyPresent", i), "meeting_participants_known",
				"Cette personne n'est pas enregistrée au dossier : seuls les membres de la famille enregistrés figurent parmi les présents.")
		}
	}
	return nil
}

func decisionRecorded(s *State, p *DecisionRecordedPayload, now time.Time) error {
	if s.Decisions[p.Decision] {
		return duplicate("payload.decision", "décision")
	}
	for i, inst := range p.Agreeing {
		if !s.IsMember(inst) {
			return refuseAt(fieldAt("payload.agreeing", i), "decision_members_only",
				"%s n'est pas membre du dossier : seuls les membres approuvent une décision.", s.institutionName(inst))
		}
	}
	for i, d := range p.Dissenting {
		if !s.IsMember(d.Institution) {
			return refuseAt(fieldAt("payload.dissenting", i)+".institution", "decision_members_only",
				"%s n'est pas membre du dossier : seuls les membres s'opposent à une décision.", s.institutionName(d.Institution))
		}
	}
	return contactsAllowed(s, p.Contacts, now)
}

// contactsAllowed checks the contacts an intervention or a decision
// schedules: with recorded family members, and as the judge's orders in
// force at now allow.
func contactsAllowed(s *State, contacts []ContactArrangement, now time.Time) error {
	for i, c := range contacts {
		f := fieldAt("payload.contacts", i)
		if _, ok := s.Family[c.FamilyMember]; !ok {
			return refuseAt(f+".familyMember", "contact_family_unknown",
				"Cette personne n'est pas enregistrée au dossier : un contact ne se programme qu'avec un membre de la famille enregistré.")
		}
		name := s.familyName(c.FamilyMember)
		for _, r := range s.activeRestrictions(ContactSuspended, now) {
			if r.NamesFamilyMember(c.FamilyMember) && !c.Supervised {
				return basedOn(r, refuseAt(f+".supervised", "contact_suspended",
					"Le juge des enfants a suspendu les contacts avec %s (ordonnance %s, %s) : un contact non accompagné ne peut pas être programmé.",
					name, r.OrderReference, r.Court))
			}
		}
		for _, r := range s.activeRestrictions(VisitsSupervised, now) {
			if !r.NamesFamilyMember(c.FamilyMember) {
				continue
			}
			if !c.Supervised {
				return basedOn(r, refuseAt(f+".supervised", "visits_supervised",
					"Le juge des enfants impose que les contacts avec %s soient accompagnés (ordonnance %s, %s) : le contact doit être accompagné.",
					name, r.OrderReference, r.Court))
			}
			if r.ThirdParty != "" && !strings.EqualFold(strings.TrimSpace(c.ThirdParty), strings.TrimSpace(r.ThirdParty)) {
				return basedOn(r, refuseAt(f+".thirdParty", "visits_supervised",
					"Le juge des enfants impose que les contacts avec %s aient lieu en présence de %s (ordonnance %s, %s) : indiquez ce tiers.",
					name, r.ThirdParty, r.OrderReference, r.Court))
			}
		}
	}
	return nil
}

func consentGiven(s *State, p *ConsentGivenPayload) error {
	if _, ok := s.Consents[p.Consent]; ok {
		return duplicate("payload.consent", "consentement")
	}
	if err := parentalAuthority(s, "payload.givenBy", p.GivenBy, "donner"); err != nil {
		return err
	}
	// A consent may name any institution (of the directory: the API checks
	// it) and takes effect for members only: refusing a non-member would
	// tell a parent which institutions are members, including one the family
	// is not informed of.
	return nil
}

// parentalAuthority checks that p is a recorded holder of parental
// authority; verb is what they do with the consent ("donner", "retirer").
func parentalAuthority(s *State, field string, p PersonID, verb string) error {
	fm, ok := s.Family[p]
	if !ok {
		return refuseAt(field, "consent_parental_authority",
			"Cette personne n'est pas enregistrée au dossier : seul un titulaire de l'autorité parentale enregistré peut %s un consentement.", verb)
	}
	if !fm.ParentalAuthority {
		return refuseAt(field, "consent_parental_authority",
			"%s n'est pas titulaire de l'autorité parentale : seul un titulaire peut %s un consentement.", fm.Name, verb)
	}
	return nil
}

func restrictionImposed(s *State, p *JudicialRestrictionImposedPayload) error {
	if _, ok := s.Restrictions[p.Restriction]; ok {
		return duplicate("payload.restriction", "ordonnance")
	}
	for i, f := range p.FamilyMembers {
		if _, ok := s.Family[f]; !ok {
			return refuseAt(fieldAt("payload.familyMembers", i), "restriction_family_unknown",
				"Cette personne n'est pas enregistrée au dossier : le coordinateur doit d'abord l'enregistrer pour que l'ordonnance la vise.")
		}
	}
	for i, inst := range p.Institutions {
		if _, ok := s.Members[inst]; !ok {
			return refuseAt(fieldAt("payload.institutions", i), "restriction_institution_unknown",
				"%s n'a jamais été membre du dossier : l'ordonnance ne peut viser que des membres, actuels ou anciens.", inst)
		}
	}
	return nil
}

func formerOrCurrentMember(s *State, inst InstitutionID) error {
	if _, ok := s.Members[inst]; !ok {
		return refuseAt("payload.institution", "not_a_member", "%s n'a jamais été membre du dossier.", inst)
	}
	return nil
}

// activeRestrictions returns the orders of a kind in force at t, in the
// order they were imposed.
func (s *State) activeRestrictions(kind RestrictionKind, t time.Time) []*Restriction {
	var out []*Restriction
	for _, r := range s.Restrictions {
		if r.Kind == kind && r.ActiveAt(t) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Restriction) int { return cmp.Compare(a.ImposedSeq, b.ImposedSeq) })
	return out
}

// institutionName names an institution in a message: its name when it is or
// was a member, else its identifier.
func (s *State) institutionName(id InstitutionID) string {
	if m, ok := s.Members[id]; ok && m.Name != "" {
		return m.Name
	}
	return string(id)
}

// familyName names a recorded family member in a message.
func (s *State) familyName(p PersonID) string {
	if f, ok := s.Family[p]; ok && f.Name != "" {
		return f.Name
	}
	return "cette personne"
}

// basedOn marks refusal e as resting on order r (TellRefusal).
func basedOn(r *Restriction, e *Error) *Error {
	e.Basis = r.ImposedSeq
	return e
}

func forbid(rule, format string, args ...any) *Error {
	e := Refuse(rule, format, args...)
	e.Code = EForbidden
	return e
}

func refuseAt(field, rule, format string, args ...any) *Error {
	e := Refuse(rule, format, args...)
	e.Field = field
	return e
}

func duplicate(field, what string) *Error {
	return refuseAt(field, "duplicate_id", "Cet identifiant de %s est déjà utilisé dans le dossier : chaque %s a son propre identifiant.", what, what)
}
