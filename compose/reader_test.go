package compose

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/migrations"
)

// TestGrafanaRoleIsReadOnly runs compose's PostgreSQL init script the way
// the postgres image does on first start (POSTGRES_USER is the superuser
// "tripwire", the script runs before the collector exists), then the
// collector's migrations as tripwire, and checks what Grafana's role can do:
// read the tables the plugin reads, write nothing.
func TestGrafanaRoleIsReadOnly(t *testing.T) {
	c := pgtest.NewCluster(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, sql := range []string{`CREATE ROLE tripwire SUPERUSER LOGIN`, `CREATE DATABASE tripwire OWNER tripwire`} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	psqlDir := os.Getenv("PGTEST_BINDIR")
	if psqlDir == "" {
		psqlDir = "/usr/lib/postgresql/15/bin"
	}
	cmd := exec.Command("sh", "postgres/10-tripwire-reader.sh")
	cmd.Env = append(os.Environ(), "PATH="+psqlDir+":"+os.Getenv("PATH"), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(c.Port()),
		"POSTGRES_USER=tripwire", "POSTGRES_DB=tripwire", "TRIPWIRE_PG_READER_PASSWORD=reader-secret")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init script: %v\n%s", err, out)
	}

	dsn := func(user string) string { return strings.Replace(c.URL("tripwire"), "postgres@", user+"@", 1) }
	pool, err := pgxpool.New(ctx, dsn("tripwire"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatalf("migrations as tripwire: %v", err)
	}

	reader, err := pgx.Connect(ctx, dsn("tripwire_reader"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)
	for _, table := range []string{"hosts", "alerts", "chain_heads", "audit_entries", "chain_breaks"} {
		var n int
		if err := reader.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Errorf("tripwire_reader cannot read %s: %v", table, err)
		}
	}
	for _, write := range []string{
		`INSERT INTO hosts (host_name) VALUES ('intruder')`,
		`UPDATE hosts SET last_seen = now()`,
		`DELETE FROM alerts`,
		`CREATE TABLE public.x (i int)`,
	} {
		if _, err := reader.Exec(ctx, write); err == nil {
			t.Errorf("tripwire_reader may run %q", write)
		}
	}
}
