package personal

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

func TestASealedTextOpensWithItsKeyAndWhereItBelongsOnly(t *testing.T) {
	key, other := make([]byte, KeySize), make([]byte, KeySize)
	rand.Read(key)
	rand.Read(other)
	const text = "synthèse sur la situation de Léo Martin"
	token, err := SealText(key, "access-purpose\x00a", text, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealedText(token) || strings.Contains(token, "Léo") {
		t.Fatalf("token %q", token)
	}
	if got, err := OpenText(key, "access-purpose\x00a", token); err != nil || got != text {
		t.Fatalf("opened %q, %v", got, err)
	}
	if got, err := OpenText(nil, "access-purpose\x00a", token); err != nil || got != Erased {
		t.Fatalf("erased: %q, %v", got, err)
	}
	for _, tc := range []struct {
		key   []byte
		about string
	}{{other, "access-purpose\x00a"}, {key, "access-purpose\x00b"}} {
		if _, err := OpenText(tc.key, tc.about, token); !errors.Is(err, ErrUnreadable) {
			t.Errorf("opened with another key or elsewhere: %v", err)
		}
	}
	if got, _ := OpenText(key, "x", "en clair"); got != "en clair" {
		t.Errorf("a string that is no token: %q", got)
	}
	if got, _ := SealText(key, "x", "", rand.Reader); got != "" {
		t.Errorf("an empty text sealed into %q", got)
	}
}
