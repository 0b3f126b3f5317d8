package projections

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maillage/maillage/domain"
)

// models holds the read models of every case, fed event by event in each
// case's sequence order. It keeps per case what is needed to answer any
// viewer at any time through the domain policy: the case's events in a
// compact log and its access state (domain.State, folded from all its
// events). The per-viewer read models (plan, chronology, who-sees-what,
// deadlines) are folded at read time from the events the viewer may see; the
// cross-case ones (membership index, observatory facts) are kept up to date
// as events are applied.
//
// Locking: mu guards the maps; each case has its own mutex, held while it is
// changed or read. A case's mutex may be taken before mu, never after.
type models struct {
	zones zoneCache
	open  opener // nil: events are read as stored

	mu      sync.RWMutex
	cases   map[domain.CaseID]*caseModel
	members map[domain.InstitutionID]map[domain.CaseID]struct{} // active memberships
	events  atomic.Int64
	obs     monthCache // the observatory's closed months
}

// caseModel is one case's read model.
type caseModel struct {
	mu    sync.Mutex
	id    domain.CaseID
	log   caseLog
	state *domain.State
	facts caseFacts
}

// caseFacts are what the observatory counts of a case, kept as its events
// are applied. Each is dated by its recording (server clock), so that a
// month's figures are those of the events recorded before its end: a
// backdated business date cannot change a closed month.
type caseFacts struct {
	departement     string
	opened          time.Time   // zero until the CaseOpened
	openedOn        time.Time   // its business date (occurred-at)
	closed          time.Time   // zero while open
	firstSynthesis  time.Time   // zero until a synthesis meeting
	daysToSynthesis int         // business days from the opening to the first synthesis
	ruptures        []time.Time // unplanned placement changes
	crises          []time.Time // crises declared
	sharedChanges   []sharedChange
}

// sharedChange is a change of whether a child-welfare institution and a
// care service are both current members.
type sharedChange struct {
	at     time.Time
	shared bool
}

// opener opens the personal-data fields of a case's stored events for a
// read (see WithPersonalData).
type opener func(ctx context.Context, id domain.CaseID, events []domain.Event) ([]domain.Event, error)

func newModels(open opener) *models {
	return &models{open: open, cases: map[domain.CaseID]*caseModel{}, members: map[domain.InstitutionID]map[domain.CaseID]struct{}{}}
}

// ProjectionError is an event the read models could not apply: they stop
// there rather than skip it, since a skipped consent withdrawal or order
// would make the policy answer from a wrong access state.
type ProjectionError struct {
	CaseID   domain.CaseID
	Sequence uint64
	Type     domain.EventType
	Position domain.Position
	Err      error
}

func (e *ProjectionError) Error() string {
	return fmt.Sprintf("projections: case %s, sequence %d (%s, position %d): %v", e.CaseID, e.Sequence, e.Type, e.Position, e.Err)
}

func (e *ProjectionError) Unwrap() error { return e.Err }

// get returns a case's model, or nil.
func (m *models) get(id domain.CaseID) *caseModel {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cases[id]
}

