package auditchain

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A user who can write a directory on the audit log's path swaps it for a
// symlink to root's directory: the writer must not append to, truncate or
// chmod the file it would find there.
func TestOpenRefusesSymlinkedParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victim, user := filepath.Join(base, "victim"), filepath.Join(base, "user")
	for _, d := range []string{victim, user} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(victim, "audit.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(user, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
		"ln", "-s", victim, filepath.Join(user, "log"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %v: %s", err, out)
	}
	w, err := Open(filepath.Join(user, "log", "audit.log"), Options{})
	if err == nil {
		w.Close()
		t.Error("opened the audit log through a symlinked parent")
	} else {
		t.Logf("refused: %v", err)
	}
	fi, err := os.Stat(filepath.Join(victim, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("the target's file was chmodded to %v", fi.Mode().Perm())
	}
}

// The log itself replaced by a symlink (to a file anyone can read) is refused,
// not followed.
func TestOpenRefusesSymlinkedLog(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "audit.log")); err != nil {
		t.Fatal(err)
	}
	if w, err := Open(filepath.Join(dir, "audit.log"), Options{}); err == nil {
		w.Close()
		t.Error("followed a symlink at the log's path")
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Errorf("the target was chmodded to %v", fi.Mode().Perm())
	}
}
