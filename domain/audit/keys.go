package audit

import (
	"crypto/ed25519"
	"fmt"
)

// Keys are the public keys of a server's signing keys, the current one and
// those it had before a rotation: signed heads and access log seals keep
// the KeyID of the key that signed them, and each is checked with that key.
// Without the former keys, what they signed could no longer be verified
// once the key is replaced.
type Keys []ed25519.PublicKey

// For returns the key whose KeyID is id.
func (k Keys) For(id string) (ed25519.PublicKey, bool) {
	for _, pub := range k {
		if KeyID(pub) == id {
			return pub, true
		}
	}
	return nil, false
}

// IDs lists the keys' KeyIDs.
func (k Keys) IDs() []string {
	ids := make([]string, len(k))
	for i, pub := range k {
		ids[i] = KeyID(pub)
	}
	return ids
}

// VerifyHead checks h with the key it names: nil, or ErrBadSignature (also
// when no key is h's).
func (k Keys) VerifyHead(h SignedHead) error {
	pub, ok := k.For(h.KeyID)
	if !ok {
		return fmt.Errorf("%w: case %s, version %d, signed with key %s, not among the keys given (%v)", ErrBadSignature, h.CaseID, h.Version, h.KeyID, k.IDs())
	}
	return h.Verify(pub)
}

// VerifySeal checks s with the key it names: nil, or ErrBadSignature (also
// when no key is s's).
func (k Keys) VerifySeal(s AccessSeal) error {
	pub, ok := k.For(s.KeyID)
	if !ok {
		return fmt.Errorf("%w: access log seal of records %d to %d, signed with key %s, not among the keys given (%v)", ErrBadSignature, s.From, s.To, s.KeyID, k.IDs())
	}
	return s.Verify(pub)
}
