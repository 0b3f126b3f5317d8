// Package directory keeps the territory's directory (institutions with their
// kind, département and contacts) and the principals who may call the API
// (professionals, family members, auditors, admins) with their bearer
// tokens, in one JSON file under the data directory.
//
// Tokens are never stored: only their SHA-256 is. A token is 32 random bytes
// (256 bits), so a fast hash is enough; a slow password hash would only slow
// every request down.
package directory

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// Institution is a partner organisation of the territory.
type Institution struct {
	ID          domain.InstitutionID   `json:"id"`
	Kind        domain.InstitutionKind `json:"kind"`
	Name        string                 `json:"name"`
	Departement string                 `json:"departement"`
	Contacts    []Contact              `json:"contacts,omitempty"`
	// OnCall says who to reach in a crisis, when and how.
	OnCall string `json:"onCall,omitempty"`
}

// Contact is a way to reach an institution.
type Contact struct {
	Label string `json:"label"` // "Accueil", "Cadre d'astreinte"
	Phone string `json:"phone,omitempty"`
	Email string `json:"email,omitempty"`
	Hours string `json:"hours,omitempty"`
}

// Principal is someone who may call the API.
type Principal struct {
	ID           uuid.UUID            `json:"id"`
	Role         domain.Role          `json:"role"`
	Name         string               `json:"name"`
	Institution  domain.InstitutionID `json:"institution,omitempty"` // professionals
	FamilyMember domain.PersonID      `json:"familyMember,omitzero"` // family members
	CreatedAt    time.Time            `json:"createdAt"`
	TokenHash    string               `json:"tokenHash"` // hex SHA-256 of the token
}

// Viewer is the principal as the access policy knows it.
func (p Principal) Viewer() domain.Viewer {
	return domain.Viewer{Role: p.Role, Institution: p.Institution, FamilyMember: p.FamilyMember}
}

// Actor is the principal as recorded on the events it causes.
func (p Principal) Actor() domain.Actor {
	return domain.Actor{Institution: p.Institution, Professional: p.Name, FamilyMember: p.FamilyMember}
}

// Errors.
var (
	// ErrUnknownToken: no principal holds this token.
	ErrUnknownToken = errors.New("unknown token")
	// ErrUnknownInstitution: no such institution in the directory.
	ErrUnknownInstitution = errors.New("unknown institution")
	// ErrExists: an institution with this id is already registered.
	ErrExists = errors.New("already registered")
)

// Directory is the file-backed directory. It is safe for concurrent use.
type Directory struct {
	path string

	mu           sync.RWMutex
	institutions map[domain.InstitutionID]Institution
	principals   map[string]Principal // by token hash
	modTime      time.Time            // of the file as last read or written
}

type file struct {
	Institutions []Institution `json:"institutions"`
	Principals   []Principal   `json:"principals"`
}

// Open loads the directory at path, or starts an empty one if the file does
// not exist yet.
func Open(path string) (*Directory, error) {
	d := &Directory{path: path, institutions: map[domain.InstitutionID]Institution{}, principals: map[string]Principal{}}
	if err := d.loadLocked(); err != nil {
		return nil, err
	}
	return d, nil
}

// loadLocked (re)reads the file; a missing file is an empty directory.
func (d *Directory) loadLocked() error {
	info, err := os.Stat(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	b, err := os.ReadFile(d.path)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("directory %s: %w", d.path, err)
	}
	d.institutions = make(map[domain.InstitutionID]Institution, len(f.Institutions))
	for _, i := range f.Institutions {
		d.institutions[i.ID] = i
	}
	d.principals = make(map[string]Principal, len(f.Principals))
	for _, p := range f.Principals {
		d.principals[p.TokenHash] = p
	}
	d.modTime = info.ModTime()
	return nil
}

// reloadIfChanged rereads the file when another process (maillage admin)
// changed it since it was read: called on a miss, so a new token or
// institution works without a restart.
func (d *Directory) reloadIfChanged() {
	info, err := os.Stat(d.path)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if info.ModTime().After(d.modTime) {
		_ = d.loadLocked()
	}
}

// Empty reports whether the directory has no institution and no principal.
func (d *Directory) Empty() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.institutions) == 0 && len(d.principals) == 0
}

