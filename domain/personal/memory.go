package personal

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"

	"github.com/maillage/maillage/domain"
)

// MemoryKeys is a Keys held in memory, lost when the process ends: for
// tests and for tools that never outlive their keys. Servers use a durable
// implementation (adapters/jetstream/casekeys).
type MemoryKeys struct {
	mu       sync.Mutex
	keys     map[domain.CaseID][]byte
	erasures map[domain.CaseID]Erasure
}

var _ Keys = (*MemoryKeys)(nil)

// NewMemoryKeys returns an empty MemoryKeys.
func NewMemoryKeys() *MemoryKeys {
	return &MemoryKeys{keys: map[domain.CaseID][]byte{}, erasures: map[domain.CaseID]Erasure{}}
}

// Key implements Keys.
func (m *MemoryKeys) Key(_ context.Context, id domain.CaseID, create bool) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.erasures[id]; ok {
		return nil, fmt.Errorf("case %s: %w", id, ErrErased)
	}
	if k, ok := m.keys[id]; ok {
		return k, nil
	}
	if !create {
		return nil, fmt.Errorf("case %s: %w", id, ErrNoKey)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	m.keys[id] = k
	return k, nil
}

// Erase implements Keys.
func (m *MemoryKeys) Erase(_ context.Context, id domain.CaseID, rec Erasure) (Erasure, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.erasures[id]; ok {
		return old, nil
	}
	if k, ok := m.keys[id]; ok {
		clear(k)
		delete(m.keys, id)
	}
	rec.CaseID = id
	m.erasures[id] = rec
	return rec, nil
}

// Erasure implements Keys.
func (m *MemoryKeys) Erasure(_ context.Context, id domain.CaseID) (Erasure, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.erasures[id]
	return rec, ok, nil
}
