package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// demoTerritory is a small territory of Ille-et-Vilaine: every name, place
// and order reference in it is invented.
var demoInstitutions = []directory.Institution{
	{ID: "ase-35", Kind: domain.KindASE, Name: "ASE d'Ille-et-Vilaine — CDAS de Rennes Nord", Departement: "35",
		Contacts: []directory.Contact{{Label: "Accueil CDAS", Phone: "02 99 00 00 01", Hours: "lun-ven 9h-17h"}},
		OnCall:   "Cadre d'astreinte enfance : 02 99 00 00 99, soirs et week-ends"},
	{ID: "mecs-les-tilleuls", Kind: domain.KindMECS, Name: "MECS Les Tilleuls", Departement: "35",
		Contacts: []directory.Contact{{Label: "Éducateurs, unité 10-13 ans", Phone: "02 99 00 00 02", Hours: "24h/24"}},
		OnCall:   "Chef de service d'astreinte : 06 00 00 00 02"},
	{ID: "ditep-la-passerelle", Kind: domain.KindDITEP, Name: "DITEP La Passerelle", Departement: "35",
		Contacts: []directory.Contact{{Label: "Secrétariat", Email: "secretariat@ditep-passerelle.example", Hours: "lun-ven 8h30-17h"}}},
	{ID: "cmp-rennes-nord", Kind: domain.KindCMP, Name: "CMP infanto-juvénile de Rennes Nord", Departement: "35",
		Contacts: []directory.Contact{{Label: "Accueil", Phone: "02 99 00 00 04", Hours: "lun-ven 9h-18h"}}},
	{ID: "college-jules-ferry", Kind: domain.KindSchool, Name: "Collège Jules Ferry", Departement: "35",
		Contacts: []directory.Contact{{Label: "CPE", Phone: "02 99 00 00 05", Hours: "jours scolaires 8h-17h"}}},
	{ID: "aed-sauvegarde-35", Kind: domain.KindAED, Name: "Service AED — Sauvegarde de l'enfance 35", Departement: "35",
		Contacts: []directory.Contact{{Label: "Secrétariat", Phone: "02 99 00 00 06", Hours: "lun-ven 9h-17h"}}},
	{ID: "placement-familial-35", Kind: domain.KindFoster, Name: "Service de placement familial de Vitré", Departement: "35",
		OnCall: "Astreinte du service : 06 00 00 00 07"},
}

// demoPerson is a principal of the demo, with the shell variable its token
// is printed under.
type demoPerson struct {
	variable string
	p        directory.Principal
}

