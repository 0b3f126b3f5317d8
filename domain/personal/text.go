package personal

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// Texts kept outside the events (the purpose of an access record) are
// sealed with the case's key as the events' fields are, into the same
// token, bound to what they belong to (about, e.g. "access-purpose"
// followed by the case id) so that a token copied elsewhere does not open.

// SealText encrypts text with the case key, bound to about. An empty text
// stays empty.
func SealText(key []byte, about, text string, random io.Reader) (string, error) {
	if text == "" {
		return "", nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(text)+aead.Overhead())
	if _, err := io.ReadFull(random, nonce); err != nil {
		return "", fmt.Errorf("personal: nonce: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, []byte(text), textData(about))
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// IsSealedText reports whether s is a token of SealText (or of a sealed
// event field).
func IsSealedText(s string) bool { return strings.HasPrefix(s, tokenPrefix) }

// OpenText returns the text a token of SealText holds, Erased when key is
// nil (the key was destroyed); a string that is not a token is returned as
// it is. A token that does not open with key gives ErrUnreadable.
func OpenText(key []byte, about, s string) (string, error) {
	token, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return s, nil
	}
	if key == nil {
		return Erased, nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	plain, err := openToken(aead, []byte(token), textData(about))
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrUnreadable, about)
	}
	return plain, nil
}

// textData is the additional data of a sealed text; an event field's
// ("maillage/pd/v1\x00<case id>\x00<event id>") never equals it.
func textData(about string) []byte { return []byte("maillage/pd/v1/text\x00" + about) }
