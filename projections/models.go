package projections

import (
	"context"
	"fmt"
	"slices"
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
// A case restored from the snapshot is cold: its log and summary (facts,
// memberships) are there, its access state is folded from the log the first
// time the case is read or changed (warm), so that a restart does not fold
// every case before it is ready.
//
// Locking: mu guards the maps; each case has its own mutex, held while it is
// changed or read. A case's mutex may be taken before mu or dirtyMu, never
// after.
type models struct {
	zones zoneCache
	open  opener // nil: events are read as stored

	mu      sync.RWMutex
	cases   map[domain.CaseID]*caseModel
	members map[domain.InstitutionID]map[domain.CaseID]struct{} // active memberships
	events  atomic.Int64
	obs     monthCache // the observatory's closed months

	dirtyMu sync.Mutex
	dirty   map[domain.CaseID]*caseModel // changed since the snapshot last took them (see checkpoint)
}

// caseModel is one case's read model.
type caseModel struct {
	mu    sync.Mutex
	id    domain.CaseID
	log   caseLog
	state *domain.State // nil while cold (see warmLocked)
	facts caseFacts
	// active are the institutions the membership index holds for the case
	// (see index), kept for its summary.
	active []domain.InstitutionID
	// saved and savedN are the bytes and events of the log the snapshot
	// files hold; the rest is written by the next checkpoint.
	saved, savedN int
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
	return &models{open: open, cases: map[domain.CaseID]*caseModel{}, members: map[domain.InstitutionID]map[domain.CaseID]struct{}{},
		dirty: map[domain.CaseID]*caseModel{}}
}

// warmLocked folds a cold case's access state from its log; the caller
// holds c.mu. The events were checked when they were first applied.
func (m *models) warmLocked(c *caseModel) error {
	if c.state != nil {
		return nil
	}
	events, err := c.log.events(c.id, &m.zones, nil)
	if err != nil {
		return err
	}
	st := domain.NewState(c.id)
	for _, e := range events {
		st.Apply(e)
		delete(st.EventIDs, e.ID) // as applyLocked
	}
	c.state = st
	return nil
}

// takeDirty returns the cases changed since the last call, and forgets them.
func (m *models) takeDirty() map[domain.CaseID]*caseModel {
	m.dirtyMu.Lock()
	defer m.dirtyMu.Unlock()
	d := m.dirty
	m.dirty = map[domain.CaseID]*caseModel{}
	return d
}

// putDirty gives back cases a checkpoint could not write.
func (m *models) putDirty(d map[domain.CaseID]*caseModel) {
	m.dirtyMu.Lock()
	defer m.dirtyMu.Unlock()
	for id, c := range d {
		m.dirty[id] = c
	}
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
	return m.applyLocked(c, e)
}

// factTypes are the types whose payload the membership index and the
// observatory read.
var factTypes = map[domain.EventType]bool{
	domain.CaseOpened: true, domain.PartnerJoined: true, domain.PartnerLeft: true, domain.SynthesisMeetingHeld: true,
	domain.PlacementChanged: true, domain.CrisisDeclared: true, domain.CaseClosed: true,
}

// applyLocked applies a recorded event to a locked case: its payload is
// checked, it is appended to the log and folded into the access state and
// the facts.
func (m *models) applyLocked(c *caseModel, e domain.Event) error {
	if e.Sequence <= uint64(c.log.n) {
		return nil
	}
	fail := func(err error) error {
		return &ProjectionError{CaseID: e.CaseID, Sequence: e.Sequence, Type: e.Type, Position: e.Position, Err: err}
	}
	if e.Sequence != uint64(c.log.n)+1 {
		return fail(fmt.Errorf("sequence gap: the case is at version %d", c.log.n))
	}
	if err := m.warmLocked(c); err != nil {
		return fail(err)
	}
	var payload domain.Payload
	if e.Known() {
		p, err := e.Decode()
		if err != nil {
			return fail(fmt.Errorf("payload does not decode: %w", err))
		}
		payload = p
	}
	c.log.append(e)
	m.dirtyMu.Lock()
	m.dirty[c.id] = c
	m.dirtyMu.Unlock()
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
	if i, found := slices.BinarySearch(c.active, inst); active && !found {
		c.active = slices.Insert(c.active, i, inst)
	} else if !active && found {
		c.active = slices.Delete(c.active, i, i+1)
	}
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

// restoreCold adds a case read from the snapshot, cold: its log, facts and
// current memberships, its access state folded when it is first needed.
// The models are not in use yet.
func (m *models) restoreCold(id domain.CaseID, log caseLog, f caseFacts, members []domain.InstitutionID) {
	c := &caseModel{id: id, log: log, facts: f, active: members, saved: len(log.b), savedN: log.n}
	m.cases[id] = c
	for _, inst := range members {
		set := m.members[inst]
		if set == nil {
			set = map[domain.CaseID]struct{}{}
			m.members[inst] = set
		}
		set[id] = struct{}{}
	}
	if !f.opened.IsZero() {
		m.obs.opened(f.opened)
	}
	m.events.Add(int64(log.n))
}

// reindex sets a cold case's current members in the membership index, as
// a snapshot's segment says. The models are not in use yet.
func (m *models) reindex(c *caseModel, members []domain.InstitutionID) {
	for _, inst := range c.active {
		delete(m.members[inst], c.id)
	}
	for _, inst := range members {
		set := m.members[inst]
		if set == nil {
			set = map[domain.CaseID]struct{}{}
			m.members[inst] = set
		}
		set[c.id] = struct{}{}
	}
	c.active = members
}

// warmAll folds the access state of every cold case, one at a time, until
// ctx ends: after a restart, so that the reads across cases find them warm.
func (m *models) warmAll(ctx context.Context) error {
	for _, id := range m.caseIDs() {
		if ctx.Err() != nil {
			return nil
		}
		c := m.get(id)
		c.mu.Lock()
		err := m.warmLocked(c)
		c.mu.Unlock()
		if err != nil {
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
