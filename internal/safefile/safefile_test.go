//go:build unix

package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestOpenPrivate(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "state", "sub", "spool.db")
	f, err := OpenPrivate(path, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode(), err, want)
		}
	}
	// An existing file is narrowed to 0600 through the descriptor.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err = OpenPrivate(path, os.O_RDWR); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("existing file left %v", fi.Mode())
	}
}

func TestOpenPrivateRefuses(t *testing.T) {
	base := t.TempDir()
	other := filepath.Join(base, "other")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(base, "hard")
	if err := os.Link(other, hard); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(base, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o775); err != nil {
		t.Fatal(err)
	}
	for what, p := range map[string]string{
		"hard link": hard, "fifo": fifo, "symlink": link,
		"group-writable parent": filepath.Join(open, "x"),
	} {
		f, err := OpenPrivate(p, os.O_RDWR)
		if err == nil {
			f.Close()
			t.Errorf("%s: opened", what)
			continue
		}
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("%s: %v is not ErrUnsafe", what, err)
		}
	}
	if fi, _ := os.Stat(other); fi.Mode().Perm() != 0o644 {
		t.Errorf("a link's target was chmodded to %v", fi.Mode())
	}
}

// A symlink is followed only where root alone could have made it.
func TestOpenDirSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own directories as root and as another user")
	}
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := func(dir string) string {
		p := filepath.Join(dir, "link")
		if err := os.Symlink(real, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootDir := link(mkdir("root", 0o755, 0))
	userDir := link(mkdir("user", 0o755, 65534))
	sticky := mkdir("sticky", os.ModeSticky|0o777, 0)
	rootInSticky := link(sticky)
	userInSticky := filepath.Join(sticky, "userlink")
	if err := os.Symlink(real, userInSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(userInSticky, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for path, follow := range map[string]bool{rootDir: true, rootInSticky: true, userDir: false, userInSticky: false} {
		d, err := OpenDir(path, DirOptions{})
		if follow && err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if !follow && (err == nil || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "is a symlink")) {
			t.Errorf("%s: followed or wrong error: %v", path, err)
		}
		if d != nil {
			d.Close()
		}
	}
}