// loadDemo fills an empty directory with the demo territory, records three
// cases through the case service (the same path as the API), and prints the
// tokens once. On a directory that is not empty it does nothing: the tokens
// were printed at the first start and only their hashes were kept.
func loadDemo(ctx context.Context, dir *directory.Directory, svc *cases.Service, out io.Writer) error {
	if !dir.Empty() {
		fmt.Fprintln(out, "# Demo: the data directory already holds a territory; its tokens were printed at first start (only their hashes are kept).")
		return nil
	}
	for _, i := range demoInstitutions {
		if err := dir.AddInstitution(i); err != nil {
			return err
		}
	}
	mother, father, inesMother, noahMother := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	people := []demoPerson{
		{"ASE", directory.Principal{Role: domain.RoleProfessional, Institution: "ase-35", Name: "Claire Martin, référente ASE"}},
		{"MECS", directory.Principal{Role: domain.RoleProfessional, Institution: "mecs-les-tilleuls", Name: "Julien Roux, éducateur référent"}},
		{"DITEP", directory.Principal{Role: domain.RoleProfessional, Institution: "ditep-la-passerelle", Name: "Sophie Bernard, psychologue"}},
		{"CMP", directory.Principal{Role: domain.RoleProfessional, Institution: "cmp-rennes-nord", Name: "Dr Karim Benali, pédopsychiatre"}},
		{"SCHOOL", directory.Principal{Role: domain.RoleProfessional, Institution: "college-jules-ferry", Name: "Anne Le Gall, CPE"}},
		{"AED", directory.Principal{Role: domain.RoleProfessional, Institution: "aed-sauvegarde-35", Name: "Marc Lefèvre, éducateur AED"}},
		{"FOSTER", directory.Principal{Role: domain.RoleProfessional, Institution: "placement-familial-35", Name: "Hélène Morel, référente placement familial"}},
		{"MOTHER", directory.Principal{Role: domain.RoleFamily, FamilyMember: mother, Name: "Nathalie Durand (mère de LEO-35-0147)"}},
		{"FATHER", directory.Principal{Role: domain.RoleFamily, FamilyMember: father, Name: "Thomas Durand (père de LEO-35-0147)"}},
		{"AUDITOR", directory.Principal{Role: domain.RoleAuditor, Name: "Délégué à la protection des données du Département"}},
		{"ADMIN", directory.Principal{Role: domain.RoleAdmin, Name: "Administrateur Maillage"}},
	}
	tokens := make([]string, len(people))
	for i := range people {
		tok, p, err := dir.Issue(people[i].p, svc.Now())
		if err != nil {
			return err
		}
		tokens[i], people[i].p = tok, p
	}
	actor := func(variable string) (domain.Actor, domain.Role) {
		for _, p := range people {
			if p.variable == variable {
				return p.p.Actor(), p.p.Role
			}
		}
		panic("demo: no person " + variable)
	}
	leo, ines, noah := uuid.New(), uuid.New(), uuid.New()
	// The orders run a year from today, so the demo shows them in force
	// whenever it is loaded.
	r := demoRecorder{ctx: ctx, svc: svc, actor: actor, ordersUntil: svc.Now().AddDate(1, 0, 0).Truncate(24 * time.Hour)}
	r.leo(leo, mother, father)
	r.ines(ines, inesMother)
	r.noah(noah, noahMother)
	if r.err != nil {
		return r.err
	}

	fmt.Fprintln(out, "# Maillage demo territory loaded (Ille-et-Vilaine, invented names).")
	fmt.Fprintln(out, "# Tokens are shown this once; only their SHA-256 is stored. Paste these lines in your shell:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for i, p := range people {
		who := p.p.Name
		if p.p.Institution != "" {
			who += " — " + string(p.p.Institution)
		}
		fmt.Fprintf(tw, "export %s=%s\t# %s (%s)\n", p.variable, tokens[i], who, p.p.Role)
	}
	fmt.Fprintf(tw, "export CASE_LEO=%s\t# LEO-35-0147, 12 ans, placement judiciaire en MECS, DITEP, CMP, collège\n", leo)
	fmt.Fprintf(tw, "export CASE_INES=%s\t# INE-35-0212, 9 ans, AED administrative, collège\n", ines)
	fmt.Fprintf(tw, "export CASE_NOAH=%s\t# NOA-35-0305, 14 mois, placement familial\n", noah)
	fmt.Fprintf(tw, "export MOTHER_ID=%s\t# Nathalie Durand, titulaire de l'autorité parentale\n", mother)
	fmt.Fprintf(tw, "export FATHER_ID=%s\t# Thomas Durand, visé par les ordonnances\n", father)
	return tw.Flush()
}

// demoRecorder records commands through the case service, keeping the
// first error.
type demoRecorder struct {
	ctx         context.Context
	svc         *cases.Service
	actor       func(string) (domain.Actor, domain.Role)
	ordersUntil time.Time
	err         error
}

func (r *demoRecorder) do(id domain.CaseID, who string, cat domain.Category, occurred time.Time, p domain.Payload) {
	if r.err != nil {
		return
	}
	a, role := r.actor(who)
	_, err := r.svc.Record(r.ctx, cases.Request{CaseID: id, Command: domain.Command{
		Type: p.EventType(), Category: cat, Actor: a, Role: role, OccurredAt: occurred, Payload: p}})
	if err != nil {
		r.err = fmt.Errorf("%s by %s: %w", p.EventType(), who, err)
	}
}

func day(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02", s, paris)
	if err != nil {
		panic(err)
	}
	return t
}

