// Package seal encrypts the credentials that add-on adapters store in
// their metadata (so that Resource can report them again) with AES-256-GCM,
// bound to the resource they belong to.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
)

// prefix marks sealed values; values without it are stored in plain.
const prefix = "sealed1:"

// ErrKey is returned for a key that is not 32 bytes, and for a sealed value
// met without a key.
var ErrKey = errors.New("seal: the key must be 32 bytes")

// ErrOpen is returned when a sealed value cannot be opened: wrong key,
// wrong resource, or a tampered value.
var ErrOpen = errors.New("seal: cannot open a stored credential (wrong key or tampered)")

func aead(key string) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, ErrKey
	}
	b, err := aes.NewCipher([]byte(key))
	if err != nil {
		return nil, ErrKey
	}
	return cipher.NewGCM(b)
}

// Seal encrypts plain for the resource id with key. An empty key returns
// plain unchanged, as does an empty plain.
func Seal(key, id, plain string) (string, error) {
	if key == "" || plain == "" {
		return plain, nil
	}
	a, err := aead(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	out := a.Seal(nonce, nonce, []byte(plain), []byte(id))
	return prefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open reverses Seal. A value that was stored in plain (before a key was
// configured) is returned as it is.
func Open(key, id, stored string) (string, error) {
	if !strings.HasPrefix(stored, prefix) {
		return stored, nil
	}
	if key == "" {
		return "", ErrKey
	}
	a, err := aead(key)
	if err != nil {
		return "", err
	}
	raw, err := base64.RawStdEncoding.DecodeString(stored[len(prefix):])
	if err != nil || len(raw) < a.NonceSize() {
		return "", ErrOpen
	}
	plain, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], []byte(id))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}
