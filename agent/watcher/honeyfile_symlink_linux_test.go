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
	err := plantHoneyfiles(plantRules(t, decoy, &Honeyfile{Content: "[default]\n"}), log)
	if err == nil {
		t.Error("planted through a symlinked parent")
	} else {
		t.Logf("refused: %v", err)
	}
	if ents, _ := os.ReadDir(protected); len(ents) != 0 {
		t.Errorf("the decoy landed in the symlink's target: %v", ents)
	}
}

// A directory anyone may write without the sticky bit lets another user swap
// the decoy's parent at any time: refused. A root-owned sticky directory
// (/tmp) is fine: others cannot rename or remove what they do not own there.
func TestHoneyfileParentWritableByOthers(t *testing.T) {
	base := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := plantHoneyfiles(plantRules(t, filepath.Join(shared, "d"), &Honeyfile{Content: "x"}), log); err == nil {
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
		if err := plantHoneyfiles(plantRules(t, filepath.Join(sticky, "d"), &Honeyfile{Content: "x"}), log); err != nil {
			t.Errorf("root-owned sticky directory refused: %v", err)
		}
		// The same directory owned by a user is hers to rearrange.
		if err := os.Chown(sticky, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := plantHoneyfiles(plantRules(t, filepath.Join(sticky, "e"), &Honeyfile{Content: "x"}), log); err == nil {
			t.Error("planted in a user's world-writable sticky directory")
		}
	}
}
