package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
)

// TestCrashDuringBurst runs the real agent (this binary as tripwire) with a
// fanotify rule on a directory of 10,000 files, reads them all, SIGKILLs the
// agent in the middle of the burst, restarts it, and checks that the audit
// chain verifies and that every chain entry is in the spool exactly once. It
// runs with one audit file and with the log rotating every 256 KiB, so the
// kill and the reconciliation happen across rotated files.
func TestCrashDuringBurst(t *testing.T) {
	t.Run("one file", func(t *testing.T) { crashDuringBurst(t, "") })
	t.Run("rotating", func(t *testing.T) { crashDuringBurst(t, ", max_bytes: 256KiB, keep: 1000") })
}

func crashDuringBurst(t *testing.T, auditOpts string) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root (CAP_SYS_ADMIN)")
	}
	bin, err := exec.LookPath("tripwire")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	trips := filepath.Join(dir, "trips")
	if err := os.Mkdir(trips, 0o700); err != nil {
		t.Fatal(err)
	}
	const n = 10_000
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(trips, fmt.Sprintf("f%05d", i)), []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := filepath.Join(dir, "health.sock")
	conf := filepath.Join(dir, "agent.yaml")
	writeFile(t, conf, fmt.Sprintf(`
rules:
  - name: burst
    type: file
    severity: CRITICAL
    paths: [%s]
    recursive: true
spool: {path: %s/state/spool.db}
audit: {path: %s/state/audit.log%s}
health: {socket: "%s"}
`, trips, dir, dir, auditOpts, addr))

	agent := startAgent(t, bin, conf, addr, filepath.Join(dir, "agent1.log"))
	// The burst: every file read once, in a loop until the agent is killed.
	var read atomic.Int64
	stopReading := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for i := 0; i < n; i++ {
			select {
			case <-stopReading:
				return
			default:
			}
			if _, err := os.ReadFile(filepath.Join(trips, fmt.Sprintf("f%05d", i))); err == nil {
				read.Add(1)
			}
		}
	}()
	// Kill once a good part of the burst is chained.
	logPath := filepath.Join(dir, "state", "audit.log")
	chainLines := func() int {
		n := 0
		for _, p := range auditchain.Files(logPath) {
			n += lines(p)
		}
		return n
	}
	waitFor(t, 120*time.Second, "3,000 chained entries", func() bool { return chainLines() >= 3000 })
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	killedAt := read.Load()
	close(stopReading)
	<-readerDone
	t.Logf("SIGKILL after %d of %d reads, with %d chain lines on disk in %d files", killedAt, n, chainLines(), len(auditchain.Files(logPath)))

	// Restart: start-up reconciles the chain into the spool. Then stop cleanly.
	agent = startAgent(t, bin, conf, addr, filepath.Join(dir, "agent2.log"))
	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(); err != nil {
		t.Fatalf("agent after restart: %v\n%s", err, readLog(dir, "agent2.log"))
	}

	rep, err := auditchain.VerifySet(logPath, nil)
	if err != nil || rep.Break != nil || rep.Start.Seq != 0 {
		t.Fatalf("chain does not verify after the crash: %v %v (starts after seq %d)", err, rep.Break, rep.Start.Seq)
	}
	if auditOpts != "" && len(rep.Files) < 3 {
		t.Errorf("the log rotated into only %d files", len(rep.Files))
	}
	sp, err := spool.Open(spool.Options{Path: filepath.Join(dir, "state", "spool.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	items, err := sp.Oldest(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	spooled := map[uint64]string{}
	for _, it := range items {
		if _, dup := spooled[uint64(it.ID)]; dup {
			t.Fatalf("seq %d spooled twice", it.ID)
		}
		spooled[uint64(it.ID)] = it.Event.Hash
	}
	var chained int
	err = auditchain.ReadEntriesSet(logPath, 1, func(en auditchain.Entry) error {
		chained++
		h, ok := spooled[en.Seq]
		if !ok {
			return fmt.Errorf("chain entry seq %d is missing from the spool", en.Seq)
		}
		if h != en.Hash {
			return fmt.Errorf("seq %d: spool hash %s, chain %s", en.Seq, h, en.Hash)
		}
		delete(spooled, en.Seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(spooled) != 0 {
		t.Errorf("%d spooled events are not in the chain", len(spooled))
	}
	if chained < 3000 {
		t.Errorf("only %d entries chained", chained)
	}
	for _, line := range strings.Split(readLog(dir, "agent2.log"), "\n") {
		if strings.Contains(line, "reconciled") || strings.Contains(line, "torn") {
			t.Logf("restart: %s", line)
		}
	}
	t.Logf("chain verified: %d entries in %d files, each in the spool exactly once", chained, len(rep.Files))
}

func startAgent(t *testing.T, bin, conf, addr, logFile string) *exec.Cmd {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd := exec.Command(bin, "start", "--config", conf)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	waitFor(t, 60*time.Second, "agent health", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := health.Fetch(ctx, addr)
		return err == nil
	})
	return cmd
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

func readLog(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
