package watcher

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFallbackWithoutCapabilities re-runs this test binary as user nobody
// with a chosen capability set (setpriv) and checks the watchers the
// constructors pick there: the real kernel refusing eBPF or fanotify, not a
// flag, drives the fallback; the fallback is logged at WARN; and Unserved
// names the rule the capabilities cannot serve. The file watcher's eBPF
// modes need CAP_DAC_READ_SEARCH on top where they fall back to the system
// calls' tracepoints, which are found by name in a root-only tracefs.
func TestFallbackWithoutCapabilities(t *testing.T) {
	needRootFor(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// nobody must be able to run the binary.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "watcher.test")
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(out, in)
	in.Close()
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		caps, process, network string
		unservedHoneyport      bool
		fileEBPF               bool // the file watcher must get an eBPF mode
	}{
		{"", procMechProcConn, netMechSockdiag, true, false},
		{"+bpf,+perfmon", procMechEBPF, netMechEBPF, true, false},
		{"+sys_admin", procMechEBPF, netMechEBPF, true, false},
		{"+net_bind_service", procMechProcConn, netMechSockdiag, false, false},
		{"+bpf,+perfmon,+sys_admin,+dac_read_search", procMechEBPF, netMechEBPF, true, true},
	} {
		args := []string{"--reuid", "65534", "--regid", "65534", "--clear-groups"}
		if c.caps == "" {
			args = append(args, "--inh-caps=-all")
		} else {
			args = append(args, "--inh-caps", c.caps, "--ambient-caps", c.caps)
		}
		args = append(args, bin, "-test.run", "^TestCapsChild$", "-test.v", "-test.count=1")
		cmd := exec.Command(setpriv, args...)
		cmd.Env = append(os.Environ(), "TW_CAPS_CHILD=1")
		cmd.Dir = dir
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("caps %q: child failed: %v\n%s", c.caps, err, got)
		}
		want := fmt.Sprintf("CHILD process=%s network=%s honeyport_unserved=%v", c.process, c.network, c.unservedHoneyport)
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("caps %q: want %q in\n%s", c.caps, want, got)
		}
		if c.fileEBPF && !bytes.Contains(got, []byte("CHILD file=ebpf")) {
			t.Errorf("caps %q: the file watcher got no eBPF mode:\n%s", c.caps, got)
		}
		fellBack := c.process != procMechEBPF
		if warned := bytes.Contains(got, []byte("CHILD warned=true")); warned != fellBack {
			t.Errorf("caps %q: fallback WARN logged = %v, want %v\n%s", c.caps, warned, fellBack, got)
		}
	}
}

// TestCapsChild is the child half of TestFallbackWithoutCapabilities.
func TestCapsChild(t *testing.T) {
	if os.Getenv("TW_CAPS_CHILD") == "" {
		t.Skip("run by TestFallbackWithoutCapabilities")
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := NewProcessWatcher([]ProcessRule{{Name: "nc", Names: []string{"nc"}}}, Options{Logger: log})
	if err != nil {
		t.Fatalf("process watcher: %v", err)
	}
	ws, err := NewNetworkWatchers([]NetworkRule{{Name: "db", Ports: []int{5432}}}, Options{Logger: log})
	if err != nil {
		t.Fatalf("network watchers: %v", err)
	}
	dir, err := os.Getwd() // nobody may not write in the temporary directory
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFileWatcher([]FileRule{{Name: "f", Paths: []string{dir}}}, Options{Logger: log})
	if err != nil {
		t.Fatalf("file watcher: %v", err)
	}
	fmt.Printf("CHILD file=%s\n", f.Mechanism())
	unserved := Unserved(nil, nil, []NetworkRule{{Name: "ssh-decoy", Ports: []int{22}, Mode: "honeyport"}})
	fmt.Printf("CHILD process=%s network=%s honeyport_unserved=%v\n", p.Mechanism(), ws[0].Mechanism(), len(unserved) == 1)
	fmt.Printf("CHILD warned=%v\n", strings.Contains(logs.String(), "level=WARN msg=\"process watcher fell back\""))
	fmt.Print(logs.String())
}
