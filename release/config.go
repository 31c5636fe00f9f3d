package release

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Limits on config vars. They are checked whenever a Config is built, so no
// Store ever holds a config outside them.
const (
	MaxKeyBytes    = 256       // longest config var name
	MaxValueBytes  = 32 << 10  // longest value: 32 KiB
	MaxConfigBytes = 256 << 10 // all names and values of one release together: 256 KiB
	MaxConfigVars  = 1000      // most vars one release may hold
)

// Config is an immutable set of config vars. Its values are secrets: its
// String, GoString, Format (%v, %+v, %#v, %s) and MarshalJSON output names
// the keys and redacts every value. Read values with Get or Map.
//
// The zero Config is empty and ready to use.
type Config struct {
	m map[string]string
}

// Redacted replaces config values wherever a Config is printed.
const Redacted = "[redacted]"

// NewConfig checks vars and returns them as a Config. The error wraps
// ErrInvalidConfig and never holds a value.
func NewConfig(vars map[string]string) (Config, error) {
	m := make(map[string]string, len(vars))
	for k, v := range vars {
		m[k] = v
	}
	c := Config{m: m}
	return c, c.Validate()
}

// Validate reports the first problem with c's names and values (sorted by
// name), as a *ConfigError.
func (c Config) Validate() error {
	if len(c.m) > MaxConfigVars {
		return &ConfigError{Reason: fmt.Sprintf("%d config vars, at most %d are allowed", len(c.m), MaxConfigVars)}
	}
	total := 0
	for _, k := range c.Keys() {
		if err := ValidateKey(k); err != nil {
			return err
		}
		v := c.m[k]
		if len(v) > MaxValueBytes {
			return &ConfigError{Key: k, Reason: fmt.Sprintf("value is %d bytes, at most %d are allowed", len(v), MaxValueBytes)}
		}
		if i := strings.IndexByte(v, 0); i >= 0 {
			return &ConfigError{Key: k, Reason: fmt.Sprintf("value has a NUL byte at offset %d", i)}
		}
		total += len(k) + len(v)
	}
	if total > MaxConfigBytes {
		return &ConfigError{Reason: fmt.Sprintf("config vars take %d bytes, at most %d are allowed", total, MaxConfigBytes)}
	}
	return nil
}

// ValidateKey reports whether k is a valid config var name under POSIX
// rules: [A-Za-z_][A-Za-z0-9_]*, at most MaxKeyBytes long.
func ValidateKey(k string) error {
	if k == "" {
		return &ConfigError{Reason: "empty config var name"}
	}
	if len(k) > MaxKeyBytes {
		return &ConfigError{Key: quoteKey(k), Reason: fmt.Sprintf("name is %d bytes, at most %d are allowed", len(k), MaxKeyBytes)}
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9':
			if i == 0 {
				return &ConfigError{Key: quoteKey(k), Reason: "name starts with a digit"}
			}
		default:
			return &ConfigError{Key: quoteKey(k), Reason: fmt.Sprintf("name has %q at byte %d; only letters, digits and '_' are allowed", c, i)}
		}
	}
	return nil
}

// quoteKey makes an invalid key printable without leaking what follows an
// '=' (which may be a value pasted by mistake: "FOO=secret").
func quoteKey(k string) string {
	cut := false
	if i := strings.IndexAny(k, "=\x00"); i >= 0 {
		k, cut = k[:i], true
	}
	if len(k) > 64 {
		k, cut = k[:64], true
	}
	if cut {
		return fmt.Sprintf("%q...", k)
	}
	return fmt.Sprintf("%q", k)
}

// ConfigError says why config vars were refused. It holds names, never
// values.
type ConfigError struct {
	Key    string // the offending name; empty when the whole set is at fault
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return "release: invalid config: " + e.Reason
	}
	return fmt.Sprintf("release: invalid config var %s: %s", e.Key, e.Reason)
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Get returns the value of k and whether it is set.
func (c Config) Get(k string) (string, bool) {
	v, ok := c.m[k]
	return v, ok
}

// Len returns the number of vars.
func (c Config) Len() int { return len(c.m) }

// Keys returns the names, sorted.
func (c Config) Keys() []string { return sortedKeys(c.m) }

// Map returns a copy of the vars.
func (c Config) Map() map[string]string {
	m := make(map[string]string, len(c.m))
	for k, v := range c.m {
		m[k] = v
	}
	return m
}

// Equal reports whether c and o hold the same vars.
func (c Config) Equal(o Config) bool {
	if len(c.m) != len(o.m) {
		return false
	}
	for k, v := range c.m {
		if w, ok := o.m[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// With returns c with set applied, then unset removed. The result is
// validated; c is unchanged.
func (c Config) With(set map[string]string, unset []string) (Config, error) {
	m := c.Map()
	for k, v := range set {
		if err := ValidateKey(k); err != nil {
			return c, err
		}
		m[k] = v
	}
	for _, k := range unset {
		if err := ValidateKey(k); err != nil {
			return c, err
		}
		delete(m, k)
	}
	return NewConfig(m)
}

// String lists the names with redacted values.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("Config{")
	for i, k := range c.Keys() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(Redacted)
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String, so that %#v redacts too.
func (c Config) GoString() string { return "release." + c.String() }

// Format makes every verb print the redacted String.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(c.GoString()))
		return
	}
	_, _ = f.Write([]byte(c.String()))
}

// MarshalJSON encodes the names with redacted values, so an API that
// serializes a Release does not leak secrets. Stores use MarshalConfig.
func (c Config) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, len(c.m))
	for k := range c.m {
		m[k] = Redacted
	}
	return json.Marshal(m)
}

// ErrCorruptConfig is returned by UnmarshalConfig for bytes MarshalConfig
// did not make.
var ErrCorruptConfig = errors.New("release: corrupt config encoding")

// MarshalConfig encodes c losslessly (values may hold any byte but NUL,
// including invalid UTF-8, which JSON would mangle) for a Store to keep,
// encrypted or not. UnmarshalConfig reverses it.
func MarshalConfig(c Config) []byte {
	var b []byte
	b = append(b, 1) // format version
	b = binary.AppendUvarint(b, uint64(len(c.m)))
	for _, k := range c.Keys() {
		v := c.m[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// UnmarshalConfig decodes what MarshalConfig made.
func UnmarshalConfig(b []byte) (Config, error) {
	if len(b) == 0 {
		return Config{}, nil
	}
	if b[0] != 1 {
		return Config{}, fmt.Errorf("%w: format %d", ErrCorruptConfig, b[0])
	}
	b = b[1:]
	next := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, true
	}
	n, w := binary.Uvarint(b)
	if w <= 0 || n > MaxConfigVars*4 {
		return Config{}, ErrCorruptConfig
	}
	b = b[w:]
	m := make(map[string]string, n)
	for i := uint64(0); i < n; i++ {
		k, ok1 := next()
		v, ok2 := next()
		if !ok1 || !ok2 {
			return Config{}, ErrCorruptConfig
		}
		m[k] = v
	}
	if len(b) != 0 {
		return Config{}, ErrCorruptConfig
	}
	return Config{m: m}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
