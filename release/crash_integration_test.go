//go:build integration

package release_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipwayhq/slipway/internal/testenv"
)

var crashSchemas atomic.Int64

// TestCrashRecoveryPostgres runs the crash harness against the PostgreSQL
// store, one schema per case.
func TestCrashRecoveryPostgres(t *testing.T) {
	url := testenv.Get(t, testenv.PostgresVar)
	runCrashHarness(t, func(t *testing.T) string {
		schema := fmt.Sprintf("crash_%d_%d", time.Now().Unix()%1e6, crashSchemas.Add(1))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if conn, err := pgx.Connect(ctx, url); err == nil {
				_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
				conn.Close(ctx)
			}
		})
		return "pg:" + schema
	})
}
