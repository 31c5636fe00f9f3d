package seal

import (
	"errors"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := strings.Repeat("k", 32)
	s, err := Seal(key, "r1", "password")
	if err != nil || !strings.HasPrefix(s, prefix) || strings.Contains(s, "password") {
		t.Fatalf("%q %v", s, err)
	}
	if p, err := Open(key, "r1", s); err != nil || p != "password" {
		t.Fatalf("%q %v", p, err)
	}
	if _, err := Open(key, "r2", s); !errors.Is(err, ErrOpen) {
		t.Errorf("opened for another resource: %v", err)
	}
	if _, err := Open(strings.Repeat("x", 32), "r1", s); !errors.Is(err, ErrOpen) {
		t.Errorf("opened with another key: %v", err)
	}
	if _, err := Open("", "r1", s); !errors.Is(err, ErrKey) {
		t.Errorf("opened without a key: %v", err)
	}
	if p, _ := Open(key, "r1", "plain"); p != "plain" {
		t.Error("plain values must pass")
	}
	if p, _ := Seal("", "r1", "plain"); p != "plain" {
		t.Error("no key must store plain")
	}
	if _, err := Seal("short", "r1", "x"); !errors.Is(err, ErrKey) {
		t.Error(err)
	}
	if _, err := Open(key, "r1", prefix+"!!!"); !errors.Is(err, ErrOpen) {
		t.Error(err)
	}
}

func FuzzOpen(f *testing.F) {
	key := strings.Repeat("k", 32)
	s, _ := Seal(key, "r1", "password")
	f.Add(s)
	f.Add(prefix + "AAAA")
	f.Fuzz(func(t *testing.T, stored string) {
		_, _ = Open(key, "r1", stored) // must not panic
	})
}
