package personal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/maillage/maillage/domain"
)

// Erased is what an erased personal-data field reads as.
const Erased = "[effacé]"

// KeySize is the size of a case key: AES-256.
const KeySize = 32

// tokenPrefix starts a sealed field value in a stored payload. Base64url
// has no character JSON escapes, so the token is stored as is and found in
// the payload's bytes without decoding it.
const tokenPrefix = "maillage:pd:v1:"

var quotedPrefix = []byte(`"` + tokenPrefix)

// ErrUnreadable: a sealed field does not open with the case's key (it was
// altered, or the key is not the one it was sealed with).
var ErrUnreadable = errors.New("personal-data field does not open with the case key")

// Sealed reports whether a stored payload holds sealed personal-data
// fields.
func Sealed(payload []byte) bool { return bytes.Contains(payload, quotedPrefix) }

// Seal encrypts the personal-data fields of decided event e with the case
// key, before the event is sealed into the chain (domain.Seal): e must carry
// its case id and its event id, which the encryption binds every field to.
// Empty fields stay empty. An event without personal data, or whose fields
// are all empty, is returned unchanged; the others get a new payload.
func Seal(e domain.Event, key []byte, random io.Reader) (domain.Event, error) {
	if len(fields[e.Type]) == 0 || !e.Known() {
		return e, nil
	}
	p, err := e.Decode()
	if err != nil {
		return domain.Event{}, fmt.Errorf("personal: %s: %w", e.Type, err)
	}
	strs, err := targets(p)
	if err != nil {
		return domain.Event{}, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return domain.Event{}, err
	}
	ad := additionalData(e)
	changed := false
	for _, s := range strs {
		if *s == "" {
			continue
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(*s)+aead.Overhead())
		if _, err := io.ReadFull(random, nonce); err != nil {
			return domain.Event{}, fmt.Errorf("personal: nonce: %w", err)
		}
		sealed := aead.Seal(nonce, nonce, []byte(*s), ad)
		*s = tokenPrefix + base64.RawURLEncoding.EncodeToString(sealed)
		changed = true
	}
	if !changed {
		return e, nil
	}
	if e.Payload, err = json.Marshal(p); err != nil {
		return domain.Event{}, fmt.Errorf("personal: %s: %w", e.Type, err)
	}
	return e, nil
}

// Open returns stored event e with its sealed fields opened with the case
// key, or read as Erased when key is nil (the key was destroyed). The stored
// payload is kept in SealedPayload, so the leaf hash still verifies. An
// event without sealed fields is returned unchanged. A field that does not
// open gives ErrUnreadable.
func Open(e domain.Event, key []byte) (domain.Event, error) {
	stored := e.Payload
	if e.SealedPayload != nil {
		stored = e.SealedPayload // opened already: open the stored form again
	}
	if !Sealed(stored) {
		return e, nil
	}
	var aead cipher.AEAD
	if key != nil {
		var err error
		if aead, err = newAEAD(key); err != nil {
			return domain.Event{}, err
		}
	}
	ad := additionalData(e)
	out := make([]byte, 0, len(stored))
	rest := stored
	for {
		i := bytes.Index(rest, quotedPrefix)
		if i < 0 {
			break
		}
		out = append(out, rest[:i]...)
		rest = rest[i+len(quotedPrefix):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			return domain.Event{}, fmt.Errorf("%w: case %s, sequence %d: unterminated field", ErrUnreadable, e.CaseID, e.Sequence)
		}
		plain := Erased
		if aead != nil {
			var err error
			if plain, err = openToken(aead, rest[:end], ad); err != nil {
				return domain.Event{}, fmt.Errorf("%w: case %s, sequence %d", ErrUnreadable, e.CaseID, e.Sequence)
			}
		}
		quoted, _ := json.Marshal(plain) // a string always encodes, escaped as the payload's other strings
		out = append(out, quoted...)
		rest = rest[end+1:]
	}
	out = append(out, rest...)
	e.SealedPayload, e.Payload = stored, out
	return e, nil
}

// Opened returns sealed event e as Open would give it back, knowing its
// payload before sealing: plain, the payload of the decided event.
func Opened(e domain.Event, plain []byte) domain.Event {
	if bytes.Equal(e.Payload, plain) {
		return e
	}
	e.SealedPayload, e.Payload = e.Payload, plain
	return e
}

func openToken(aead cipher.AEAD, token, ad []byte) (string, error) {
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(len(token)))
	n, err := base64.RawURLEncoding.Decode(raw, token)
	if err != nil {
		return "", err
	}
	raw = raw[:n]
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", errors.New("short field")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], ad)
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("personal: key of %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// additionalData binds a sealed field to its case and event: a token copied
// into another event does not open there.
func additionalData(e domain.Event) []byte {
	return []byte("maillage/pd/v1\x00" + e.CaseID.String() + "\x00" + e.ID.String())
}