var paris = func() *time.Location {
	if l, err := time.LoadLocation("Europe/Paris"); err == nil {
		return l
	}
	return time.FixedZone("CET", 3600)
}()

func ptr[T any](v T) *T { return &v }

func (r *demoRecorder) leo(id, mother, father uuid.UUID) {
	ref := func(name, function, phone string) domain.Referent {
		return domain.Referent{Name: name, Function: function, Phone: phone}
	}
	r.do(id, "ASE", "", day("2026-01-12"), &domain.CaseOpenedPayload{ChildReference: "LEO-35-0147", LegalFrame: domain.FrameJudicial,
		Departement: "35", Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: demoInstitutions[0].Name,
		Referent: ref("Claire Martin", "référente ASE", "02 99 00 00 11"), ChildBirthMonth: "2014-03"})
	r.do(id, "ASE", "", day("2026-01-12"), &domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Nathalie Durand",
		Relationship: "mère", ParentalAuthority: true, Address: "4 allée des Mimosas, 35200 Rennes"})
	r.do(id, "ASE", "", day("2026-01-12"), &domain.FamilyMemberRecordedPayload{FamilyMember: father, Name: "Thomas Durand",
		Relationship: "père", ParentalAuthority: true})
	r.do(id, "ASE", "", day("2026-01-15"), &domain.JudicialRestrictionImposedPayload{Restriction: uuid.New(), Kind: domain.PlacementAddressSecret,
		OrderReference: "TPE Rennes 26/00317", Court: "Tribunal pour enfants de Rennes", FamilyMembers: []domain.PersonID{father},
		From: day("2026-01-15"), Until: r.ordersUntil})
	r.do(id, "ASE", "", day("2026-01-15"), &domain.JudicialRestrictionImposedPayload{Restriction: uuid.New(), Kind: domain.ContactSuspended,
		OrderReference: "TPE Rennes 26/00317", Court: "Tribunal pour enfants de Rennes", FamilyMembers: []domain.PersonID{father},
		From: day("2026-01-15"), Until: r.ordersUntil})
	r.do(id, "ASE", "", day("2026-01-16"), &domain.PartnerJoinedPayload{Institution: "mecs-les-tilleuls", Kind: domain.KindMECS,
		Name: demoInstitutions[1].Name, Referent: ref("Julien Roux", "éducateur référent", "02 99 00 00 02"),
		Reason: "accueil de l'enfant en exécution de l'ordonnance de placement"})
	r.do(id, "ASE", "", day("2026-01-16"), &domain.FamilyInformedPayload{Institution: "mecs-les-tilleuls",
		FamilyMembers: []domain.PersonID{mother}, How: "entretien au CDAS le 16 janvier (le père n'est pas informé du lieu d'accueil, ordonnance du 15 janvier)"})
	r.do(id, "MECS", "", day("2026-01-19"), &domain.PlacementChangedPayload{Planned: true, Reason: "mise en œuvre de l'ordonnance de placement",
		PlaceOfLife: "MECS Les Tilleuls, unité des 10-13 ans", Address: "12 rue des Tilleuls, 35000 Rennes", HostInstitution: "mecs-les-tilleuls"})
	r.do(id, "ASE", "", day("2026-02-02"), &domain.PartnerJoinedPayload{Institution: "ditep-la-passerelle", Kind: domain.KindDITEP,
		Name: demoInstitutions[2].Name, Referent: ref("Sophie Bernard", "psychologue", ""), Reason: "orientation DITEP notifiée par la MDPH"})
	r.do(id, "ASE", "", day("2026-02-02"), &domain.PartnerJoinedPayload{Institution: "cmp-rennes-nord", Kind: domain.KindCMP,
		Name: demoInstitutions[3].Name, Referent: ref("Dr Karim Benali", "pédopsychiatre", ""), Reason: "suivi pédopsychiatrique en cours"})
	r.do(id, "ASE", "", day("2026-02-02"), &domain.PartnerJoinedPayload{Institution: "college-jules-ferry", Kind: domain.KindSchool,
		Name: demoInstitutions[4].Name, Referent: ref("Anne Le Gall", "CPE", ""), Reason: "scolarité en 5e, absences répétées"})
	r.do(id, "ASE", "", day("2026-02-03"), &domain.FamilyInformedPayload{Institution: "ditep-la-passerelle",
		FamilyMembers: []domain.PersonID{mother}, How: "courrier et appel téléphonique"})
	schooling, sleep := uuid.New(), uuid.New()
	r.do(id, "SCHOOL", "", day("2026-02-10"), &domain.NeedIdentifiedPayload{Need: schooling, Domain: "schooling",
		Description: "Retrouver une scolarité régulière : 14 demi-journées d'absence au premier trimestre."})
	r.do(id, "CMP", domain.CategoryHealth, day("2026-02-10"), &domain.NeedIdentifiedPayload{Need: sleep, Domain: "health",
		Description: "Troubles anxieux et du sommeil : poursuivre le suivi pédopsychiatrique hebdomadaire."})
	r.do(id, "DITEP", domain.CategoryHealth, day("2026-02-20"), &domain.ObservationRecordedPayload{
		Summary: "Bilan psychologique : difficultés attentionnelles marquées, anxiété importante aux transitions. Traitement en cours d'ajustement par le CMP.",
		Impact:  "negative", ActionTaken: "Temps d'accueil au DITEP ramené à deux demi-journées, avec un rituel d'arrivée."})
	objective := uuid.New()
	r.do(id, "ASE", "", day("2026-03-05"), &domain.ObjectiveSetPayload{Objective: objective, Needs: []uuid.UUID{schooling},
		Title: "Rescolarisation à temps plein au collège d'ici juin", DueDate: ptr(day("2026-06-30"))})
	r.do(id, "MECS", "", day("2026-03-05"), &domain.InterventionAgreedPayload{Intervention: uuid.New(), Institution: "mecs-les-tilleuls",
		Objectives: []uuid.UUID{objective}, Description: "Accompagnement éducatif du quotidien et lien avec le collège",
		Modalities: "Éducateur référent ; accompagnement au collège les lundis et jeudis", Timing: "quotidien, bilan mensuel avec la CPE", Start: day("2026-03-09")})
	r.do(id, "DITEP", "", day("2026-03-05"), &domain.InterventionAgreedPayload{Intervention: uuid.New(), Institution: "ditep-la-passerelle",
		Objectives: []uuid.UUID{objective}, Description: "Accueil thérapeutique et pédagogique",
		Modalities: "Groupe thérapeutique et enseignement adapté", Timing: "mardi et vendredi matin", Start: day("2026-03-10")})
	r.do(id, "MECS", "", day("2026-03-05"), &domain.InterventionAgreedPayload{Intervention: uuid.New(), Institution: "mecs-les-tilleuls",
		Description: "Visites médiatisées avec le père", Modalities: "à l'Espace rencontre Le Lien, en présence d'une tierce personne",
		Timing: "un samedi sur deux, 1 h", Start: day("2026-03-14"),
		Contacts: []domain.ContactArrangement{{FamilyMember: father, Supervised: true, ThirdParty: "Espace rencontre Le Lien"}}})
	r.do(id, "ASE", "", day("2026-03-05"), &domain.SynthesisMeetingHeldPayload{Meeting: uuid.New(),
		Participants:  []domain.InstitutionID{"ase-35", "mecs-les-tilleuls", "ditep-la-passerelle", "cmp-rennes-nord", "college-jules-ferry"},
		FamilyPresent: []domain.PersonID{mother}, ChildHeard: true,
		Decisions:  []string{"Emploi du temps partagé MECS / DITEP / collège", "Point d'étape le 15 avril"},
		NextReview: ptr(day("2026-09-10")), Location: "CDAS de Rennes Nord"})
	r.do(id, "MECS", "", day("2026-04-02"), &domain.ObservationRecordedPayload{
		Summary: "A repris le football au club du quartier, s'y rend seul le mercredi.", Impact: "positive"})
}

