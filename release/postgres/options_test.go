package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/postgres"
)

func TestOpenRefusesBadSchema(t *testing.T) {
	for _, schema := range []string{"Public", "a-b", "1abc", "a;drop table x", "x\"y"} {
		_, err := postgres.Open(context.Background(), "postgres://127.0.0.1:1/none", postgres.Options{Schema: schema})
		if !errors.Is(err, release.ErrInvalid) {
			t.Errorf("Open(schema %q) = %v, want ErrInvalid", schema, err)
		}
	}
}
