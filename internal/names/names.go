// Package names holds the naming rules shared by Slipway's packages: app
// names, process types and other identifiers that become instance, DNS and
// Kubernetes object names.
package names

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxLabel is the longest DNS label (RFC 1123).
const MaxLabel = 63

// ErrInvalid is wrapped by every error this package returns.
var ErrInvalid = errors.New("invalid name")

// Label reports whether s is a valid RFC 1123 DNS label: 1 to 63 lower-case
// letters, digits and '-', starting and ending with a letter or digit. The
// error says what is wrong and names what (e.g. "process type").
func Label(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(s) > MaxLabel {
		return fmt.Errorf("%w: %s %q is %d characters long, at most %d are allowed", ErrInvalid, what, s, len(s), MaxLabel)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(s)-1 {
				return fmt.Errorf("%w: %s %q must start and end with a lower-case letter or digit", ErrInvalid, what, s)
			}
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Errorf("%w: %s %q has %q at byte %d; only lower-case letters, digits and '-' are allowed", ErrInvalid, what, s, r, i)
		}
	}
	return nil
}

// App reports whether s is a valid app name: a DNS label that starts with a
// letter (as on Heroku and Dokku), so that it can prefix instance and object
// names and never parses as a number.
func App(s string) error {
	if err := Label("app name", s); err != nil {
		return err
	}
	if s[0] < 'a' || s[0] > 'z' {
		return fmt.Errorf("%w: app name %q must start with a lower-case letter", ErrInvalid, s)
	}
	return nil
}
