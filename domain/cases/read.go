package cases

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// known returns what of the case viewer v may know: its version, the chain
// hash there and the events up to it (domain.KnownVersion: a former member
// knows nothing recorded after its leaving). ErrNotFound when v may not know
// the case.
func known(st *domain.State, v domain.Viewer, events []domain.Event) (uint64, domain.Hash, []domain.Event, error) {
	if !domain.MayKnow(st, v) {
		return 0, domain.Hash{}, nil, ErrNotFound
	}
	version := domain.KnownVersion(st, v)
	if version == st.Version {
		return version, st.Head, events, nil
	}
	return version, events[version-1].ChainHash, events[:version:version], nil
}

// Timeline is a page of a case's history as one viewer sees it.
type Timeline struct {
	CaseID  domain.CaseID      `json:"caseId"`
	Version uint64             `json:"version"` // the case's version when read
	Head    domain.Hash        `json:"head"`    // the chain hash at Version
	Events  []domain.EventView `json:"events"`
	// Next is the `after` to ask for the next page, absent on the last page.
	Next *uint64 `json:"next,omitempty"`
}

// Timeline returns the events after sequence `after` (at most limit) as the
// viewer may see them now: full, redacted or stub, per the domain policy
// evaluated against the case's access state now. ErrNotFound when the
// viewer may not know the case.
func (s *Service) Timeline(ctx context.Context, id domain.CaseID, v domain.Viewer, after uint64, limit int) (Timeline, error) {
	var t Timeline
	err := s.read(ctx, id, v, func(st *domain.State, events []domain.Event) error {
		version, head, events, err := known(st, v, events)
		if err != nil {
			return err
		}
		_, page, next := timelinePage(events, after, limit)
		t = Timeline{CaseID: id, Version: version, Head: head, Events: domain.Timeline(st, v, page, s.now()), Next: next}
		return nil
	})
	return t, err
}

// read runs fn on the case's cached state and events, brought up to date
// with the store, under the case's lock, for a viewer who may know the case
// (readEntry): reading the cached state costs nothing, where Load folds a
// copy for the caller to own. fn must neither keep nor change them (the
// views it makes may share the events' bytes, which are never changed).
func (s *Service) read(ctx context.Context, id domain.CaseID, v domain.Viewer, fn func(st *domain.State, events []domain.Event) error) error {
	return s.readEntry(ctx, id, v, func(entry *caseEntry) error { return fn(entry.state, entry.events) })
}

// readEntry runs fn on the case's cache entry, brought up to date with the
// store, under the entry's lock, when viewer v may know the case;
// ErrNotFound otherwise. Whoever may not know the case gets the same work
// whether it exists or not: one read of the store, the policy's answer, no
// key lookup; and an id of no case leaves nothing in the cache.
func (s *Service) readEntry(ctx context.Context, id domain.CaseID, v domain.Viewer, fn func(entry *caseEntry) error) error {
	entry := s.entry(id)
	entry.mu.Lock()
	defer entry.mu.Unlock()
	if err := s.refresh(ctx, id, entry); err != nil {
		return err
	}
	if !domain.MayKnow(entry.state, v) {
		if entry.state.Version == 0 {
			s.forget(id, entry)
		} else if _, err := s.store.ReadCase(ctx, decoy(id), 0); err != nil {
			// The refusal of a case that exists costs what the answer
			// for one that does not does: a read of the store that
			// finds nothing (a case this process holds is otherwise
			// answered from memory).
			return err
		}
		return ErrNotFound
	}
	if err := s.dropIfErased(ctx, id, entry); err != nil {
		return err
	}
	if !entry.synced { // dropped as erased: read again
		if err := s.refresh(ctx, id, entry); err != nil {
			return err
		}
	}
	return fn(entry)
}

// decoy is the id of no case, derived from id: reading it costs what
// reading a case that does not exist costs.
func decoy(id domain.CaseID) domain.CaseID { return uuid.NewSHA1(id, []byte("maillage/no-case")) }

