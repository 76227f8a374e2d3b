//go:build unix

package safefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the root-owned symlinks a walk follows, as the kernel's
// own limit does.
const maxSymlinks = 40

// errSymlink: a component of the walk is a symlink.
var errSymlink = errors.New("is a symlink")

// OpenDir opens the directory dir (made absolute and cleaned) by a walk from
// / that checks each directory on the way and follows no symlink another
// user could have made: only a symlink in a root-owned directory nobody else
// may write (/var -> private/var on macOS, /var/run -> /run), or a root-owned
// one in a root-owned sticky directory, is followed, by walking its target
// from / again.
func OpenDir(dir string, o DirOptions) (*os.File, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for hops := 0; ; hops++ {
		f, resolved, err := walk(dir, o)
		if resolved == "" || err != nil {
			return f, err
		}
		if hops == maxSymlinks {
			return nil, fmt.Errorf("%w: %s: too many levels of symlinks", ErrUnsafe, dir)
		}
		dir = resolved
	}
}

// walk opens dir one component at a time. At a symlink root alone controls
// it returns dir with that symlink replaced by its target, to walk again.
func walk(dir string, o DirOptions) (_ *os.File, resolved string, _ error) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("opening /: %w", err)
	}
	if err := checkDir(fd, "/", o); err != nil {
		unix.Close(fd)
		return nil, "", err
	}
	at := "/"
	names := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	for i, name := range names {
		if name == "" {
			continue
		}
		parent := at
		at = filepath.Join(at, name)
		next, err := openDirAt(fd, name, at, o)
		if errors.Is(err, errSymlink) {
			target, terr := rootsSymlink(fd, name)
			unix.Close(fd)
			if terr != nil {
				return nil, "", fmt.Errorf("%w: %s %w", ErrUnsafe, at, terr)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(parent, target)
			}
			return nil, filepath.Join(append([]string{target}, names[i+1:]...)...), nil
		}
		unix.Close(fd)
		if err != nil {
			return nil, "", err
		}
		if err := checkDir(next, at, o); err != nil {
			unix.Close(next)
			return nil, "", err
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), dir), "", nil
}

// rootsSymlink returns the target of the symlink name in dirfd if only root
// could have made or replaced it: dirfd belongs to root and nobody else may
// write it, or it is sticky and the symlink belongs to root. (checkDir has
// already refused a directory others may write without the sticky bit.)
func rootsSymlink(dirfd int, name string) (string, error) {
	var dst, lst unix.Stat_t
	if err := unix.Fstat(dirfd, &dst); err != nil {
		return "", err
	}
	if err := unix.Fstatat(dirfd, name, &lst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", err
	}
	if dst.Uid != 0 || (uint32(dst.Mode)&0o022 != 0 && lst.Uid != 0) {
		return "", errSymlink
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func openDirAt(dirfd int, name, path string, o DirOptions) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if errors.Is(err, unix.ENOENT) && o.Mkdir {
		mode := o.Mode
		if mode == 0 {
			mode = 0o700
		}
		err = unix.Mkdirat(dirfd, name, 0o700)
		created := err == nil
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, &os.PathError{Op: "mkdir", Path: path, Err: err}
		}
		fd, err = unix.Openat(dirfd, name, flags, 0)
		if err == nil && created && mode != 0o700 {
			if err := unix.Fchmod(fd, mode); err != nil {
				unix.Close(fd)
				return -1, &os.PathError{Op: "chmod", Path: path, Err: err}
			}
		}
	}
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR) && isSymlink(dirfd, name):
		return -1, errSymlink
	default:
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
}

func isSymlink(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

func checkDir(fd int, path string, o DirOptions) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	mode, uid := uint32(st.Mode), int(st.Uid)
	if mode&0o022 != 0 && !(mode&unix.S_ISVTX != 0 && uid == 0) {
		return fmt.Errorf("%w: %s is writable by %s (mode %04o)", ErrUnsafe, path, writers(mode), mode&0o7777)
	}
	if len(o.Owners) > 0 && !slices.Contains(o.Owners, uid) {
		return fmt.Errorf("%w: %s belongs to uid %d, not to root or the agent", ErrUnsafe, path, uid)
	}
	return nil
}

func writers(mode uint32) string {
	switch {
	case mode&0o022 == 0o022:
		return "group and others"
	case mode&0o002 != 0:
		return "others"
	}
	return "group"
}

// CreateAt creates name in dir with O_EXCL|O_NOFOLLOW: it never opens what
// is already there.
func CreateAt(dir *os.File, name string, flag int, mode os.FileMode) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, flag|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name)), nil
}

// OpenAt opens an existing name in dir without following a symlink and
// checks that it is a regular file.
func OpenAt(dir *os.File, name string, flag int) (*os.File, error) {
	path := filepath.Join(dir.Name(), name)
	fd, err := unix.Openat(int(dir.Fd()), name, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%w: %s is a symlink", ErrUnsafe, path)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file (%v)", ErrUnsafe, path, fi.Mode().Type())
	}
	// O_NONBLOCK only kept a FIFO from blocking the open.
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenPrivate opens or creates a file that belongs to the agent alone (its
// spool, its audit log): every directory on the path must belong to root or
// to the agent and be writable by nobody else (missing ones are created 0700),
// the file must be a regular file of the agent's with one link, and it ends
// up mode 0600. The mode is set through the descriptor, never by name.
func OpenPrivate(path string, flag int) (*os.File, error) {
	self := os.Geteuid()
	dir, err := OpenDir(filepath.Dir(path), DirOptions{Owners: []int{0, self}, Mkdir: true})
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	name := filepath.Base(path)
	f, err := CreateAt(dir, name, flag, 0o600)
	if errors.Is(err, os.ErrExist) {
		f, err = OpenAt(dir, name, flag)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	switch {
	case int(st.Uid) != self:
		err = fmt.Errorf("%w: %s belongs to uid %d, not to the agent (uid %d)", ErrUnsafe, f.Name(), st.Uid, self)
	case st.Nlink != 1:
		err = fmt.Errorf("%w: %s has %d hard links", ErrUnsafe, f.Name(), st.Nlink)
	case uint32(st.Mode)&0o7777 != 0o600:
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// RemoveAt removes name from dir, as CreateAt made it.
func RemoveAt(dir *os.File, name string) error {
	return unix.Unlinkat(int(dir.Fd()), name, 0)
}
