package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/bolt"
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "slipway")
	defer os.RemoveAll(dir)
	// Config values are encrypted at rest with the keyring's first key.
	keys, err := release.NewKeyring(release.Key{ID: "2026-01", Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		panic(err)
	}
	s, err := bolt.Open(filepath.Join(dir, "releases.db"), bolt.Options{Keyring: keys})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateApp(ctx, release.App{Name: "shop"}); err != nil {
		panic(err)
	}
	cfg, _ := release.NewConfig(map[string]string{"SECRET_KEY": "s3cr3t"})
	r, err := s.Commit(ctx, "shop", release.Lease{}, release.Change{Create: &release.Release{Config: cfg, Cause: release.CauseConfig}})
	if err != nil {
		panic(err)
	}
	fmt.Println(r, r.Status, r.Config)
	// Output: shop v1 pending Config{SECRET_KEY=[redacted]}
}