// LoadFor is Load for a viewer who may know the case (ErrNotFound
// otherwise, after the same work whether the case exists or not).
func (s *Service) LoadFor(ctx context.Context, id domain.CaseID, v domain.Viewer) (*domain.State, []domain.Event, error) {
	var events []domain.Event
	err := s.read(ctx, id, v, func(_ *domain.State, evs []domain.Event) error {
		events = evs[:len(evs):len(evs)] // capped: later appends never write into it
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return domain.Fold(id, events), events, nil
}

// Summary is a case's current state as a member may see it.
type Summary struct {
	CaseID         domain.CaseID        `json:"caseId"`
	Version        uint64               `json:"version"`
	ChildReference string               `json:"childReference"`
	LegalFrame     domain.LegalFrame    `json:"legalFrame"`
	Departement    string               `json:"departement"`
	OpenedAt       time.Time            `json:"openedAt"`
	Closed         bool                 `json:"closed"`
	Coordinator    domain.InstitutionID `json:"coordinator"`
	Members        []MemberSummary      `json:"members"`
	Family         []FamilySummary      `json:"family"`
	Consents       []ConsentSummary     `json:"consents"`
	Restrictions   []RestrictionSummary `json:"restrictions"`
}

// MemberSummary is a current or former member and its referent.
type MemberSummary struct {
	Institution domain.InstitutionID   `json:"institution"`
	Kind        domain.InstitutionKind `json:"kind"`
	Name        string                 `json:"name"`
	Referent    domain.Referent        `json:"referent"`
	Coordinator bool                   `json:"coordinator"`
	Active      bool                   `json:"active"`
	JoinedAt    time.Time              `json:"joinedAt"`
	LeftAt      *time.Time             `json:"leftAt,omitempty"`
}

// FamilySummary is a recorded family member.
type FamilySummary struct {
	ID                domain.PersonID `json:"id"`
	Name              string          `json:"name"`
	Relationship      string          `json:"relationship"`
	ParentalAuthority bool            `json:"parentalAuthority"`
}

// ConsentSummary is a consent in force now.
type ConsentSummary struct {
	ID           uuid.UUID                `json:"id"`
	GivenBy      domain.PersonID          `json:"givenBy"`
	Institutions []domain.InstitutionID   `json:"institutions"`
	Kinds        []domain.InstitutionKind `json:"kinds"`
	Categories   []domain.Category        `json:"categories"`
	From         time.Time                `json:"from"`
	Until        time.Time                `json:"until"`
}

// RestrictionSummary is an order of the children's judge in force now.
type RestrictionSummary struct {
	ID             uuid.UUID              `json:"id"`
	Kind           domain.RestrictionKind `json:"kind"`
	OrderReference string                 `json:"orderReference"`
	Court          string                 `json:"court"`
	FamilyMembers  []domain.PersonID      `json:"familyMembers"`
	Institutions   []domain.InstitutionID `json:"institutions"`
	ThirdParty     string                 `json:"thirdParty,omitempty"`
	From           time.Time              `json:"from"`
	Until          time.Time              `json:"until"`
}

// Summary returns the case's current state (members, referents,
// coordinator, consents and restrictions in force) for a current member or
// an auditor. It is folded only from the events the policy lets the viewer
// see, so it never tells more than the viewer's timeline. ErrNotFound for
// anyone who may not know the case; a *domain.Error (EForbidden) for family
// members and former members, who read the timeline instead.
func (s *Service) Summary(ctx context.Context, id domain.CaseID, v domain.Viewer) (Summary, error) {
	var sum Summary
	err := s.read(ctx, id, v, func(st *domain.State, events []domain.Event) error {
		if err := domain.CurrentMembersOnly(st, v, "summary_members_only",
			"la synthèse du dossier est réservée aux membres actuels ; consultez la chronologie du dossier"); err != nil {
			return err
		}
		now := s.now()
		seen := domain.NewState(id)
		sight := domain.SightOf(st, v, now)
		for _, e := range events {
			if sight.See(e).Visibility != domain.Hidden {
				seen.Apply(e)
			}
		}
		sum = summarize(seen, now)
		sum.Version = st.Version // the case's version, for If-Match, even when its last event is hidden from the viewer
		return nil
	})
	return sum, err
}

func summarize(st *domain.State, now time.Time) Summary {
	sum := Summary{CaseID: st.ID, Version: st.Version, ChildReference: st.ChildReference, LegalFrame: st.LegalFrame,
		Departement: st.Departement, OpenedAt: st.OpenedAt, Closed: st.Closed, Coordinator: st.Coordinator,
		Members: []MemberSummary{}, Family: []FamilySummary{}, Consents: []ConsentSummary{}, Restrictions: []RestrictionSummary{}}
	for _, m := range st.Members {
		ms := MemberSummary{Institution: m.Institution, Kind: m.Kind, Name: m.Name, Referent: m.Referent,
			Coordinator: m.Institution == st.Coordinator, Active: m.Active(), JoinedAt: m.JoinedAt}
		if !m.Active() {
			left := m.LeftAt
			ms.LeftAt = &left
		}
		sum.Members = append(sum.Members, ms)
	}
	slices.SortFunc(sum.Members, func(a, b MemberSummary) int { return strings.Compare(string(a.Institution), string(b.Institution)) })
	for _, f := range st.Family {
		sum.Family = append(sum.Family, FamilySummary{ID: f.ID, Name: f.Name, Relationship: f.Relationship, ParentalAuthority: f.ParentalAuthority})
	}
	slices.SortFunc(sum.Family, func(a, b FamilySummary) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range st.Consents {
		if c.ActiveAt(now) {
			sum.Consents = append(sum.Consents, ConsentSummary{ID: c.ID, GivenBy: c.GivenBy, Institutions: c.Institutions,
				Kinds: c.Kinds, Categories: c.Categories, From: c.From, Until: c.Until})
		}
	}
	slices.SortFunc(sum.Consents, func(a, b ConsentSummary) int { return a.From.Compare(b.From) })
	for _, r := range st.Restrictions {
		if r.ActiveAt(now) {
			sum.Restrictions = append(sum.Restrictions, RestrictionSummary{ID: r.ID, Kind: r.Kind, OrderReference: r.OrderReference,
				Court: r.Court, FamilyMembers: r.FamilyMembers, Institutions: r.Institutions, ThirdParty: r.ThirdParty, From: r.From, Until: r.Until})
		}
	}
	slices.SortFunc(sum.Restrictions, func(a, b RestrictionSummary) int { return a.From.Compare(b.From) })
	return sum
}
