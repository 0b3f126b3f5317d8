package domain

// Viewer is who reads a case: an auditor, a professional of an institution,
// or a family member.
type Viewer struct {
	Role         Role
	Institution  InstitutionID // for professionals
	FamilyMember PersonID      // for family members
}

// Visibility is what the policy lets a viewer see of an event.
type Visibility string

// Visibilities.
const (
	Full     Visibility = "full"
	Redacted Visibility = "redacted" // some payload fields removed: see Decision.Fields
	Hidden   Visibility = "hidden"   // shown as a stub: sequence and hash fields only
)

// Decision is the policy's answer for one viewer and one event, and why.
type Decision struct {
	Visibility Visibility
	// Fields lists the removed payload fields (JSON names) when Redacted;
	// "actor" names the envelope's actor.
	Fields []string
	// Rule names the rule that decided (e.g. "health_needs_consent"), and
	// Basis the consent or order that decided it, when one did (its id).
	Rule  string
	Basis string
}
