package addons

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
)

// Redacted is what a Secret prints as, in every format, in logs and in JSON.
const Redacted = "[redacted]"

// Secret holds a credential or a config value that must not leak: it prints
// as Redacted with every fmt verb, logs as Redacted through log/slog, and
// marshals to JSON as Redacted. Only Reveal returns the value, so every place
// that handles the plain text is explicit and easy to audit.
//
// The zero value is the empty secret.
type Secret struct {
	v string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the plain value. Call it only where the value must leave
// the process (a release's environment, a connection string).
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// Equal reports whether s and o hold the same value.
func (s Secret) Equal(o Secret) bool { return s.v == o.v }

// String returns Redacted.
func (s Secret) String() string { return Redacted }

// GoString returns Redacted, for %#v.
func (s Secret) GoString() string { return Redacted }

// Format prints Redacted for every verb, so that %v, %+v, %#v, %s, %q and
// %x never reveal the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", Redacted)
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

// LogValue makes log/slog print Redacted.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON writes Redacted: a Secret never reaches JSON by accident.
// Code that must send the value (the HTTP adapter does not need to) calls
// Reveal.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(Redacted) }

// UnmarshalJSON reads a JSON string into the secret, so that provider
// responses decode straight into Config.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("addons: secret is not a JSON string")
	}
	s.v = v
	return nil
}

// Config is the set of config vars a resource gives the app that it is
// attached to, keyed by suffix: a provider returns {"URL": ...}, and the
// attachment named DATABASE turns it into DATABASE_URL (see VarName).
// Values are secrets. A nil Config is empty.
//
// Keys are upper-case: letters, digits and '_' (see ValidateConfigKey).
type Config map[string]Secret

// Keys returns the keys of c, sorted.
func (c Config) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Equal reports whether c and o hold the same keys and values.
func (c Config) Equal(o Config) bool {
	if len(c) != len(o) {
		return false
	}
	for k, v := range c {
		w, ok := o[k]
		if !ok || !v.Equal(w) {
			return false
		}
	}
	return true
}

// Clone returns a copy of c.
func (c Config) Clone() Config {
	if c == nil {
		return nil
	}
	o := make(Config, len(c))
	for k, v := range c {
		o[k] = v
	}
	return o
}

// String lists the keys, never the values: Config{URL=[redacted]}.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("Config{")
	for i, k := range c.Keys() {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(Redacted)
	}
	b.WriteString("}")
	return b.String()
}

// Format prints String for every verb, so that %#v cannot reveal the values
// through the map's own formatting.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue makes log/slog print the keys only.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports the first key that is not a valid config key, as an
// error wrapping ErrInvalidName.
func (c Config) Validate() error {
	for _, k := range c.Keys() {
		if err := ValidateConfigKey(k); err != nil {
			return err
		}
	}
	return nil
}
