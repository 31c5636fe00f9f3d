package release

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Key is one AES-256 key a Keyring encrypts config values with.
type Key struct {
	// ID names the key inside every value it sealed: 1 to 255 bytes, unique
	// in the keyring. Never reuse an id for a different secret.
	ID     string
	Secret []byte // 32 bytes
}

// Keyring encrypts config values at rest with AES-256-GCM. The first key
// seals; every key opens what it sealed, so keys can rotate:
//
//  1. put a new key first and keep the old ones after it; reopen the store;
//  2. call the store's Reencrypt, which rewrites every sealed value with the
//     first key;
//  3. drop the old keys.
//
// A Keyring is immutable and safe for concurrent use.
type Keyring struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// ErrDecrypt is returned when a sealed value cannot be opened: an unknown
// key id, a wrong key, or tampered bytes.
var ErrDecrypt = errors.New("release: cannot decrypt config")

// NewKeyring returns a Keyring that seals with keys[0].
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: keyring needs at least one key", ErrInvalid)
	}
	k := &Keyring{primary: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for _, key := range keys {
		if len(key.ID) == 0 || len(key.ID) > 255 {
			return nil, fmt.Errorf("%w: key id must be 1 to 255 bytes", ErrInvalid)
		}
		if _, dup := k.aeads[key.ID]; dup {
			return nil, fmt.Errorf("%w: key id %q appears twice", ErrInvalid, key.ID)
		}
		if len(key.Secret) != 32 {
			return nil, fmt.Errorf("%w: key %q is %d bytes, want 32", ErrInvalid, key.ID, len(key.Secret))
		}
		block, err := aes.NewCipher(key.Secret)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrInvalid, key.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrInvalid, key.ID, err)
		}
		k.aeads[key.ID] = aead
	}
	return k, nil
}

// Primary returns the id of the key that seals.
func (k *Keyring) Primary() string { return k.primary }

// Sealed values start with this byte; plain ones (MarshalConfig) with 1.
const sealedMagic = 0xE5

// Seal encrypts plain with the primary key, binding it to aad (stores pass
// the app and version, so a sealed value cannot be moved to another
// release). The result starts with the key id.
func (k *Keyring) Seal(plain, aad []byte) []byte {
	aead := k.aeads[k.primary]
	out := make([]byte, 0, 2+len(k.primary)+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, sealedMagic, byte(len(k.primary)))
	out = append(out, k.primary...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("release: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported systems
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, aad)
}

// Open decrypts what Seal made with any key of k.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	id, ok := SealedKeyID(sealed)
	if !ok {
		return nil, fmt.Errorf("%w: not a sealed value", ErrDecrypt)
	}
	aead := k.aeads[id]
	if aead == nil {
		return nil, fmt.Errorf("%w: unknown key id %q", ErrDecrypt, id)
	}
	rest := sealed[2+len(id):]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrDecrypt)
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: key %q: authentication failed", ErrDecrypt, id)
	}
	return plain, nil
}

// SealedKeyID returns the id of the key that sealed b, and false when b is
// not sealed.
func SealedKeyID(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != sealedMagic || len(b) < 2+int(b[1]) {
		return "", false
	}
	return string(b[2 : 2+int(b[1])]), true
}

// EncodeConfig is what stores keep for c: MarshalConfig's bytes, sealed
// with k when k is not nil. aad binds them to one release.
func EncodeConfig(k *Keyring, c Config, aad []byte) []byte {
	b := MarshalConfig(c)
	if k == nil {
		return b
	}
	return k.Seal(b, aad)
}

// DecodeConfig reverses EncodeConfig. Plain bytes decode without a
// keyring, so turning encryption on needs no migration (Reencrypt seals
// them); sealed bytes need k.
func DecodeConfig(k *Keyring, b []byte, aad []byte) (Config, error) {
	if _, sealed := SealedKeyID(b); sealed {
		if k == nil {
			return Config{}, fmt.Errorf("%w: config is encrypted and no keyring was given", ErrDecrypt)
		}
		plain, err := k.Open(b, aad)
		if err != nil {
			return Config{}, err
		}
		b = plain
	}
	return UnmarshalConfig(b)
}

// ConfigAAD is the additional data stores bind a release's sealed config
// to.
func ConfigAAD(app string, version int) []byte {
	return fmt.Appendf(nil, "slipway-release-config\x00%s\x00%d", app, version)
}
