package safefile

import (
	"errors"
	"os"
	"path/filepath"
)

// On Windows a walk by descriptor is not available from the standard
// library: directories are opened by name, and the reparse-point checks are
// left to the ACLs of the directories the installer creates.

// OpenDir opens dir, creating it when asked.
func OpenDir(dir string, o DirOptions) (*os.File, error) {
	if o.Mkdir {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	return os.Open(dir)
}

// CreateAt creates name in dir; it never opens what is already there.
func CreateAt(dir *os.File, name string, flag int, mode os.FileMode) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir.Name(), name), flag|os.O_CREATE|os.O_EXCL, mode)
}

// OpenAt opens an existing regular file name in dir.
func OpenAt(dir *os.File, name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir.Name(), name), flag, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errors.Join(ErrUnsafe, err)
	}
	return f, nil
}

// OpenPrivate opens or creates path, mode 0600.
func OpenPrivate(path string, flag int) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(path, flag|os.O_CREATE, 0o600)
}

// RemoveAt removes name from dir.
func RemoveAt(dir *os.File, name string) error {
	return os.Remove(filepath.Join(dir.Name(), name))
}
