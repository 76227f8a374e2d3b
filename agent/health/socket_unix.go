//go:build unix

package health

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/internal/safefile"
)

// socketMode lets root and the socket's group connect: connecting to a Unix
// socket needs write permission on it.
const socketMode = 0o660

// listenSocket binds a Unix socket at path in a directory that only root and
// the agent can change (created 0755 if missing, so members of group can
// reach the socket), then gives it to group with mode 0660. Until then the
// agent's umask (0077) keeps it private. An unknown group leaves it 0600.
func listenSocket(path, group string, log *slog.Logger) (net.Listener, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir, err := safefile.OpenDir(filepath.Dir(path), safefile.DirOptions{
		Owners: []int{0, os.Geteuid()}, Mkdir: true, Mode: 0o755})
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	dfd, name := int(dir.Fd()), filepath.Base(path)
	if err := removeStaleSocket(dfd, name, path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	gid, mode := -1, uint32(0o600)
	if group != "" {
		if g, err := user.LookupGroup(group); err != nil {
			if log != nil {
				log.Warn("health socket group does not exist; only the agent's user can read health", "group", group, "error", err)
			}
		} else if gid, err = strconv.Atoi(g.Gid); err == nil {
			mode = socketMode
		}
	}
	// The directory belongs to root or the agent and nobody else can write
	// it, so the name still refers to the socket just bound.
	if gid >= 0 {
		if err := unix.Fchownat(dfd, name, -1, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			ln.Close()
			return nil, fmt.Errorf("giving the socket to group %s: %w", group, err)
		}
	}
	if err := unix.Fchmodat(dfd, name, mode, 0); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the socket's mode: %w", err)
	}
	return ln, nil
}

// removeStaleSocket removes a socket left by an agent that did not stop
// cleanly; a live one (another agent answers) or anything but a socket is an
// error.
func removeStaleSocket(dfd int, name, path string) error {
	var st unix.Stat_t
	err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another agent is serving health at %s", path)
	}
	return unix.Unlinkat(dfd, name, 0)
}

// privateToAgent checks that f belongs to root or the agent and that no one
// else may read or write it.
func privateToAgent(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("%w: %s belongs to uid %d, not to root or the agent", safefile.ErrUnsafe, f.Name(), uid)
	}
	if m := uint32(st.Mode) & 0o077; m != 0 {
		return fmt.Errorf("%w: %s is mode %04o; want 0600 (readable by its owner only)", safefile.ErrUnsafe, f.Name(), uint32(st.Mode)&0o7777)
	}
	return nil
}
