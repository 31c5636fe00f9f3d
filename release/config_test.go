package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	for _, k := range []string{"A", "_", "FOO_BAR", "foo", "a1", "_9", strings.Repeat("K", MaxKeyBytes)} {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "1A", "9", "A=B", "A\x00", "A-B", "A B", "É", strings.Repeat("K", MaxKeyBytes+1)} {
		if err := ValidateKey(k); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidConfig", k, err)
		}
	}
}

func TestKeyErrorHidesPastedValue(t *testing.T) {
	err := ValidateKey("TOKEN=hunter2")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v shows what follows '='", err)
	}
}

func TestNewConfigLimits(t *testing.T) {
	ok := map[string]string{"A": strings.Repeat("v", MaxValueBytes), "B": "\xff\xfe", "C": ""}
	if _, err := NewConfig(ok); err != nil {
		t.Fatal(err)
	}
	big := map[string]string{"A": strings.Repeat("v", MaxValueBytes+1)}
	nul := map[string]string{"A": "x\x00y"}
	total := map[string]string{}
	for i := 0; i < 10; i++ {
		total[fmt.Sprint("K", i)] = strings.Repeat("v", MaxValueBytes)
	}
	many := map[string]string{}
	for i := 0; i <= MaxConfigVars; i++ {
		many[fmt.Sprint("K", i)] = ""
	}
	for name, m := range map[string]map[string]string{"oversized": big, "nul": nul, "total": total, "many": many} {
		_, err := NewConfig(m)
		var ce *ConfigError
		if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("%s: NewConfig = %v, want *ConfigError", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "vvvv") {
			t.Errorf("%s: error holds the value", name)
		}
	}
}

func TestConfigRedacts(t *testing.T) {
	const secret = "postgres://u:hunter2@db/app"
	c, err := NewConfig(map[string]string{"DATABASE_URL": secret, "PORT": "5000"})
	if err != nil {
		t.Fatal(err)
	}
	r := Release{App: "a", Version: 1, Config: c}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "config", c, "release", r)
	js, _ := json.Marshal(r)
	for _, s := range []string{
		fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c),
		fmt.Sprintf("%q", c), fmt.Sprintf("%x", c), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), c.String(), c.GoString(),
		string(js), logged.String(),
	} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "5000") {
			t.Errorf("value leaked: %s", s)
		}
		if !strings.Contains(s, "DATABASE_URL") && !strings.Contains(s, "a v1") {
			t.Errorf("output names no key: %s", s)
		}
	}
	if v, _ := c.Get("DATABASE_URL"); v != secret {
		t.Error("Get lost the value")
	}
}

func TestConfigWith(t *testing.T) {
	c, _ := NewConfig(map[string]string{"A": "1", "B": "2"})
	d, err := c.With(map[string]string{"C": "3", "A": "9"}, []string{"B"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.Map()); got != "map[A:9 C:3]" {
		t.Errorf("With = %s", got)
	}
	if got := fmt.Sprint(c.Map()); got != "map[A:1 B:2]" {
		t.Errorf("With changed the original: %s", got)
	}
	if _, err := c.With(map[string]string{"1X": "v"}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("With(bad key) = %v", err)
	}
	if _, err := c.With(nil, []string{"X=Y"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("With(unset bad key) = %v", err)
	}
}

func TestMarshalConfigRoundTrip(t *testing.T) {
	c, _ := NewConfig(map[string]string{"A": "\xff\x80", "B": "", "C": "line\nline", "D": strings.Repeat("x", 1000)})
	got, err := UnmarshalConfig(MarshalConfig(c))
	if err != nil || !got.Equal(c) {
		t.Fatalf("round trip: %v", err)
	}
	if empty, err := UnmarshalConfig(MarshalConfig(Config{})); err != nil || empty.Len() != 0 {
		t.Errorf("empty round trip: %v", err)
	}
}

func FuzzUnmarshalConfig(f *testing.F) {
	c, _ := NewConfig(map[string]string{"A": "1", "B": "\xff"})
	f.Add(MarshalConfig(c))
	f.Add([]byte{1, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := UnmarshalConfig(b)
		if err != nil {
			return
		}
		again, err := UnmarshalConfig(MarshalConfig(got))
		if err != nil || !again.Equal(got) {
			t.Fatalf("re-encoding changed the config: %v", err)
		}
	})
}

func TestKeyring(t *testing.T) {
	k1, err := NewKeyring(Key{ID: "k1", Secret: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewConfig(map[string]string{"SECRET": "hunter2"})
	sealed := EncodeConfig(k1, c, ConfigAAD("a", 1))
	if strings.Contains(string(sealed), "hunter2") {
		t.Fatal("sealed bytes hold the value")
	}
	got, err := DecodeConfig(k1, sealed, ConfigAAD("a", 1))
	if err != nil || !got.Equal(c) {
		t.Fatalf("DecodeConfig: %v", err)
	}
	if _, err := DecodeConfig(k1, sealed, ConfigAAD("a", 2)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("sealed config moved to another release decoded: %v", err)
	}
	if _, err := DecodeConfig(nil, sealed, ConfigAAD("a", 1)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("DecodeConfig without keyring = %v", err)
	}
	other, _ := NewKeyring(Key{ID: "k1", Secret: make([]byte, 31)})
	if other != nil {
		t.Error("NewKeyring accepted a 31-byte key")
	}
	if _, err := NewKeyring(); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewKeyring() = %v", err)
	}
	// Plain bytes decode with or without a keyring (turning encryption on).
	if got, err := DecodeConfig(k1, MarshalConfig(c), nil); err != nil || !got.Equal(c) {
		t.Errorf("plain config with a keyring: %v", err)
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"A", "_a1", "1A", "A=B", "A\x00", "É", "", "='", "=secret"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		err := ValidateKey(k)
		valid := k != "" && len(k) <= MaxKeyBytes && !(k[0] >= '0' && k[0] <= '9')
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				valid = false
			}
		}
		if valid != (err == nil) {
			t.Fatalf("ValidateKey(%q) = %v, want valid=%v", k, err, valid)
		}
		// What follows '=' may be a value pasted by mistake ("FOO=secret"):
		// the error must not depend on it. The same key with another value
		// of the same length gets the same error.
		if i := strings.IndexByte(k, '='); i >= 0 {
			other := k[:i+1] + strings.Repeat("Z", len(k)-i-1)
			if err2 := ValidateKey(other); err == nil || err2 == nil || err.Error() != err2.Error() {
				t.Fatalf("ValidateKey(%q) = %v but ValidateKey(%q) = %v: the error depends on what follows '='", k, err, other, err2)
			}
		}
	})
}
