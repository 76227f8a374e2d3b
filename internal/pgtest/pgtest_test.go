package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestNewDBIsFreshAndPrivate(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.NewDB(t), pgtest.NewDB(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a table created in one database is visible in another")
	}
	var version string
	if err := ca.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "15.") {
		t.Fatalf("server_version = %s, want 15.x", version)
	}
}

func TestDatabaseIsDroppedAfterTest(t *testing.T) {
	var url string
	t.Run("inner", func(t *testing.T) {
		url = pgtest.NewDB(t)
		connect(t, url) // left open: the drop must force it closed
	})
	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	admin := connect(t, pgtest.Shared(t).URL("postgres"))
	var n int
	if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestStopStartKeepsData(t *testing.T) {
	ctx := context.Background()
	c := pgtest.NewCluster(t)
	url := c.NewDB(t)
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c2, err := pgx.Connect(cctx, url); err == nil {
		c2.Close(ctx)
		t.Fatal("connected to a stopped cluster")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var x int
	if err := connect(t, url).QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil {
		t.Fatal(err)
	}
	if x != 42 {
		t.Fatalf("x = %d after restart, want 42", x)
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
