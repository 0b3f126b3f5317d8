package domain

// Validation stubs: replaced by real checks.
func (p *CaseOpenedPayload) Validate() error { return nil }
func (p *PartnerJoinedPayload) Validate() error { return nil }
func (p *PartnerLeftPayload) Validate() error { return nil }
func (p *ReferentChangedPayload) Validate() error { return nil }
func (p *CoordinationHandedOverPayload) Validate() error { return nil }
func (p *FamilyMemberRecordedPayload) Validate() error { return nil }
func (p *NeedIdentifiedPayload) Validate() error { return nil }
func (p *ObjectiveSetPayload) Validate() error { return nil }
func (p *ObjectiveReviewedPayload) Validate() error { return nil }
func (p *InterventionAgreedPayload) Validate() error { return nil }
func (p *InterventionChangedPayload) Validate() error { return nil }
func (p *InterventionEndedPayload) Validate() error { return nil }
func (p *PlansArticulatedPayload) Validate() error { return nil }
func (p *SynthesisMeetingHeldPayload) Validate() error { return nil }
func (p *DecisionRecordedPayload) Validate() error { return nil }
func (p *CrisisDeclaredPayload) Validate() error { return nil }
func (p *CrisisResolvedPayload) Validate() error { return nil }
func (p *PlacementChangedPayload) Validate() error { return nil }
func (p *ObservationRecordedPayload) Validate() error { return nil }
func (p *ConsentGivenPayload) Validate() error { return nil }
func (p *ConsentWithdrawnPayload) Validate() error { return nil }
func (p *JudicialRestrictionImposedPayload) Validate() error { return nil }
func (p *JudicialRestrictionLiftedPayload) Validate() error { return nil }
func (p *FamilyInformedPayload) Validate() error { return nil }
func (p *FamilyNotInformedPayload) Validate() error { return nil }
func (p *CaseClosedPayload) Validate() error { return nil }
