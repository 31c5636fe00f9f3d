package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/bolt"
	"github.com/slipwayhq/slipway/release/releasetest"
)

func TestConformance(t *testing.T) {
	releasetest.Run(t, releasetest.Harness{
		New: func(t *testing.T) release.Store {
			s, err := bolt.Open(filepath.Join(t.TempDir(), "releases.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Reopen: func(t *testing.T, s release.Store) release.Store {
			path := s.(*bolt.Store).Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := bolt.Open(path, bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s2
		},
	})
}

func key(id string, b byte) release.Key {
	return release.Key{ID: id, Secret: bytes.Repeat([]byte{b}, 32)}
}

func TestEncryptionAndRotation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "releases.db")
	const secret = "s3cr3t-value-that-must-not-be-on-disk"
	cfg, err := release.NewConfig(map[string]string{"API_TOKEN": secret})
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := release.NewKeyring(key("k1", 1))
	s, err := bolt.Open(path, bolt.Options{Keyring: k1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateApp(ctx, release.App{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, "app", release.Lease{}, release.Change{Create: &release.Release{Config: cfg}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the config value is on disk in clear")
	}
	// Without the key the value cannot be read, and the error says so
	// without the value.
	s, _ = bolt.Open(path, bolt.Options{})
	if _, err := s.Release(ctx, "app", 1); !errors.Is(err, release.ErrDecrypt) {
		t.Errorf("Release without a keyring = %v, want ErrDecrypt", err)
	}
	s.Close()
	// Rotate: k2 first, k1 kept; reencrypt; then k1 alone can no longer read.
	k21, _ := release.NewKeyring(key("k2", 2), key("k1", 1))
	s, _ = bolt.Open(path, bolt.Options{Keyring: k21})
	n, err := s.Reencrypt(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reencrypt = %d, %v; want 1", n, err)
	}
	if n, _ := s.Reencrypt(ctx); n != 0 {
		t.Errorf("second Reencrypt rewrote %d", n)
	}
	s.Close()
	k2, _ := release.NewKeyring(key("k2", 2))
	s, _ = bolt.Open(path, bolt.Options{Keyring: k2})
	defer s.Close()
	r, err := s.Release(ctx, "app", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Config.Get("API_TOKEN"); v != secret {
		t.Error("value changed by the rotation")
	}
}

func TestLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "releases.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// bbolt's flock is per open file description, so a second Open in the
	// same process also waits.
	if _, err := bolt.Open(path, bolt.Options{Timeout: 50e6}); err == nil {
		t.Fatal("a second Open of a locked file succeeded")
	}
}
