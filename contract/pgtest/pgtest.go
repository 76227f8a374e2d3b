// Package pgtest runs throwaway PostgreSQL 15 clusters for the tests of both
// Go modules (the root and the Grafana plugin), from the server binaries
// installed on the machine (Debian's postgresql package). It needs nothing
// but those binaries: the server is driven with pg_isready and psql.
//
// Start with [NewDB]: it returns the URL of a fresh, empty database on a
// cluster shared by the whole test binary, and drops the database when the
// test ends. [NewSchemaDB] returns one with TripWire's schema instead: the
// repository's migrations/*.sql in order, and the daily alerts partitions
// built by contract/schema as the exporter builds them. Call [Main] from
// TestMain so the shared cluster is stopped and its directory removed when
// the tests are done:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// A test that stops the server (an outage test) takes a private cluster with
// [NewCluster] and uses [Cluster.Stop] and [Cluster.Start] on it, so it does
// not pull the shared server from under other tests.
//
// The server runs as the postgres user when the tests run as root (initdb and
// postgres refuse root), on a free loopback port, with its socket in a private
// directory. It is started as a child of the test binary with a parent-death
// signal, so it dies with the test binary even when that panics, times out or
// is killed; directories left behind that way are swept by the next run.
//
// Environment: PGTEST_BINDIR overrides the binary directory (default
// /usr/lib/postgresql/15/bin); PGTEST_DURABLE=1 keeps fsync on (off by
// default: these clusters are thrown away, and fsync makes them slow on a
// shared disk); PGTEST_SETTINGS adds server settings, space-separated
// name=value pairs that win over the defaults
// (shared_preload_libraries=pg_stat_statements to see what a benchmark's
// statements cost).
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract/schema"
)

// DefaultBinDir is where Debian's postgresql-15 package puts the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// dirPrefix names cluster directories under os.TempDir; the pid of the test
// binary that owns one follows, so a later run can sweep orphans.
const dirPrefix = "tripwire-pgtest-"

// startTimeout bounds initdb and server start on a busy machine.
const startTimeout = 2 * time.Minute

// Cluster is one PostgreSQL server with its own data directory.
type Cluster struct {
	binDir  string
	dir     string // owns data/, sock/ and server.log
	port    int
	runAs   *credential // nil when not root
	durable bool
	// settings are name=value server settings given after the defaults,
	// so they win.
	settings []string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the running server process has been reaped.
	exited chan struct{}

	templateOnce sync.Once
	templateErr  error
}

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
	dbCounter  atomic.Int64
)

// Main runs the tests and then stops the shared cluster, if one was started,
// and removes its directory. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that must exit itself (testscript.Main): it
// runs the tests, removes the shared cluster and returns the exit code.
func Run(m interface{ Run() int }) int {
	code := m.Run()
	if shared != nil {
		if err := shared.remove(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	return code
}

// Shared returns the cluster shared by the test binary, starting it on first
// use. It fails the test when the server cannot start.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = Start()
	})
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// NewDB creates an empty database on the shared cluster, drops it when the
// test ends, and returns its pgx connection URL.
func NewDB(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDB(t)
}

// NewCluster starts a private cluster that is stopped and removed when the
// test ends. Use it for tests that stop the server.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	return NewClusterWith(t, Options{})
}

// Options are a private cluster's settings beyond the test defaults.
type Options struct {
	// Durable keeps fsync, full_page_writes and synchronous_commit on, as
	// PGTEST_DURABLE=1 does: for a benchmark whose figure must hold in
	// production.
	Durable bool
	// Settings are name=value server settings given after the defaults
	// (and before PGTEST_SETTINGS), so they win.
	Settings []string
}

