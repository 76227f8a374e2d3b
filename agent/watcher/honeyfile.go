package watcher

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
)

// defaultHoneyfileMode applies when a rule gives none: readable by the owner
// only, like a real secret.
const defaultHoneyfileMode = 0o600

// plantHoneyfiles creates the decoy of every rule with Plant, before any watch
// is placed so planting itself trips nothing. It never overwrites: a file
// already at the path is watched as it is, with a warning when its content is
// not the decoy's.
func plantHoneyfiles(rs *fileRules, log *slog.Logger) error {
	for _, r := range rs.rules {
		if r.Plant == nil {
			continue
		}
		planted, err := plantHoneyfile(r.Paths[0], r.Plant)
		if err != nil {
			return fmt.Errorf("file rule %q: %w", r.Name, err)
		}
		switch {
		case planted:
			log.Info("honeyfile planted", "file.path", r.Paths[0], "tripwire.rule.name", r.Name)
		default:
			same, err := sameContent(r.Paths[0], r.Plant.Content)
			if err != nil {
				return fmt.Errorf("file rule %q: %w", r.Name, err)
			}
			if same {
				log.Info("honeyfile already planted", "file.path", r.Paths[0], "tripwire.rule.name", r.Name)
			} else {
				log.Warn("a different file exists where the honeyfile goes: not overwriting it, watching it as it is",
					"file.path", r.Paths[0], "tripwire.rule.name", r.Name)
			}
		}
	}
	return nil
}

// plantHoneyfile creates path with O_EXCL and reports false, without error,
// when something is already there. The parent directory must exist: creating
// directories would leave traces the config did not ask for.
func plantHoneyfile(path string, h *Honeyfile) (planted bool, err error) {
	mode := fs.FileMode(h.Mode & 0o7777)
	if mode == 0 {
		mode = defaultHoneyfileMode
	}
	uid, gid, err := honeyfileOwner(h)
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, mode)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("planting honeyfile: %w", err)
	}
	// From here the file is ours: remove it rather than leave a half decoy.
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("planting honeyfile: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
			planted = false
		}
	}()
	if _, err := io.WriteString(f, h.Content); err != nil {
		return false, fmt.Errorf("planting honeyfile: %w", err)
	}
	if runtime.GOOS != "windows" && (uid >= 0 || gid >= 0) {
		if err := f.Chown(uid, gid); err != nil {
			return false, fmt.Errorf("planting honeyfile: %w", err)
		}
	}
	// The umask narrowed the mode given to open; a chown may clear set-id bits.
	if err := f.Chmod(mode); err != nil {
		return false, fmt.Errorf("planting honeyfile: %w", err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("planting honeyfile: %w", err)
	}
	return true, nil
}

// honeyfileOwner resolves Owner and Group (names or numeric ids); -1 keeps the
// agent's own.
func honeyfileOwner(h *Honeyfile) (uid, gid int, err error) {
	uid, gid = -1, -1
	if h.Owner != "" {
		if uid, err = strconv.Atoi(h.Owner); err != nil {
			u, lerr := user.Lookup(h.Owner)
			if lerr != nil {
				return -1, -1, fmt.Errorf("honeyfile owner: %w", lerr)
			}
			if uid, err = strconv.Atoi(u.Uid); err != nil {
				return -1, -1, fmt.Errorf("honeyfile owner %q: uid %q is not numeric", h.Owner, u.Uid)
			}
		}
	}
	if h.Group != "" {
		if gid, err = strconv.Atoi(h.Group); err != nil {
			g, lerr := user.LookupGroup(h.Group)
			if lerr != nil {
				return -1, -1, fmt.Errorf("honeyfile group: %w", lerr)
			}
			if gid, err = strconv.Atoi(g.Gid); err != nil {
				return -1, -1, fmt.Errorf("honeyfile group %q: gid %q is not numeric", h.Group, g.Gid)
			}
		}
	}
	return uid, gid, nil
}

// sameContent compares an existing file with the decoy content without
// following a symlink planted in its place.
func sameContent(path, content string) (bool, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return false, fmt.Errorf("checking existing honeyfile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return false, nil
	}
	f, err := os.OpenFile(filepath.Clean(path), os.O_RDONLY|noFollow, 0)
	if err != nil {
		return false, fmt.Errorf("checking existing honeyfile: %w", err)
	}
	defer f.Close()
	got, err := io.ReadAll(io.LimitReader(f, int64(len(content))+1))
	if err != nil {
		return false, fmt.Errorf("checking existing honeyfile: %w", err)
	}
	return bytes.Equal(got, []byte(content)), nil
}
