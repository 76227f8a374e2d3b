package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// squatter is an unprivileged local user (nobody) who tries, every
// millisecond, to bind a TCP port on all interfaces and holds it once bound:
// the attack of issue 12 item 1 on a honeyport freed during a reload.
type squatter struct {
	cmd   *exec.Cmd
	bound chan struct{}
	port  int // the port it holds, once bound
}

const squatScript = `
import socket, sys, time
port = int(sys.argv[1])
while True:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", port)); s.listen(16)
        print("bound", s.getsockname()[1], flush=True)
        time.sleep(3600)
    except OSError:
        s.close(); time.sleep(0.001)
`

func squat(t *testing.T, port int) *squatter {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "-c", squatScript, fmt.Sprint(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run the squatter as nobody: %v", err)
	}
	s := &squatter{cmd: cmd, bound: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, err := fmt.Sscanf(sc.Text(), "bound %d", &s.port); err == nil {
				close(s.bound)
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return s
}

func (s *squatter) holds() bool {
	select {
	case <-s.bound:
		return true
	default:
		return false
	}
}

// TestReloadSquatting (issue 12 item 1): while the agent reloads a config
// that keeps its honeyport, an unprivileged user tries to bind the port. On
// the old code the agent stopped every watcher to re-bind, the user got the
// port, and nothing at all was watched afterwards. Now the honeyport's socket
// passes from the old watcher to the new one, the file watcher whose rule did
// not change keeps running, and both still trip.
func TestReloadSquatting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify and running the squatter as nobody need root")
	}
	dir := t.TempDir()
	decoy := filepath.Join(dir, "decoy")
	if err := os.WriteFile(decoy, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "tcp")
	// fanotify forced: the reload is under test, not whether eBPF loads here.
	rules := "watchers: {file: fanotify}\nrules:\n" + fileRule("decoy", decoy)
	cfg := loadConfig(t, dir, rules+honeyportRule("pg", port))
	ag, err := New(cfg, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan *config.Config)
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(ctx, reload) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Error(err)
		}
	}()
	addr := ag.HealthAddress()
	report := func() health.Report { r, _ := health.Fetch(context.Background(), addr); return r }
	waitFor(t, "both watchers", func() bool { return len(report().Watchers) == 2 })
	if r := report(); len(r.Unserved) > 0 {
		t.Fatalf("unserved before the reload: %q", r.Unserved)
	}

	sq := squat(t, port)
	// A renamed honeyport rule on the same port: the network watcher must
	// restart with the new name, the file watcher need not.
	reload <- loadConfig(t, dir, rules+honeyportRule("pg-renamed", port))
	waitFor(t, "the reload to settle", func() bool {
		return strings.Join(servedRules(report()), ",") == "decoy,pg-renamed" || !strings.Contains(strings.Join(servedRules(report()), ","), "decoy")
	})
	time.Sleep(500 * time.Millisecond) // give the squatter its chance
	if got := servedRules(report()); strings.Join(got, ",") != "decoy,pg-renamed" {
		t.Fatalf("after the reload the agent serves %q (squatter holds the port: %v); report %+v", got, sq.holds(), report())
	}
	if sq.holds() {
		t.Fatal("an unprivileged user bound the honeyport during the reload")
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	catFile(t, decoy)
	waitFor(t, "trips of both rules after the reload", func() bool {
		return len(chained(t, dir, func(e *event.Event) bool { return e.Rule == "pg-renamed" })) > 0 &&
			len(chained(t, dir, func(e *event.Event) bool { return e.Rule == "decoy" })) > 0
	})
	if r := report(); r.Status != health.StatusOK {
		t.Errorf("status %q after a clean reload: %+v", r.Status, r)
	}

	// A new honeyport on a port the user already holds: that rule alone is
	// unserved, a CRITICAL status event is chained, /healthz is degraded, and
	// the other rules are still served.
	// The user binds a port of the kernel's choosing: a port found free
	// earlier may meanwhile be some connection's local port on a busy host.
	sq2 := squat(t, 0)
	select {
	case <-sq2.bound:
	case <-time.After(10 * time.Second):
		t.Fatal("the squatter did not bind a port")
	}
	held := sq2.port
	reload <- loadConfig(t, dir, rules+honeyportRule("pg-renamed", port)+honeyportRule("ssh-alt", held))
	waitFor(t, "the unserved rule in /healthz", func() bool { return report().Status == health.StatusDegraded })
	r := report()
	if got := servedRules(r); strings.Join(got, ",") != "decoy,pg-renamed,ssh-alt" || len(r.Unserved) != 1 ||
		!strings.Contains(r.Unserved[0], `"ssh-alt"`) {
		t.Errorf("after squatting ssh-alt: served %q unserved %q", got, r.Unserved)
	}
	waitFor(t, "a CRITICAL status event naming ssh-alt", func() bool {
		return len(chained(t, dir, func(e *event.Event) bool {
			return e.Name == event.AgentStatus && e.Severity == event.SeverityCritical && strings.Contains(e.Agent.Unserved, "ssh-alt")
		})) > 0
	})
}