// NewClusterWith is NewCluster with the given options.
func NewClusterWith(t testing.TB, o Options) *Cluster {
	t.Helper()
	c, err := StartWith(o)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.remove(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// Start initialises and starts a new cluster. The caller stops it with
// Remove; tests use NewDB or NewCluster instead.
func Start() (*Cluster, error) { return StartWith(Options{}) }

// StartWith is Start with the given options.
func StartWith(o Options) (*Cluster, error) {
	binDir := os.Getenv("PGTEST_BINDIR")
	if binDir == "" {
		binDir = DefaultBinDir
	}
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return nil, fmt.Errorf("PostgreSQL 15 server binaries not found in %s (%s: %v); install them with: apt-get install postgresql", binDir, b, err)
		}
	}
	sweepOrphans()

	c := &Cluster{binDir: binDir, durable: o.Durable || os.Getenv("PGTEST_DURABLE") == "1",
		settings: append(slices.Clone(o.Settings), strings.Fields(os.Getenv("PGTEST_SETTINGS"))...)}
	var err error
	c.dir, err = os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("creating cluster directory: %w", err)
	}
	if err := c.init(); err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	// A free port found by listening can be taken by someone else before
	// the server binds it; try a few.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			break
		}
		if err = c.Start(); err == nil {
			return c, nil
		}
		if attempt == 4 || !strings.Contains(err.Error(), "could not bind") &&
			!strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			break
		}
	}
	os.RemoveAll(c.dir)
	return nil, err
}

func (c *Cluster) init() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres user to own the cluster: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.runAs = &credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	for _, d := range []string{c.dir, c.dataDir(), c.sockDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
		if c.runAs != nil {
			if err := os.Chown(d, int(c.runAs.Uid), int(c.runAs.Gid)); err != nil {
				return fmt.Errorf("handing %s to postgres: %w", d, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"),
		"-D", c.dataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C.UTF-8", "--no-sync")
	cmd.Dir = c.dir
	cmd.SysProcAttr = procAttr(c.runAs, false)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// Start starts the server of a stopped cluster on the same port and waits
// until it accepts connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening server log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	args := []string{
		"-D", c.dataDir(),
		"-p", strconv.Itoa(c.port),
		"-k", c.sockDir(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=200",
		"-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning",
	}
	if !c.durable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	for _, kv := range c.settings {
		args = append(args, "-c", kv)
	}
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr(c.runAs, true)
	// The parent-death signal follows the thread that forked the server,
	// not the process: started from any thread, the server got SIGQUIT
	// whenever the Go runtime retired that thread (a goroutine that exits
	// while locked to its thread, as the agent's watchers do, takes the
	// thread with it). The server is forked from a thread locked until it
	// exits, which lives as long as the server.
	started, exited := make(chan error, 1), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}

	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, filepath.Join(c.binDir, "pg_isready"),
			"-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", "-d", "postgres").CombinedOutput()
		cancel()
		if err == nil {
			break
		}
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
		select {
		case <-exited:
			return fmt.Errorf("postgres exited during start: %s", c.logSince(logStart))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Signal(syscall.SIGQUIT)
			<-exited
			return fmt.Errorf("postgres not ready after %s: %v; log: %s", startTimeout, err, c.logSince(logStart))
		}
	}
	c.cmd, c.exited = cmd, exited
	return nil
}

// Stop shuts the server down (fast shutdown: sessions are cut) and waits for
// it to exit. The data stays; Start brings the same cluster back.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	cmd, exited := c.cmd, c.exited
	c.cmd, c.exited = nil, nil
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping postgres: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(startTimeout):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("postgres did not stop within %s; killed", startTimeout)
	}
}

// remove stops the server and deletes the cluster directory.
func (c *Cluster) remove() error {
	err := c.Stop()
	if rmErr := os.RemoveAll(c.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("removing %s: %w", c.dir, rmErr))
	}
	return err
}

// Dir is the directory holding the cluster's data, socket and log.
func (c *Cluster) Dir() string { return c.dir }

// PID is the server's process id, or 0 while it is stopped.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// URL is the pgx connection URL of a database on the cluster, over TCP.
func (c *Cluster) URL(database string) string { return c.url(database) }

func (c *Cluster) url(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// NewDB creates an empty database on this cluster, drops it when the test
// ends (closing sessions still open on it), and returns its URL.
func (c *Cluster) NewDB(t testing.TB) string {
	t.Helper()
	return c.newDB(t, "")
}

func (c *Cluster) newDB(t testing.TB, options string) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.admin(ctx, "CREATE DATABASE "+name+options); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.mu.Lock()
		running := c.cmd != nil
		c.mu.Unlock()
		if !running {
			return // a stopped private cluster is removed whole
		}
		if err := c.admin(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database: %v", err)
		}
	})
	return c.url(name)
}

