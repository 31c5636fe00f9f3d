package postgres_test

import (
	"regexp"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/slipwayhq/slipway/addons/postgres"
)

func TestCut(t *testing.T) {
	for _, s := range []string{"short", "ünïcødé-äpp-日本-ünïcødé-äpp-日本-ünïcødé", "x\"; DROP ROLE postgres; -- and some more text to cut"} {
		c := postgres.Cut(s, 30)
		if len(c) > 30 || !utf8.ValidString(c) {
			t.Errorf("cut(%q) = %q", s, c)
		}
	}
}

// URLs built for hostile names parse back, with pgx, to the same user,
// password and database.
func TestURLRoundTrip(t *testing.T) {
	for _, name := range []string{"plain_0a", `it's "quoted"`, "p@ss:w/rd#frag?q=1 %41", "ünïcødé 日本", "select"} {
		u := postgres.URLFor("127.0.0.1", 5432, name+"_a", "pw-_9", name)
		cfg, err := pgx.ParseConfig(u)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if cfg.User != name+"_a" || cfg.Database != name || cfg.Password != "pw-_9" || cfg.Port != 5432 {
			t.Errorf("%q: parsed user %q database %q", name, cfg.User, cfg.Database)
		}
	}
}

func TestScramVerifierShape(t *testing.T) {
	v, err := postgres.ScramVerifier("secret")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$`).MatchString(v) {
		t.Fatalf("verifier %q", v)
	}
	w, _ := postgres.ScramVerifier("secret")
	if v == w {
		t.Fatal("salt is not random")
	}
}
