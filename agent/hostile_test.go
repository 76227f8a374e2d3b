package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"slices"

	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestHostileReaderTrips: an unprivileged user (nobody) runs a copy of cat
// from a deep path of non-UTF-8 directory names, with an over-long
// non-UTF-8 argument, against a watched decoy. The attacker chooses those
// strings; the trip must still arrive, with what did not fit cut and
// flagged, and no invalid_event loss. It runs with the default file
// mechanism, whichever that is, and with each one that names the actor
// forced (fsnotify does not: the hostile strings are the actor's); one that
// cannot start here is skipped.
func TestHostileReaderTrips(t *testing.T) {
	for _, mech := range []string{"", "ebpf", "ebpf_lsm", "fanotify"} {
		name := mech
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) { hostileReaderTrips(t, mech) })
	}
}

func hostileReaderTrips(t *testing.T, mech string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the file watcher, and switching to nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	dir := t.TempDir()
	// nobody must reach the decoy and the copy of cat.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	decoy := filepath.Join(dir, "decoy")
	if err := os.WriteFile(decoy, []byte("bait\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// 8 directories of 200 invalid bytes: 1.6 kB as bytes, 6.4 kB once each
	// byte is written \xNN, past the 4,096-byte limit of a path.
	deep := dir
	for i := 0; i < 8; i++ {
		deep = filepath.Join(deep, strings.Repeat(string([]byte{0xff, 0xfe}), 100))
		if err := os.Mkdir(deep, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cat := filepath.Join(deep, "cat")
	bin, err := os.ReadFile("/bin/cat")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cat, bin, 0o755); err != nil {
		t.Fatal(err)
	}

	rules := "rules:\n" + fileRule("decoy", decoy)
	if mech != "" {
		rules = "watchers: {file: " + mech + "}\n" + rules
	}
	cfg := loadConfig(t, dir, rules)
	ag, err := New(cfg, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(ctx, nil) }()
	waitFor(t, "the agent", func() bool {
		select {
		case err := <-runErr:
			cancel()
			t.Skipf("the %s mechanism cannot start here: %v", mech, err)
		default:
		}
		return ag.running.Load()
	})
	if u := ag.Report().Unserved; len(u) > 0 {
		cancel()
		<-runErr
		t.Skipf("the %s mechanism cannot start here: %s", mech, u[0])
	}

	// 60,000 invalid bytes in argv: 240 kB quoted, past the 64 kB limit of a
	// command line (where the mechanism reads argv whole).
	long := strings.Repeat("\xfe", 60000)
	out, err := exec.Command(setpriv, "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", cat, decoy, long).CombinedOutput()
	if !strings.HasPrefix(string(out), "bait\n") {
		t.Fatalf("nobody's cat did not read the decoy: %v %.200q", err, out) // cat fails on the second argument after reading the first
	}
	waitFor(t, "the decoy's trip", func() bool { return countRule(t, dir, "decoy", decoy) > 0 })
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}

	var trip *event.Event
	invalid := int64(0)
	err = auditchain.ReadEntries(filepath.Join(dir, "state", "audit.log"), 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return err
		}
		if e.Rule == "decoy" && trip == nil {
			trip = e
		}
		if e.Name == event.AgentLoss && e.Agent.LossReason == event.LossInvalidEvent {
			invalid += e.Agent.LossCount
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if invalid > 0 {
		t.Errorf("%d events dropped as invalid", invalid)
	}
	p := trip.Process
	if p == nil {
		t.Fatalf("trip without an actor: %s", trip.Canonical())
	}
	t.Logf("mechanism %s: user %q (uid %s), executable %d bytes, command line %d bytes, truncated %v, missing %v",
		trip.Mechanism, p.UserName, p.UserID, len(p.ExecutablePath), len(p.CommandLine), trip.Truncated, trip.Missing)
	if p.UserID != "" && p.UserID != "65534" {
		t.Errorf("actor uid %s, want nobody's 65534", p.UserID)
	}
	// What the mechanism reports of the hostile strings is escaped, and cut
	// and flagged where it does not fit.
	if p.ExecutablePath != "" && !strings.HasPrefix(p.ExecutablePath, escapedPrefix(dir)) {
		t.Errorf("executable path %.80q... is not the escaped deep path", p.ExecutablePath)
	}
	for key, v := range map[string]string{"process.executable.path": p.ExecutablePath, "process.command_line": p.CommandLine} {
		if len(v) >= 4000 && !slices.Contains(trip.Truncated, key) && !p.ArgsTruncated {
			t.Errorf("%s is %d bytes and not flagged", key, len(v))
		}
	}
	if !slices.Contains(trip.Missing, "process.executable.path") && p.ExecutablePath == "" {
		t.Errorf("no executable path and none said missing")
	}
}

// escapedPrefix is dir followed by the first deep directory as a watcher
// writes it.
func escapedPrefix(dir string) string {
	return dir + "/" + strings.Repeat(`\xff\xfe`, 4)
}
