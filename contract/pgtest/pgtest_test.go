//go:build linux

// The harness runs Debian's PostgreSQL server binaries: its tests run on Linux.

package pgtest_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/contract/schema"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewDBIsFreshAndPrivate(t *testing.T) {
	c := pgtest.Shared(t)
	a, b := pgtest.NewDB(t), pgtest.NewDB(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	c.Query(t, a, "CREATE TABLE only_in_a (x int)")
	if n := c.Query(t, b, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"); n != "0" {
		t.Fatalf("a table created in one database is visible in another (count %s)", n)
	}
	if v := c.Query(t, a, "SHOW server_version"); !strings.HasPrefix(v, "15.") {
		t.Fatalf("server_version = %s, want 15.x", v)
	}
}

// The schema database has every migration and today's partition, made
// by the same statements the exporter runs.
func TestNewSchemaDBHasTheSchema(t *testing.T) {
	c := pgtest.Shared(t)
	url := pgtest.NewSchemaDB(t)
	for _, table := range []string{"hosts", "alerts", "alerts_default", "audit_entries", "chain_heads", "chain_breaks",
		schema.PartitionName(time.Now())} {
		if got := c.Query(t, url, "SELECT to_regclass('"+table+"') IS NOT NULL"); got != "t" {
			t.Errorf("table %s missing from the schema database", table)
		}
	}
	c.Query(t, url, "CREATE TABLE only_here (x int)")
	if got := c.Query(t, pgtest.NewSchemaDB(t), "SELECT to_regclass('only_here') IS NOT NULL"); got != "f" {
		t.Fatal("a table created in one schema database is visible in the next")
	}
}

func TestDatabaseIsDroppedAfterTest(t *testing.T) {
	var url string
	t.Run("inner", func(t *testing.T) {
		url = pgtest.NewDB(t)
		// A session left open: the drop must force it closed.
		psql := exec.Command(pgtest.DefaultBinDir+"/psql", "-X", "-q", "-c", "SELECT pg_sleep(600)", url)
		if err := psql.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { psql.Process.Kill(); psql.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for pgtest.Shared(t).Query(t, url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()") == "0" {
			if time.Now().After(deadline) {
				t.Fatal("the open session never showed up")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	c := pgtest.Shared(t)
	if n := c.Query(t, c.URL("postgres"), "SELECT count(*) FROM pg_database WHERE datname = '"+name+"'"); n != "0" {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestStopStartKeepsData(t *testing.T) {
	c := pgtest.NewCluster(t)
	url := c.NewDB(t)
	c.Query(t, url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pgtest.DefaultBinDir+"/psql", "-X", "-c", "SELECT 1", url).CombinedOutput(); err == nil {
		t.Fatalf("connected to a stopped cluster: %s", out)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if x := c.Query(t, url, "SELECT x FROM kept"); x != "42" {
		t.Fatalf("x = %s after restart, want 42", x)
	}
}

func TestMissingBinariesSayHowToInstall(t *testing.T) {
	t.Setenv("PGTEST_BINDIR", t.TempDir())
	_, err := pgtest.Start()
	if err == nil {
		t.Fatal("Start succeeded without binaries")
	}
	for _, want := range []string{"PostgreSQL 15 server binaries not found", "apt-get install postgresql"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestHelperPanics is run by TestServerDiesWithPanickingBinary in a child
// test binary: it starts the shared cluster, reports it, and panics, so
// Main never gets to clean up.
func TestHelperPanics(t *testing.T) {
	if os.Getenv("PGTEST_HELPER_PANIC") != "1" {
		t.Skip("run by TestServerDiesWithPanickingBinary")
	}
	c := pgtest.Shared(t)
	fmt.Printf("cluster %d %s\n", c.PID(), c.Dir())
	panic("a test panicked")
}

func TestServerDiesWithPanickingBinary(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPanics$", "-test.v")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER_PANIC=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("helper did not panic:\n%s", out)
	}
	var pid int
	var dir string
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "cluster %d %s", &pid, &dir); err == nil {
			break
		}
	}
	if pid == 0 || dir == "" {
		t.Fatalf("helper did not report its cluster:\n%s", out)
	}
	deadline := time.Now().Add(time.Minute)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postgres %d outlived its test binary", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The next cluster started sweeps the orphaned directory (another test
	// binary running in parallel may have swept it already).
	pgtest.NewCluster(t)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("orphaned cluster directory %s not swept: %v", dir, err)
	}
}
