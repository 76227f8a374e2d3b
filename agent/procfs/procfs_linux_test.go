package procfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A fake /proc root: Read must honour the root it is given.
func TestReadFakeRoot(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "4242")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"stat":    string(fixture(t, "stat-paren-comm")),
		"status":  "Name:\tx\nPPid:\t17\nUid:\t0\t1\t1\t1\nGid:\t0\t0\t0\t0\n",
		"cmdline": "/usr/bin/python3\x00-c\x00print('hi')\x00",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/usr/bin/python3.11", filepath.Join(dir, "exe")); err != nil {
		t.Fatal(err)
	}
	p, err := Read(root, 4242)
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != 4242 || p.PPID != 17 || p.UserID != "0" || p.UserName != "root" ||
		p.ExecutablePath != "/usr/bin/python3.11" || p.CommandLine != `/usr/bin/python3 -c 'print('\''hi'\'')'` {
		t.Errorf("got %+v", p)
	}
	// The start time 987654 ticks is after a "seen" of 1 s: a reused PID.
	p, err = ReadSeen(root, 4242, time.Second)
	if !errors.Is(err, ErrReused) || p.UserID != "" || !slices.Equal(MissingKeys(err), ActorKeys) {
		t.Errorf("ReadSeen before start: %+v, %v", p, err)
	}
}

func startChild(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestReadLiveProcess(t *testing.T) {
	cmd := startChild(t, "/bin/sh", "-c", "sleep 60; : done", "arg with space")
	// /bin may be a symlink to /usr/bin: exe is the resolved path.
	wantExe, _ := filepath.EvalSymlinks("/bin/sh")
	waitFor(t, func() bool {
		p, err := Read("", cmd.Process.Pid)
		return err == nil && p.ExecutablePath == wantExe
	})
	p, err := ReadSeen("", cmd.Process.Pid, BootTime())
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %d /bin/sh -c 'sleep 60; : done' 'arg with space' %s 0 root", cmd.Process.Pid, os.Getpid(), wantExe)
	got := fmt.Sprintf("%d %d %s %s %s %s", p.PID, p.PPID, p.CommandLine, p.ExecutablePath, p.UserID, p.UserName)
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestReadGone(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	p, err := Read("", cmd.Process.Pid)
	if !errors.Is(err, ErrGone) || !slices.Equal(MissingKeys(err), ActorKeys) || p.PID != int64(cmd.Process.Pid) {
		t.Errorf("Read of a reaped process: %+v, %v", p, err)
	}
	if _, err := Read("", 0); !errors.Is(err, ErrNoPID) {
		t.Errorf("Read(0): %v", err)
	}
}

// A zombie keeps its stat and status but has no executable or command line:
// Read keeps the parent and user and lists the rest as missing.
func TestReadZombie(t *testing.T) {
	cmd := startChild(t, "/bin/sleep", "60")
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st, err := ReadStat("", cmd.Process.Pid)
		return err == nil && st.State == 'Z'
	})
	p, err := Read("", cmd.Process.Pid)
	want := []string{KeyCommandLine, KeyExecutable}
	if !slices.Equal(MissingKeys(err), want) || p.PPID != int64(os.Getpid()) || p.UserID != "0" || p.UserName != "root" {
		t.Errorf("zombie: %+v, missing %v (%v)", p, MissingKeys(err), err)
	}
}

func TestAncestry(t *testing.T) {
	sh := startChild(t, "/bin/sh", "-c", "/bin/sleep 60; :")
	var sleepPID int
	waitFor(t, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", sh.Process.Pid, sh.Process.Pid))
		if err != nil {
			return false
		}
		sleepPID, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	shExe, _ := filepath.EvalSymlinks("/bin/sh")
	self, _ := os.Executable()
	got := Ancestry("", sleepPID, 2)
	want := fmt.Sprintf("%d:%s <- %d:%s", sh.Process.Pid, shExe, os.Getpid(), self)
	if got != want {
		t.Errorf("Ancestry = %q, want %q", got, want)
	}
	if from := AncestryFrom("", sh.Process.Pid, 2); from != fmt.Sprintf("%d:%s <- %d:%s", sh.Process.Pid, shExe, os.Getpid(), self) {
		t.Errorf("AncestryFrom = %q", from)
	}
	if full := Ancestry("", sleepPID, 64); !strings.HasPrefix(full, want) || !strings.Contains(full, " <- 1:") {
		t.Errorf("full Ancestry = %q", full)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func BenchmarkRead(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, err := Read("", pid); err != nil {
			b.Fatal(err)
		}
	}
}

// ReadActorNoLookup reads the uid but never asks the user database, so a uid
// without a name is not an error; ReadActor reports its name missing.
func TestReadActorNoLookup(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "4242")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"stat":    string(fixture(t, "stat-paren-comm")),
		"status":  "Name:\tx\nPPid:\t17\nUid:\t54321\t54321\t54321\t54321\nGid:\t0\t0\t0\t0\n",
		"cmdline": "/bin/cat\x00f\x00",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/usr/bin/cat", filepath.Join(dir, "exe")); err != nil {
		t.Fatal(err)
	}
	if UserName("54321") != "" {
		t.Skip("uid 54321 has a name on this host")
	}
	a, err := ReadActorNoLookup(root, 4242, 0)
	if err != nil || a.UserID != "54321" || a.UserName != "" || a.ExecutablePath != "/usr/bin/cat" || a.CommandLine != "/bin/cat f" {
		t.Errorf("ReadActorNoLookup: %+v, %v", a, err)
	}
	if _, err := ReadActor(root, 4242, 0); !slices.Equal(MissingKeys(err), []string{KeyUserName}) {
		t.Errorf("ReadActor: missing %v (%v)", MissingKeys(err), err)
	}
}

// BenchmarkReadActorNoLookup reads a live process's actor as the fanotify
// capture group does while the opener waits in open(2): the time it adds to
// a process's first open of a watched file.
func BenchmarkReadActorNoLookup(b *testing.B) {
	cmd := exec.Command("/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for b.Loop() {
		if _, err := ReadActorNoLookup("", cmd.Process.Pid, 0); err != nil {
			b.Fatal(err)
		}
	}
}