func (r *demoRecorder) ines(id, mother uuid.UUID) {
	r.do(id, "ASE", "", day("2026-04-06"), &domain.CaseOpenedPayload{ChildReference: "INE-35-0212", LegalFrame: domain.FrameAdministrative,
		Departement: "35", Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: demoInstitutions[0].Name,
		Referent: domain.Referent{Name: "Claire Martin", Function: "référente ASE"}, ChildBirthMonth: "2017-06"})
	r.do(id, "ASE", "", day("2026-04-06"), &domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Samira Haddad",
		Relationship: "mère", ParentalAuthority: true})
	r.do(id, "ASE", "", day("2026-04-07"), &domain.PartnerJoinedPayload{Institution: "aed-sauvegarde-35", Kind: domain.KindAED,
		Name: demoInstitutions[5].Name, Referent: domain.Referent{Name: "Marc Lefèvre", Function: "éducateur AED"}, Reason: "mesure d'AED acceptée par la mère"})
	r.do(id, "ASE", "", day("2026-04-07"), &domain.PartnerJoinedPayload{Institution: "college-jules-ferry", Kind: domain.KindSchool,
		Name: demoInstitutions[4].Name, Referent: domain.Referent{Name: "Anne Le Gall", Function: "CPE"}, Reason: "repérage par l'équipe éducative"})
	r.do(id, "ASE", "", day("2026-04-07"), &domain.FamilyInformedPayload{Institution: "aed-sauvegarde-35",
		FamilyMembers: []domain.PersonID{mother}, How: "signature du contrat d'AED"})
	need := uuid.New()
	r.do(id, "AED", "", day("2026-04-20"), &domain.NeedIdentifiedPayload{Need: need, Domain: "relationships",
		Description: "Soutenir la mère dans l'organisation des temps de devoirs et de coucher."})
	r.do(id, "AED", "", day("2026-05-11"), &domain.DecisionRecordedPayload{Decision: uuid.New(), Kind: "orientation",
		Summary:    "Proposer une inscription à l'aide aux devoirs du centre social",
		Agreeing:   []domain.InstitutionID{"ase-35", "aed-sauvegarde-35"},
		Dissenting: []domain.Dissent{{Institution: "college-jules-ferry", Reason: "préférence pour le dispositif devoirs faits du collège"}},
		Categories: []domain.Category{domain.CategoryPlan}})
}