func (m *models) getOrCreate(id domain.CaseID) *caseModel {
	if c := m.get(id); c != nil {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cases[id]
	if !ok {
		c = &caseModel{id: id, state: domain.NewState(id)}
		m.cases[id] = c
	}
	return c
}

// apply adds one recorded event. An event the case already has (a sequence
// at or below its version: delivered again, or read ahead for a fresh read)
// is ignored; a gap in the sequence or a payload of a known type that does
// not decode is a *ProjectionError and nothing is changed.
func (m *models) apply(e domain.Event) error {
	c := m.getOrCreate(e.CaseID)
	c.mu.Lock()
	defer c.mu.Unlock()
	return m.applyLocked(c, e, true)
}

// factTypes are the types whose payload the membership index and the
// observatory read.
var factTypes = map[domain.EventType]bool{
	domain.CaseOpened: true, domain.PartnerJoined: true, domain.PartnerLeft: true, domain.SynthesisMeetingHeld: true,
	domain.PlacementChanged: true, domain.CrisisDeclared: true, domain.CaseClosed: true,
}

// applyLocked applies e to a locked case. A recorded event (fresh) is
// appended to the log and its payload checked; one restored from a snapshot
// is already in the log and was checked when first applied, so only the
// payloads the facts need are decoded again.
func (m *models) applyLocked(c *caseModel, e domain.Event, fresh bool) error {
	if e.Sequence <= c.state.Version {
		return nil
	}
	fail := func(err error) error {
		return &ProjectionError{CaseID: e.CaseID, Sequence: e.Sequence, Type: e.Type, Position: e.Position, Err: err}
	}
	if e.Sequence != c.state.Version+1 {
		return fail(fmt.Errorf("sequence gap: the case is at version %d", c.state.Version))
	}
	var payload domain.Payload
	if e.Known() && (fresh || factTypes[e.Type]) {
		p, err := e.Decode()
		if err != nil {
			return fail(fmt.Errorf("payload does not decode: %w", err))
		}
		payload = p
	}
	if fresh {
		c.log.append(e)
	}
	c.state.Apply(e)
	// The access state's idempotency index is the command path's business;
	// the read models do not need it and it would hold a map entry per event.
	delete(c.state.EventIDs, e.ID)
	m.observe(c, e, payload)
	m.events.Add(1)
	return nil
}

// observe updates the case's facts and the membership index.
func (m *models) observe(c *caseModel, e domain.Event, payload domain.Payload) {
	f := &c.facts
	switch p := payload.(type) {
	case *domain.CaseOpenedPayload:
		f.departement, f.opened, f.openedOn = p.Departement, e.RecordedAt, e.OccurredAt
		m.obs.opened(e.RecordedAt)
		m.index(c, p.Coordinator)
		f.noteShared(c.state, e.RecordedAt)
	case *domain.PartnerJoinedPayload:
		m.index(c, p.Institution)
		f.noteShared(c.state, e.RecordedAt)
	case *domain.PartnerLeftPayload:
		m.index(c, p.Institution)
		f.noteShared(c.state, e.RecordedAt)
	case *domain.SynthesisMeetingHeldPayload:
		if f.firstSynthesis.IsZero() {
			f.firstSynthesis = e.RecordedAt
			f.daysToSynthesis = max(0, int(e.OccurredAt.Sub(f.openedOn).Hours()/24))
		}
	case *domain.PlacementChangedPayload:
		if !p.Planned {
			f.ruptures = append(f.ruptures, e.RecordedAt)
		}
	case *domain.CrisisDeclaredPayload:
		f.crises = append(f.crises, e.RecordedAt)
	case *domain.CaseClosedPayload:
		f.closed = e.RecordedAt
	}
}

// noteShared records, at t, whether the case is now shared between child
// welfare and care, when that changed.
func (f *caseFacts) noteShared(st *domain.State, t time.Time) {
	now := shared(st)
	if n := len(f.sharedChanges); n > 0 && f.sharedChanges[n-1].shared == now || n == 0 && !now {
		return
	}
	f.sharedChanges = append(f.sharedChanges, sharedChange{at: t, shared: now})
}

// index records whether inst is now an active member of the case.
func (m *models) index(c *caseModel, inst domain.InstitutionID) {
	active := c.state.IsMember(inst)
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.members[inst]
	if active {
		if set == nil {
			set = map[domain.CaseID]struct{}{}
			m.members[inst] = set
		}
		set[c.id] = struct{}{}
	} else if set != nil {
		delete(set, c.id)
	}
}

// restore refolds a case from a log read from a snapshot.
func (m *models) restore(id domain.CaseID, log caseLog) error {
	events, err := log.events(id, &m.zones, nil)
	if err != nil {
		return err
	}
	c := m.getOrCreate(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = log
	for _, e := range events {
		if err := m.applyLocked(c, e, false); err != nil {
			return err
		}
	}
	return nil
}

// caseIDs returns the ids of every case.
func (m *models) caseIDs() []domain.CaseID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ids := make([]domain.CaseID, 0, len(m.cases))
	for id := range m.cases {
		ids = append(ids, id)
	}
	return ids
}

// memberOf returns the cases inst is an active member of.
func (m *models) memberOf(inst domain.InstitutionID) []domain.CaseID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ids := make([]domain.CaseID, 0, len(m.members[inst]))
	for id := range m.members[inst] {
		ids = append(ids, id)
	}
	return ids
}

// counts returns the number of cases and events.
func (m *models) counts() (cases, events int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.cases), int(m.events.Load())
}
