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

// OpenDir opens the directory dir (made absolute and cleaned) by a walk from
// / that never follows a symlink, checking each directory on the way.
func OpenDir(dir string, o DirOptions) (*os.File, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /: %w", err)
	}
	if err := checkDir(fd, "/", o); err != nil {
		unix.Close(fd)
		return nil, err
	}
	at := "/"
	for _, name := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		if name == "" {
			continue
		}
		at = filepath.Join(at, name)
		next, err := openDirAt(fd, name, at, o)
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
		if err := checkDir(next, at, o); err != nil {
			unix.Close(next)
			return nil, err
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), dir), nil
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
		return -1, fmt.Errorf("%w: %s is a symlink", ErrUnsafe, path)
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
