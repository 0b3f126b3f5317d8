package domain

// allowedCategories gives, per event type, the categories a command may
// record it under; the first is the default. Plan, crisis and observation
// events may concern the care path and then belong to health, which keeps
// them with care members unless consent covers them.
var allowedCategories = map[EventType][]Category{
	CaseOpened:                 {CategoryCoordination},
	PartnerJoined:              {CategoryCoordination},
	PartnerLeft:                {CategoryCoordination},
	ReferentChanged:            {CategoryCoordination},
	CoordinationHandedOver:     {CategoryCoordination},
	FamilyMemberRecorded:       {CategoryCoordination},
	NeedIdentified:             {CategoryPlan, CategoryHealth},
	ObjectiveSet:               {CategoryPlan, CategoryHealth},
	ObjectiveReviewed:          {CategoryPlan, CategoryHealth},
	InterventionAgreed:         {CategoryPlan, CategoryHealth},
	InterventionChanged:        {CategoryPlan, CategoryHealth},
	InterventionEnded:          {CategoryPlan, CategoryHealth},
	PlansArticulated:           {CategoryPlan},
	SynthesisMeetingHeld:       {CategoryCoordination},
	DecisionRecorded:           {CategoryPlan, CategoryHealth, CategoryDailyLife},
	CrisisDeclared:             {CategoryCoordination, CategoryHealth},
	CrisisResolved:             {CategoryCoordination, CategoryHealth},
	PlacementChanged:           {CategoryDailyLife},
	ObservationRecorded:        {CategoryDailyLife, CategoryHealth},
	ConsentGiven:               {CategoryConsent},
	ConsentWithdrawn:           {CategoryConsent},
	JudicialRestrictionImposed: {CategoryJudicial},
	JudicialRestrictionLifted:  {CategoryJudicial},
	FamilyInformed:             {CategoryCoordination},
	FamilyNotInformed:          {CategoryCoordination},
	CaseClosed:                 {CategoryCoordination},
}

// AllowedCategories returns the categories an event type may be recorded
// under, the default first; nil for a type outside the catalogue.
func AllowedCategories(t EventType) []Category { return allowedCategories[t] }

// locationFields names, per event type, the payload fields that reveal where
// the child lives. They are redacted for family members named by an active
// placement_address_secret restriction.
var locationFields = map[EventType][]string{
	PlacementChanged:     {"placeOfLife", "address", "hostInstitution"},
	SynthesisMeetingHeld: {"location"},
}

// LocationFields returns the payload fields of t that reveal where the child
// lives (nil when it has none).
func LocationFields(t EventType) []string { return locationFields[t] }
