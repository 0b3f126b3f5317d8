package domain

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestStateIgnoresOnlyWhatItDoesNothingWith checks that the types Apply
// does not decode are those whose payload the state does nothing with:
// applying a filled payload of each to a case with a member and a family
// member changes nothing. A case added to applyPayload for an ignored type
// fails it, and so does a handled type added to stateIgnores (each needs a
// filled payload here, which is then applied).
func TestStateIgnoresOnlyWhatItDoesNothingWith(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	inst := InstitutionID("mecs-35")
	person := PersonID(uuid.New())
	id := uuid.New()
	base := func() *State {
		s := NewState(id)
		s.Members[inst] = &Member{Institution: inst, Kind: KindMECS, Name: "MECS", JoinedSeq: 1}
		s.Family[person] = &FamilyMember{ID: person, Name: "Mère", RecordedSeq: 2}
		return s
	}
	filled := map[EventType]Payload{
		ObservationRecorded: &ObservationRecordedPayload{Summary: "nouvelles", Impact: "positive"},
		PlacementChanged:    &PlacementChangedPayload{Planned: true, Reason: "accueil", PlaceOfLife: "MECS", Address: "12 rue des Lilas", HostInstitution: inst},
		PlansArticulated:    &PlansArticulatedPayload{Plans: []PlanLink{{Kind: "PPE", Reference: "PPE-1", Version: "2", Institution: inst}}},
	}
	for typ := range payloadFactories {
		p, ok := filled[typ]
		if !ok {
			p = payloadFactories[typ]()
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		before := base()
		e := Event{ID: uuid.New(), CaseID: before.ID, Sequence: 3, Type: typ, SchemaVersion: CurrentSchemaVersion, Payload: raw, RecordedAt: at, OccurredAt: at}
		if _, err := e.Decode(); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		after := base()
		after.applyPayload(e)
		if stateIgnores[typ] && !reflect.DeepEqual(before, after) {
			t.Errorf("%s is in stateIgnores, yet applying its payload changes the state", typ)
		}
	}
	for typ := range stateIgnores {
		if _, ok := filled[typ]; !ok {
			t.Errorf("%s is ignored by the state but has no filled payload in this test", typ)
		}
	}
}
