package release

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/slipwayhq/slipway/internal/names"
)

// ValidateAppName reports whether name can name an app (a DNS label that
// starts with a letter), wrapping ErrInvalid.
func ValidateAppName(name string) error {
	if err := names.App(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Validate reports what is wrong with c before a Store applies it,
// wrapping ErrInvalid (or ErrInvalidConfig). Stores call it first.
func (c Change) Validate() error {
	if r := c.Create; r != nil {
		texts := []string{r.Description, r.Image.Ref, r.Image.Digest}
		for t, cmd := range r.Processes {
			texts = append(texts, t, cmd)
		}
		for _, a := range r.Attachments {
			texts = append(texts, a.Name, a.Provider, a.Resource)
			texts = append(texts, a.Vars...)
		}
		for _, s := range texts {
			if err := checkText(s); err != nil {
				return err
			}
		}
		if r.Status != "" && !r.Status.Valid() {
			return fmt.Errorf("%w: unknown status %q", ErrInvalid, r.Status)
		}
		if err := r.Config.Validate(); err != nil {
			return err
		}
		for t := range r.Processes {
			if err := names.Label("process type", t); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
	}
	for _, s := range c.Statuses {
		if err := checkText(s.Reason); err != nil {
			return err
		}
		if !s.Status.Valid() {
			return fmt.Errorf("%w: unknown status %q", ErrInvalid, s.Status)
		}
		if s.Version < 0 || (s.Version == 0 && c.Create == nil) {
			return fmt.Errorf("%w: status change for version %d", ErrInvalid, s.Version)
		}
	}
	if c.Current != nil && (*c.Current < 0 || (*c.Current == 0 && c.Create == nil)) {
		// 0 with Create means the created release; without, "none", which
		// a store never goes back to.
		return fmt.Errorf("%w: current version %d", ErrInvalid, *c.Current)
	}
	if c.Formation != nil {
		seen := map[string]bool{}
		for _, p := range *c.Formation {
			if err := names.Label("process type", p.Type); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			if seen[p.Type] {
				return fmt.Errorf("%w: process type %q appears twice", ErrInvalid, p.Type)
			}
			seen[p.Type] = true
			if p.Count < 0 {
				return fmt.Errorf("%w: negative count for %q", ErrInvalid, p.Type)
			}
		}
	}
	if d := c.Deploy; d != nil {
		if err := checkText(d.Reason); err != nil {
			return err
		}
		if d.Release < 0 || (d.Release == 0 && c.Create == nil) {
			return fmt.Errorf("%w: deploy of version %d", ErrInvalid, d.Release)
		}
	}
	return nil
}

// Clone returns a deep copy of r, so that stores and callers never share
// its maps and slices.
func (r Release) Clone() Release {
	c := r
	if r.Processes != nil {
		c.Processes = make(map[string]string, len(r.Processes))
		for k, v := range r.Processes {
			c.Processes[k] = v
		}
	}
	c.Attachments = slices.Clone(r.Attachments)
	for i := range c.Attachments {
		c.Attachments[i].Vars = slices.Clone(c.Attachments[i].Vars)
	}
	return c
}

// Clone returns a deep copy of a.
func (a App) Clone() App {
	c := a
	c.Formation = slices.Clone(a.Formation)
	return c
}

// checkText refuses what a SQL store could not keep as text: invalid UTF-8
// and NUL bytes (config values, which may hold them, are stored as bytes).
func checkText(s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: text with a NUL byte or invalid UTF-8: %q", ErrInvalid, truncate(s, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
