//go:build integration

package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipwayhq/slipway/internal/testenv"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/postgres"
	"github.com/slipwayhq/slipway/release/releasetest"
)

var schemaSeq atomic.Int64

// newSchema returns a fresh schema name, dropped when the test ends.
func newSchema(t *testing.T, url string) string {
	t.Helper()
	name := fmt.Sprintf("rt_%d_%d", time.Now().UnixNano()%1e9, schemaSeq.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Logf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Logf("drop schema: %v", err)
		}
	})
	return name
}

func open(t *testing.T, url, schema string, k *release.Keyring) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema, Keyring: k, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	url := testenv.Get(t, testenv.PostgresVar)
	schemas := map[release.Store]string{}
	releasetest.Run(t, releasetest.Harness{
		New: func(t *testing.T) release.Store {
			schema := newSchema(t, url)
			s := open(t, url, schema, nil)
			schemas[s] = schema
			return s
		},
		Reopen: func(t *testing.T, s release.Store) release.Store {
			schema := schemas[s]
			s.Close()
			return open(t, url, schema, nil)
		},
	})
}

// Several processes opening the store at once apply the migrations once.
func TestConcurrentOpen(t *testing.T) {
	url := testenv.Get(t, testenv.PostgresVar)
	schema := newSchema(t, url)
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		go func() {
			s, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema, MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 6; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestEncryptionAtRest(t *testing.T) {
	url := testenv.Get(t, testenv.PostgresVar)
	schema := newSchema(t, url)
	ctx := context.Background()
	k1, _ := release.NewKeyring(release.Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)})
	s := open(t, url, schema, k1)
	const secret = "hunter2-in-postgres"
	cfg, _ := release.NewConfig(map[string]string{"TOKEN": secret})
	if err := s.CreateApp(ctx, release.App{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, "app", release.Lease{}, release.Change{Create: &release.Release{Config: cfg}}); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := s.Pool().QueryRow(ctx, "SELECT config FROM releases WHERE app = 'app'").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("config value stored in clear")
	}
	s.Close()
	k21, _ := release.NewKeyring(release.Key{ID: "k2", Secret: bytes.Repeat([]byte{2}, 32)}, release.Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)})
	s = open(t, url, schema, k21)
	if n, err := s.Reencrypt(ctx); err != nil || n != 1 {
		t.Fatalf("Reencrypt = %d, %v", n, err)
	}
	s.Close()
	k2, _ := release.NewKeyring(release.Key{ID: "k2", Secret: bytes.Repeat([]byte{2}, 32)})
	s = open(t, url, schema, k2)
	defer s.Close()
	r, err := s.Release(ctx, "app", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Config.Get("TOKEN"); v != secret {
		t.Error("rotation changed the value")
	}
	s1 := open(t, url, schema, k1)
	defer s1.Close()
	if _, err := s1.Release(ctx, "app", 1); !errors.Is(err, release.ErrDecrypt) || strings.Contains(err.Error(), secret) {
		t.Errorf("read with the retired key = %v, want ErrDecrypt", err)
	}
}
