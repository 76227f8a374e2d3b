// Package pgtest starts a throwaway PostgreSQL 15 cluster from the local
// binaries for the plugin's tests and benchmarks, with the TripWire schema
// (../migrations/0001_schema.sql) in a template database. Start one cluster
// per test binary with [Start] in TestMain, then take a fresh database per
// test with [Cluster.NewDB].
//
// The repository's internal/pgtest serves the root module; this module keeps
// its own small copy because importing the root module would pull the
// collector's gRPC version into the plugin (see TOOLCHAIN.md).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running throwaway cluster.
type Cluster struct {
	dir, bin string
	Port     int
	asUser   string // run the server binaries as this user ("" = as ourselves)
	seq      atomic.Int64
}

const template = "tripwire_template"

// BinDir finds the PostgreSQL binaries: $PG_BIN, else Debian's location.
func BinDir() (string, error) {
	dirs := []string{os.Getenv("PG_BIN"), "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries not found (looked in $PG_BIN and /usr/lib/postgresql/*/bin): install them with `apt-get install postgresql`")
}

// Start initialises and starts a cluster on a free loopback port and loads
// the schema into a template database.
func Start() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tripwire-plugin-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		c.asUser = "postgres"
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.Join(fmt.Errorf("running as root needs a postgres user: %w", err), c.Stop())
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, errors.Join(err, c.Stop())
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	if c.Port, err = freePort(); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	data := filepath.Join(dir, "data")
	if err := c.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.Port, dir)
	if err := c.run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	if err := c.loadTemplate(); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

func (c *Cluster) run(name string, args ...string) error {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DSN is a connection string for database db.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// SchemaPath finds migrations/0001_schema.sql by walking up from the
// working directory, so tests run from any package of the repository.
func SchemaPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "migrations", "0001_schema.sql")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("migrations/0001_schema.sql not found above the working directory")
		}
		dir = parent
	}
}

func (c *Cluster) loadTemplate() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	schemaFile, err := SchemaPath()
	if err != nil {
		return err
	}
	// Every migration, in order, as the exporter applies them.
	files, err := filepath.Glob(filepath.Join(filepath.Dir(schemaFile), "*.sql"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var schema []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		schema = append(append(schema, b...), '\n')
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+template)
	conn.Close(ctx)
	if err != nil {
		return err
	}
	conn, err = pgx.Connect(ctx, c.DSN(template))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, string(schema)); err != nil {
		return fmt.Errorf("loading the migrations in %s: %w", filepath.Dir(schemaFile), err)
	}
	// Monthly partitions around now, as the exporter creates them.
	now := time.Now().UTC()
	return CreatePartitions(ctx, conn, now.AddDate(0, -13, 0), now.AddDate(0, 2, 0))
}

// CreatePartitions creates the monthly alerts partitions covering [from, to).
func CreatePartitions(ctx context.Context, conn *pgx.Conn, from, to time.Time) error {
	m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	for ; m.Before(to); m = m.AddDate(0, 1, 0) {
		next := m.AddDate(0, 1, 0)
		sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS alerts_p%04d%02d PARTITION OF alerts FOR VALUES FROM ('%s') TO ('%s')`,
			m.Year(), m.Month(), m.Format(time.RFC3339), next.Format(time.RFC3339))
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("creating partition for %s: %w", m.Format("2006-01"), err)
		}
	}
	return nil
}

// NewDB creates a fresh database from the template and drops it when the
// test ends. It returns the database's DSN.
func (c *Cluster) NewDB(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.seq.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		tb.Fatalf("connecting to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template); err != nil {
		tb.Fatalf("creating test database: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return c.DSN(name)
}

// Stop stops the cluster and removes its files.
func (c *Cluster) Stop() error {
	var err error
	data := filepath.Join(c.dir, "data")
	if _, statErr := os.Stat(filepath.Join(data, "postmaster.pid")); statErr == nil {
		err = c.run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}
