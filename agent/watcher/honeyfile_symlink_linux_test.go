package watcher

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// asNobody runs a command as the unprivileged user nobody, as a local
// attacker would.
func asNobody(t *testing.T, args ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	cmd := exec.Command("setpriv", append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody %v: %v: %s", args, err, out)
	}
}

// openTree makes t.TempDir reachable by other users, like /home is.
func openTree(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return base
}

// A user who owns the directory a decoy goes into replaces a parent
// (~/.aws) with a symlink to a directory she cannot write; a root agent must
// not plant the decoy there.
func TestHoneyfileRefusesSymlinkedParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	base := openTree(t)
	home, protected := filepath.Join(base, "home"), filepath.Join(base, "etc")
	for _, d := range []string{home, protected} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	asNobody(t, "ln", "-s", protected, filepath.Join(home, ".aws"))

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	decoy := filepath.Join(home, ".aws", "credentials")
	rs := plantRules(t, decoy, &Honeyfile{Content: "[default]\n"})
	if err := plantHoneyfiles(rs, log); err != nil {
		t.Errorf("a refused decoy failed planting as a whole: %v", err)
	}
	if len(rs.refused) != 1 || len(rs.rules) != 0 || rs.exact[decoy] != nil {
		t.Errorf("the rule was not dropped and listed: rules %d, refused %q", len(rs.rules), rs.refused)
	} else {
		t.Logf("refused: %s", rs.refused[0])
	}
	if ents, _ := os.ReadDir(protected); len(ents) != 0 {
		t.Errorf("the decoy landed in the symlink's target: %v", ents)
	}
}

// refused plants one decoy at path and reports whether it was refused.
func refused(t *testing.T, path string) bool {
	t.Helper()
	rs := plantRules(t, path, &Honeyfile{Content: "x"})
	if err := plantHoneyfiles(rs, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return len(rs.refused) > 0
}

// A directory anyone may write without the sticky bit lets another user swap
// the decoy's parent at any time: refused. A root-owned sticky directory
// (/tmp) is fine: others cannot rename or remove what they do not own there.
func TestHoneyfileParentWritableByOthers(t *testing.T) {
	base := t.TempDir()
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if !refused(t, filepath.Join(shared, "d")) {
		t.Error("planted in a directory writable by everyone")
	}
	sticky := filepath.Join(base, "sticky")
	if err := os.Mkdir(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if refused(t, filepath.Join(sticky, "d")) {
			t.Error("root-owned sticky directory refused")
		}
		// The same directory owned by a user is hers to rearrange.
		if err := os.Chown(sticky, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if !refused(t, filepath.Join(sticky, "e")) {
			t.Error("planted in a user's world-writable sticky directory")
		}
	}
}
