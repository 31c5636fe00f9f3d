package names

import (
	"errors"
	"strings"
	"testing"
)

func TestLabel(t *testing.T) {
	valid := []string{"web", "worker-2", "a", "0", strings.Repeat("a", 63)}
	for _, s := range valid {
		if err := Label("x", s); err != nil {
			t.Errorf("Label(%q) = %v, want nil", s, err)
		}
	}
	invalid := []string{"", "Web", "web_1", "-web", "web-", "wéb", "a.b", strings.Repeat("a", 64)}
	for _, s := range invalid {
		if err := Label("x", s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Label(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestApp(t *testing.T) {
	if err := App("my-app"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"1app", "", "My-App", "a b"} {
		if err := App(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("App(%q) = %v, want ErrInvalid", s, err)
		}
	}
}
