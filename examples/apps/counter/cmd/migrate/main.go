// Command migrate is the counter's release phase: it creates the schema and
// records that it ran, so the platform's tests can count release phases.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate: connect:", err)
		os.Exit(1)
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS hits (id int PRIMARY KEY, n bigint NOT NULL)`,
		`INSERT INTO hits (id, n) VALUES (1, 0) ON CONFLICT DO NOTHING`,
		`CREATE TABLE IF NOT EXISTS release_runs (id bigserial PRIMARY KEY, ran_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO release_runs DEFAULT VALUES`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			fmt.Fprintln(os.Stderr, "migrate:", err)
			os.Exit(1)
		}
	}
	fmt.Println("migrate: schema is up to date")
}