func (r *demoRecorder) noah(id, mother uuid.UUID) {
	r.do(id, "ASE", "", day("2026-09-01"), &domain.CaseOpenedPayload{ChildReference: "NOA-35-0305", LegalFrame: domain.FrameJudicial,
		Departement: "35", Coordinator: "ase-35", CoordinatorKind: domain.KindASE, CoordinatorName: demoInstitutions[0].Name,
		Referent: domain.Referent{Name: "Claire Martin", Function: "référente ASE"}, ChildBirthMonth: "2025-09"})
	r.do(id, "ASE", "", day("2026-09-01"), &domain.FamilyMemberRecordedPayload{FamilyMember: mother, Name: "Julie Perrin",
		Relationship: "mère", ParentalAuthority: true})
	r.do(id, "ASE", "", day("2026-09-02"), &domain.PartnerJoinedPayload{Institution: "placement-familial-35", Kind: domain.KindFoster,
		Name: demoInstitutions[6].Name, Referent: domain.Referent{Name: "Hélène Morel", Function: "référente placement familial"}, Reason: "accueil en famille d'accueil"})
	r.do(id, "ASE", "", day("2026-09-02"), &domain.FamilyNotInformedPayload{Institution: "placement-familial-35",
		Reason: "Mère hospitalisée, information différée sur avis médical", ReviewOn: day("2026-10-02")})
	r.do(id, "FOSTER", "", day("2026-10-20"), &domain.PlacementChangedPayload{Planned: false,
		Reason: "Hospitalisation de l'assistante familiale : accueil relais en urgence", PlaceOfLife: "Famille d'accueil relais, secteur de Vitré"})
}
