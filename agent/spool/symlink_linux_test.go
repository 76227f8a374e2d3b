package spool

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A user who can write a directory on the spool's path swaps it for a symlink
// to a directory of root's: the agent must neither create its database there
// nor chmod a file it finds there.
func TestOpenRefusesSymlinkedParent(t *testing.T) {
	base := victimTree(t)
	victim := filepath.Join(base, "victim")
	s, err := Open(Options{Path: filepath.Join(base, "user", "state", "spool.db")})
	if err == nil {
		s.Close()
		t.Error("opened a spool through a symlinked parent")
	} else {
		t.Logf("refused: %v", err)
	}
	checkVictim(t, victim)
}

// A spool under a directory its user owns can be swapped after the check, by
// the time SQLite opens the path: a directory owned by another user is
// refused even when it holds no symlink yet.
func TestOpenRefusesUserOwnedParent(t *testing.T) {
	base := victimTree(t)
	if _, err := Open(Options{Path: filepath.Join(base, "user", "spool.db")}); err == nil {
		t.Error("opened a spool in a directory another user owns")
	}
}

// victimTree makes base/victim (root's, holding spool.db, 0644) and
// base/user (nobody's), where nobody links state -> ../victim.
func victimTree(t *testing.T) string {
	t.Helper()
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
	if err := os.WriteFile(filepath.Join(victim, "spool.db"), []byte("root's file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(user, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
		"ln", "-s", victim, filepath.Join(user, "state"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %v: %s", err, out)
	}
	return base
}

func checkVictim(t *testing.T, victim string) {
	t.Helper()
	ents, err := os.ReadDir(victim)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("files created in the symlink's target: %v", ents)
	}
	fi, err := os.Stat(filepath.Join(victim, "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("the target's file was chmodded to %v", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(filepath.Join(victim, "spool.db")); string(b) != "root's file\n" {
		t.Errorf("the target's file was written: %q", b)
	}
}