func (c *Cluster) admin(ctx context.Context, sql string) error {
	_, err := c.psql(ctx, c.url("postgres"), sql, false)
	return err
}

// psql runs sql on the database at url, in one transaction if atomic (not
// possible for CREATE or DROP DATABASE), and returns what it printed:
// unaligned, tuples only.
func (c *Cluster) psql(ctx context.Context, url, sql string, atomic bool) (string, error) {
	args := []string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"}
	if atomic {
		args = append(args, "-1")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "psql"), append(args, url)...)
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Query runs sql on the database at url (a URL this package gave) and
// returns psql's unaligned output: one line per row, columns separated by
// "|". It fails the test on an error. For tests of this package and quick
// checks; tests of the product use their own driver.
func (c *Cluster) Query(t testing.TB, url, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.psql(ctx, url, sql, true)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return out
}

// templateName is the database NewSchemaDB copies.
const templateName = "tripwire_template"

// NewSchemaDB creates a database with TripWire's schema on the shared
// cluster, drops it when the test ends, and returns its URL.
func NewSchemaDB(t testing.TB) string {
	t.Helper()
	return Shared(t).NewSchemaDB(t)
}

// NewSchemaDB creates a database with TripWire's schema on this cluster:
// a copy of a template built once per cluster from the repository's
// migrations (found above the working directory) and the alerts partitions
// from 13 months back to 2 ahead.
func (c *Cluster) NewSchemaDB(t testing.TB) string {
	t.Helper()
	c.templateOnce.Do(func() { c.templateErr = c.buildTemplate() })
	if c.templateErr != nil {
		t.Fatalf("pgtest: %v", c.templateErr)
	}
	return c.newDB(t, " TEMPLATE "+templateName)
}

func (c *Cluster) buildTemplate() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	dir, err := MigrationsDir()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var sql strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sql.Write(b)
		sql.WriteString("\n;\n")
	}
	now := time.Now().UTC()
	// The last week's partitions and two days ahead; rows of other days go
	// to alerts_default, as they would in production.
	for d := schema.DayStart(now.AddDate(0, 0, -7)); !d.After(now.AddDate(0, 0, 2)); d = d.AddDate(0, 0, 1) {
		_, steps := schema.Partition(d)
		for _, s := range steps {
			sql.WriteString(s)
			sql.WriteString(";\n")
		}
	}
	if err := c.admin(ctx, "CREATE DATABASE "+templateName); err != nil {
		return fmt.Errorf("creating the template database: %w", err)
	}
	if _, err := c.psql(ctx, c.url(templateName), sql.String(), true); err != nil {
		return fmt.Errorf("loading the migrations in %s: %w", dir, err)
	}
	return nil
}

// MigrationsDir finds the repository's migrations directory by walking up
// from the working directory, so tests of either module run from any
// package.
func MigrationsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "migrations")
		if _, err := os.Stat(filepath.Join(p, "0001_schema.sql")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("migrations/0001_schema.sql not found above the working directory")
		}
		dir = parent
	}
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) sockDir() string { return filepath.Join(c.dir, "sock") }
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "server.log") }

// logSince returns the server log written after offset, for error messages.
func (c *Cluster) logSince(offset int64) string {
	b, err := os.ReadFile(c.logPath())
	if err != nil || int64(len(b)) < offset {
		return "(no server log)"
	}
	return string(bytes.TrimSpace(b[offset:]))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sweepOrphans removes cluster directories of test binaries that are gone
// (killed, or panicked before Main could clean up). Their servers died with
// them through the parent-death signal.
func sweepOrphans() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), dirPrefix)
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if processAlive(pid) {
			continue // still running
		}
		// The data directory's postmaster.pid guards against removing a
		// server that somehow outlived its owner.
		if b, err := os.ReadFile(filepath.Join(m, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if spid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && processAlive(spid) {
				continue
			}
		}
		os.RemoveAll(m)
	}
}
