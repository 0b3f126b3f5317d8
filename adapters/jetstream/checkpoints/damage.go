package checkpoints

import (
	"context"
	"fmt"
	"strconv"

	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
)

// A signed head vouches that the case held its version, with that chain
// hash: a store that holds less of the case (its last block file cut
// short, emptied, a message dropped for a bad checksum) lost acknowledged
// events. Such a case is damaged, as one whose chain breaks: read-only,
// since the next append would record a different event at a signed
// sequence and fork the signed history. The signer finds them as it checks
// the chains (check), and once it has checked everything the store held
// at start (catchUp); before that, an append that could fork is checked
// against the store itself (CheckAppend).

// Load reads the latest signed head of every case, once; Run calls it.
// Call it before serving appends through Guard, so that CheckAppend knows
// every signed head from the first append on.
func (s *Signer) Load(ctx context.Context) error {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if loaded {
		return nil
	}
	latest, err := s.heads.All(ctx, true)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return nil
	}
	for i := range latest {
		h := latest[i]
		s.chains[h.CaseID] = &chainState{head: domain.Genesis(h.CaseID), signed: &h}
	}
	s.loaded = true
	return nil
}

// catchUp checks every event the store holds now after from, then marks the
// cases whose chain stops before their signed head.
func (s *Signer) catchUp(ctx context.Context, from domain.Position) error {
	s.mu.Lock()
	done := s.caughtUp
	s.mu.Unlock()
	if done {
		return nil
	}
	for e, err := range s.store.ReadAll(ctx, from) {
		if err != nil {
			return err
		}
		if err := s.check(e); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caughtUp = true
	for id, c := range s.chains {
		if c.broken == nil && c.signed != nil && c.version < c.signed.Version {
			s.behindLocked(id, c, c.version)
		}
	}
	return nil
}

// behindLocked marks a case whose store stops at version, before its signed
// head.
func (s *Signer) behindLocked(id domain.CaseID, c *chainState, version uint64) {
	c.broken = &audit.Break{CaseID: id, Sequence: version + 1, Field: audit.BreakSignedHead,
		Expected: fmt.Sprintf("version %d (%s)", c.signed.Version, c.signed.ChainHash), Found: "version " + strconv.FormatUint(version, 10)}
	delete(s.dirty, id)
	s.broken.Inc()
	// As for a broken chain, the case id stays out of the log.
	s.cfg.log.Error("case behind its signed head: acknowledged events are missing from the store; the case is read-only; restore the data directory and run maillage audit verify",
		"signed_version", c.signed.Version, "stored_version", version)
}

// CheckAppend refuses, with domain.ErrCaseDamaged, an append to a damaged
// case. Before the signer has checked what the store held at start, an
// append expecting a version below the case's signed head reads the
// case's stored version first: below the signed head, the case lost events
// (and is marked damaged); otherwise the expected version is only stale,
// and the store answers the conflict.
func (s *Signer) CheckAppend(ctx context.Context, id domain.CaseID, expectedVersion uint64) error {
	s.mu.Lock()
	c := s.chains[id]
	caughtUp := s.caughtUp
	var signed uint64
	if c != nil && c.signed != nil {
		signed = c.signed.Version
	}
	damaged := c != nil && c.broken != nil
	s.mu.Unlock()
	if damaged {
		return damagedErr(id)
	}
	if caughtUp || expectedVersion >= signed {
		return nil
	}
	events, err := s.store.ReadCase(ctx, id, expectedVersion)
	if err != nil {
		return err
	}
	stored := expectedVersion
	if len(events) > 0 {
		stored = events[len(events)-1].Sequence
	}
	if stored >= signed {
		return nil
	}
	s.mu.Lock()
	if c.broken == nil {
		s.behindLocked(id, c, stored)
	}
	s.mu.Unlock()
	return damagedErr(id)
}

func damagedErr(id domain.CaseID) error {
	return fmt.Errorf("checkpoints: case %s: %w", id, domain.ErrCaseDamaged)
}

// Damaged returns how many cases are damaged (broken chain, or behind
// their signed head).
func (s *Signer) Damaged() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.chains {
		if c.broken != nil {
			n++
		}
	}
	return n
}

// Guard returns store with every append checked by CheckAppend first: give
// it to whatever appends (the case service), so that a damaged case is
// read-only.
func (s *Signer) Guard(store domain.EventStore) domain.EventStore { return guarded{store, s} }

type guarded struct {
	domain.EventStore
	s *Signer
}

func (g guarded) Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	if len(events) > 0 {
		if err := g.s.CheckAppend(ctx, events[0].CaseID, expectedVersion); err != nil {
			return domain.AppendResult{}, err
		}
	}
	return g.EventStore.Append(ctx, expectedVersion, events)
}
