package addons

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidateApp reports whether name is an app name every provisioner must
// accept: 1 to MaxAppName bytes of valid UTF-8 without control characters.
//
// This is deliberately wider than a Slipway app name (a DNS label): quotes,
// spaces, SQL keywords and non-ASCII letters pass, so provisioners can never
// rely on the name being harmless and must quote it wherever it goes (the
// conformance suite provisions for such names). The error wraps
// ErrInvalidName.
func ValidateApp(name string) error {
	if name == "" || len(name) > MaxAppName {
		return fmt.Errorf("%w: app name must be 1 to %d bytes", ErrInvalidName, MaxAppName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: app name is not valid UTF-8", ErrInvalidName)
	}
	for i, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("%w: app name has a control character at byte %d", ErrInvalidName, i)
		}
	}
	return nil
}

// MaxEnvName bounds config var and attachment names.
const MaxEnvName = 128

// ValidateEnvName reports whether name is a portable environment variable
// name (POSIX.1-2017, 8.1): upper-case ASCII letters, digits and '_', not
// starting with a digit. The error wraps ErrInvalidName.
func ValidateEnvName(name string) error {
	if name == "" || len(name) > MaxEnvName {
		return fmt.Errorf("%w: config var name must be 1 to %d bytes", ErrInvalidName, MaxEnvName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9':
			if i == 0 {
				return fmt.Errorf("%w: config var name %q starts with a digit", ErrInvalidName, name)
			}
		default:
			return fmt.Errorf("%w: config var name %q has %q at byte %d; only A-Z, 0-9 and '_' are allowed", ErrInvalidName, name, rune(c), i)
		}
	}
	return nil
}

// ValidateConfigKey reports whether key can be a Config key: a suffix such
// as "URL" or "KEY_PREFIX" made of A-Z, 0-9 and '_', starting with a letter
// or digit. The error wraps ErrInvalidName.
func ValidateConfigKey(key string) error {
	if key == "" || key[0] == '_' {
		return fmt.Errorf("%w: config key %q must start with A-Z or 0-9", ErrInvalidName, key)
	}
	// Any valid attachment name prefix makes a valid env name.
	return ValidateEnvName("A_" + key)
}

// ValidateAttachmentName reports whether name can name an attachment: a
// valid env name starting with a letter and not ending with '_', such as
// DATABASE, REDIS or POSTGRESQL_AMBER. The error wraps ErrInvalidName.
func ValidateAttachmentName(name string) error {
	if err := ValidateEnvName(name); err != nil {
		return err
	}
	if name[0] == '_' || name[len(name)-1] == '_' {
		return fmt.Errorf("%w: attachment name %q must start with a letter and not end with '_'", ErrInvalidName, name)
	}
	return nil
}

// VarName returns the config var that carries key of the resource attached
// as attachment: VarName("DATABASE", "URL") is "DATABASE_URL".
func VarName(attachment, key string) string { return attachment + "_" + key }

// colors name further attachments of a service, as Heroku names
// HEROKU_POSTGRESQL_<COLOR>: stable, readable, and unlikely to be mistaken
// for a number.
var colors = []string{
	"AMBER", "BLUE", "BRONZE", "CHARCOAL", "COBALT", "COPPER", "CRIMSON",
	"CYAN", "GOLD", "GRAY", "GREEN", "IVORY", "JADE", "LIME", "MAROON",
	"MAUVE", "NAVY", "OLIVE", "ONYX", "ORANGE", "PINK", "PURPLE", "RED",
	"ROSE", "SILVER", "TEAL", "VIOLET", "WHITE", "YELLOW",
}

// AttachmentName chooses the name of a new attachment of a resource of the
// service described by c, given the names of the app's existing
// attachments (of every service).
//
// The first attachment of a service gets c.DefaultAttachment: DATABASE for
// PostgreSQL, so the primary database is DATABASE_URL, as on Heroku and
// Dokku; REDIS for Redis, so REDIS_URL. Further ones get
// <SERVICE>_<COLOR> (POSTGRESQL_AMBER, so POSTGRESQL_AMBER_URL), the
// equivalent of Heroku's HEROKU_POSTGRESQL_<COLOR>_URL, then
// <SERVICE>_<COLOR>_<N> once the colors run out. A caller that lets users
// name attachments validates their choice with ValidateAttachmentName.
func AttachmentName(c Capabilities, existing []string) string {
	taken := make(map[string]bool, len(existing))
	for _, n := range existing {
		taken[n] = true
	}
	def := c.DefaultAttachment
	if def == "" || ValidateAttachmentName(def) != nil {
		def = serviceName(c.Service)
	}
	if !taken[def] {
		return def
	}
	base := serviceName(c.Service)
	for n := 1; ; n++ {
		for _, color := range colors {
			name := base + "_" + color
			if n > 1 {
				name += "_" + strconv.Itoa(n)
			}
			if !taken[name] {
				return name
			}
		}
	}
}

// serviceName upper-cases a service name into an attachment name prefix.
func serviceName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := strings.Trim(b.String(), "_")
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		name = "ADDON_" + name
	}
	return strings.TrimRight(name, "_")
}
