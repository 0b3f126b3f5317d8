package personal

import "github.com/maillage/maillage/domain"

// Why a string field may stay readable after erasure: it cannot hold free
// text.
const (
	// ClassClosedList: one value of a closed list, the validation refuses
	// any other.
	ClassClosedList = "closed list"
	// ClassIdentifier: an institution identifier of the directory
	// ("ase-35"); the validation refuses anything but letters without
	// accents, digits, "-", "_" and ".", and the policy decides by it.
	ClassIdentifier = "institution identifier"
	// ClassDirectoryName: an institution's name, which the HTTP edge takes
	// from the directory whatever the client sent (adapters/http,
	// Handler.complete). It stays readable because the policy reads it
	// from the access state, which the read models keep sealed, to find
	// the payloads that mention a member (domain.Sight.memberNeedles): a
	// sealed name would find nothing, and redact nothing.
	ClassDirectoryName = "institution name from the directory"
)

// ClearField is a string field of an event type that is not personal data,
// Class saying why and Enforced what keeps it so.
type ClearField struct {
	Type     domain.EventType
	Path     string
	Class    string
	Enforced string
}

// Validations keeping the clear fields closed (domain/validate.go).
const (
	byInstitution = "checkInstitution"
	byDirectory   = "adapters/http Handler.complete (from the directory)"
)

// readable lists, per event type, the string fields that are not personal
// data. With fields, it covers every string field of the catalogue
// (TestEveryStringFieldIsClassified).
var readable = map[domain.EventType][]ClearField{
	domain.CaseOpened: {
		{Path: "legalFrame", Class: ClassClosedList, Enforced: "enumValue(legalFrames)"},
		{Path: "departement", Class: ClassClosedList, Enforced: "checkDepartement (01 to 95, 2A, 2B, 971 to 976)"},
		{Path: "coordinator", Class: ClassIdentifier, Enforced: byInstitution},
		{Path: "coordinatorKind", Class: ClassClosedList, Enforced: "checkKind(InstitutionKinds)"},
		{Path: "coordinatorName", Class: ClassDirectoryName, Enforced: byDirectory},
	},
	domain.PartnerJoined: {
		{Path: "institution", Class: ClassIdentifier, Enforced: byInstitution},
		{Path: "kind", Class: ClassClosedList, Enforced: "checkKind(InstitutionKinds)"},
		{Path: "name", Class: ClassDirectoryName, Enforced: byDirectory},
	},
	domain.PartnerLeft:     {{Path: "institution", Class: ClassIdentifier, Enforced: byInstitution}},
	domain.ReferentChanged: {{Path: "institution", Class: ClassIdentifier, Enforced: byInstitution}},
	domain.CoordinationHandedOver: {
		{Path: "from", Class: ClassIdentifier, Enforced: byInstitution},
		{Path: "to", Class: ClassIdentifier, Enforced: byInstitution},
	},
	domain.ObjectiveReviewed:  {{Path: "status", Class: ClassClosedList, Enforced: "enumValue(objectiveStatuses)"}},
	domain.InterventionAgreed: {{Path: "institution", Class: ClassIdentifier, Enforced: byInstitution}},
	domain.PlansArticulated: {
		{Path: "plans[].kind", Class: ClassClosedList, Enforced: "enumValue(planKinds)"},
		{Path: "plans[].institution", Class: ClassIdentifier, Enforced: byInstitution},
	},
	domain.SynthesisMeetingHeld: {{Path: "participants[]", Class: ClassIdentifier, Enforced: "checkInstitutions"}},
	domain.DecisionRecorded: {
		{Path: "agreeing[]", Class: ClassIdentifier, Enforced: "checkInstitutions"},
		{Path: "dissenting[].institution", Class: ClassIdentifier, Enforced: byInstitution},
		{Path: "categories[]", Class: ClassClosedList, Enforced: "checkCategories(Categories)"},
	},
	domain.CrisisDeclared: {{Path: "onCall[].institution", Class: ClassIdentifier, Enforced: byInstitution}},
	domain.PlacementChanged: {
		{Path: "hostInstitution", Class: ClassIdentifier, Enforced: byInstitution},
		{Path: "dateCertainty", Class: ClassClosedList, Enforced: "enumValue(dateCertainties)"},
	},
	domain.ObservationRecorded: {
		{Path: "impact", Class: ClassClosedList, Enforced: "enumValue(impacts)"},
		{Path: "dateCertainty", Class: ClassClosedList, Enforced: "enumValue(dateCertainties)"},
	},
	domain.ConsentGiven: {
		{Path: "institutions[]", Class: ClassIdentifier, Enforced: "checkInstitutions"},
		{Path: "kinds[]", Class: ClassClosedList, Enforced: "checkKind(InstitutionKinds)"},
		{Path: "categories[]", Class: ClassClosedList, Enforced: "checkCategories(Categories)"},
	},
	domain.JudicialRestrictionImposed: {
		{Path: "kind", Class: ClassClosedList, Enforced: "enumValue(RestrictionKinds)"},
		{Path: "institutions[]", Class: ClassIdentifier, Enforced: "checkInstitutions"},
	},
	domain.FamilyInformed:    {{Path: "institution", Class: ClassIdentifier, Enforced: byInstitution}},
	domain.FamilyNotInformed: {{Path: "institution", Class: ClassIdentifier, Enforced: byInstitution}},
	domain.CaseClosed:        {{Path: "reason", Class: ClassClosedList, Enforced: "enumValue(closeReasons)"}},
}

// ClearFields lists the string fields that stay readable after erasure, in
// the catalogue's order.
func ClearFields() []ClearField {
	var out []ClearField
	for _, t := range domain.EventTypes() {
		for _, f := range readable[t] {
			f.Type = t
			out = append(out, f)
		}
	}
	return out
}
