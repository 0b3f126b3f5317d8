package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/maillage/maillage/domain"
)

// SignedHead is a case's chain head (its version and the chain hash there)
// signed by the server with its ed25519 key. Anyone holding the server's
// public key can check that a timeline, a feed or an export goes through
// it: rewriting a chain consistently after its head was signed is then
// detected, since the rewritten chain hash differs from the signed one.
type SignedHead struct {
	CaseID    domain.CaseID `json:"caseId"`
	Version   uint64        `json:"version"`
	ChainHash domain.Hash   `json:"chainHash"`
	SignedAt  time.Time     `json:"signedAt"`
	KeyID     string        `json:"keyId"`     // KeyID of the signing key
	Signature []byte        `json:"signature"` // ed25519 over SignedBytes, base64 in JSON
}

// ErrBadSignature: a signed head does not verify with the public key.
var ErrBadSignature = errors.New("signed head: bad signature")

// SignedBytes is what is signed: the text
//
//	maillage/v1/signed-head\n<case id>\n<version>\n<chain hash hex>\n<signed at, RFC 3339 UTC with nanoseconds>\n
func (h SignedHead) SignedBytes() []byte {
	return []byte("maillage/v1/signed-head\n" + h.CaseID.String() + "\n" + strconv.FormatUint(h.Version, 10) + "\n" +
		h.ChainHash.String() + "\n" + h.SignedAt.UTC().Format(time.RFC3339Nano) + "\n")
}

// Sign returns h signed with key, its KeyID set.
func Sign(key ed25519.PrivateKey, h SignedHead) SignedHead {
	h.SignedAt = h.SignedAt.UTC()
	h.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	h.Signature = ed25519.Sign(key, h.SignedBytes())
	return h
}

// Verify checks the signature with pub. Outcomes: nil; ErrBadSignature
// (also for a head signed by another key).
func (h SignedHead) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, h.SignedBytes(), h.Signature) {
		return fmt.Errorf("%w: case %s, version %d, key %s", ErrBadSignature, h.CaseID, h.Version, h.KeyID)
	}
	return nil
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// MarshalPrivateKey encodes key as PEM ("PRIVATE KEY", PKCS #8).
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM ed25519 private key (PKCS #8).
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("signing key: not a PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key: %T, want ed25519", k)
	}
	return key, nil
}

// MarshalPublicKey encodes pub as PEM ("PUBLIC KEY", PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey decodes a PEM ed25519 public key (PKIX).
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("public key: not a PEM PUBLIC KEY")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %T, want ed25519", k)
	}
	return pub, nil
}