// AddInstitution registers an institution.
func (d *Directory) AddInstitution(i Institution) error {
	if i.ID == "" || strings.ContainsAny(string(i.ID), " .*>\t\n") {
		return fmt.Errorf("directory: institution id %q: use letters, digits and dashes", i.ID)
	}
	if !i.Kind.Valid() {
		return fmt.Errorf("directory: institution %s: unknown kind %q", i.ID, i.Kind)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.institutions[i.ID]; ok {
		return fmt.Errorf("directory: institution %s: %w", i.ID, ErrExists)
	}
	d.institutions[i.ID] = i
	return d.saveLocked()
}

// Institution returns a registered institution.
func (d *Directory) Institution(id domain.InstitutionID) (Institution, error) {
	d.mu.RLock()
	i, ok := d.institutions[id]
	d.mu.RUnlock()
	if !ok {
		d.reloadIfChanged()
		d.mu.RLock()
		i, ok = d.institutions[id]
		d.mu.RUnlock()
	}
	if !ok {
		return Institution{}, fmt.Errorf("%w: %s", ErrUnknownInstitution, id)
	}
	return i, nil
}

// Institutions lists the registered institutions by id.
func (d *Directory) Institutions() []Institution {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Institution, 0, len(d.institutions))
	for _, i := range d.institutions {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b Institution) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// Issue creates a principal and returns its token. The token is shown this
// once: only its hash is kept.
func (d *Directory) Issue(p Principal, now time.Time) (string, Principal, error) {
	switch p.Role {
	case domain.RoleProfessional:
		if _, err := d.Institution(p.Institution); err != nil {
			return "", Principal{}, fmt.Errorf("directory: %w", err)
		}
	case domain.RoleFamily:
		if p.FamilyMember == uuid.Nil {
			return "", Principal{}, errors.New("directory: a family principal needs a family member id")
		}
	case domain.RoleAuditor, domain.RoleAdmin:
	default:
		return "", Principal{}, fmt.Errorf("directory: unknown role %q (professional, family, auditor, admin)", p.Role)
	}
	if strings.TrimSpace(p.Name) == "" {
		return "", Principal{}, errors.New("directory: a principal needs a name")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Principal{}, err
	}
	token := "mlg_" + base64.RawURLEncoding.EncodeToString(raw)
	if p.ID == uuid.Nil {
		p.ID = uuid.New()
	}
	p.CreatedAt = now.UTC()
	p.TokenHash = hashToken(token)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.principals[p.TokenHash] = p
	return token, p, d.saveLocked()
}

// Authenticate returns the principal holding token.
func (d *Directory) Authenticate(token string) (Principal, error) {
	h := hashToken(token)
	d.mu.RLock()
	p, ok := d.principals[h]
	d.mu.RUnlock()
	if !ok {
		d.reloadIfChanged()
		d.mu.RLock()
		p, ok = d.principals[h]
		d.mu.RUnlock()
	}
	// The map lookup is by hash of a 256-bit secret; compare again in
	// constant time so no timing tells how close a guess was.
	if !ok || subtle.ConstantTimeCompare([]byte(p.TokenHash), []byte(h)) != 1 {
		return Principal{}, ErrUnknownToken
	}
	return p, nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// saveLocked writes the file atomically (temporary file, fsync, rename).
func (d *Directory) saveLocked() error {
	f := file{Institutions: make([]Institution, 0, len(d.institutions)), Principals: make([]Principal, 0, len(d.principals))}
	for _, i := range d.institutions {
		f.Institutions = append(f.Institutions, i)
	}
	slices.SortFunc(f.Institutions, func(a, b Institution) int { return strings.Compare(string(a.ID), string(b.ID)) })
	for _, p := range d.principals {
		f.Principals = append(f.Principals, p)
	}
	slices.SortFunc(f.Principals, func(a, b Principal) int { return a.CreatedAt.Compare(b.CreatedAt) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.path), 0o700); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(d.path), ".directory-*")
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("directory: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("directory: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	if err := os.Rename(tmp.Name(), d.path); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	if info, err := os.Stat(d.path); err == nil {
		d.modTime = info.ModTime()
	}
	return nil
}

// Complete fills what the server knows better than the client in a command
// recorded by who: the coordinator's and a joining institution's kind and
// name, and that every institution a consent names is in the directory (a
// consent may name any of them; it takes effect for members only). Every
// way of recording (API, web view) calls it before validating.
func (d *Directory) Complete(p domain.Payload, who Principal) error {
	switch p := p.(type) {
	case *domain.CaseOpenedPayload:
		if p.Coordinator == "" {
			p.Coordinator = who.Institution
		}
		if p.Coordinator == "" {
			return &domain.Error{Code: domain.EForbidden, Rule: "coordinator_only", Message: "seul un professionnel d'une institution peut ouvrir un dossier"}
		}
		inst, err := d.Institution(p.Coordinator)
		if err != nil {
			return domain.Invalid("payload.coordinator", "institution inconnue de l'annuaire : %s", p.Coordinator)
		}
		p.CoordinatorKind, p.CoordinatorName = inst.Kind, inst.Name
	case *domain.PartnerJoinedPayload:
		inst, err := d.Institution(p.Institution)
		if err != nil {
			return domain.Invalid("payload.institution", "institution inconnue de l'annuaire : %s", p.Institution)
		}
		p.Kind, p.Name = inst.Kind, inst.Name
	case *domain.ConsentGivenPayload:
		for i, id := range p.Institutions {
			if _, err := d.Institution(id); err != nil {
				return domain.Invalid(fmt.Sprintf("payload.institutions[%d]", i), "institution inconnue de l'annuaire : %s", id)
			}
		}
	}
	return nil
}
