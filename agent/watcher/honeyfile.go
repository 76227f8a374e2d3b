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
	"slices"
	"strconv"

	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/safefile"
)

// defaultHoneyfileMode applies when a rule gives none: readable by the owner
// only, like a real secret.
const defaultHoneyfileMode = 0o600

// PlantHoneyfiles plants the decoys of rules and returns those it refused
// (see plantHoneyfiles): what the file watcher does at start, run on its own
// by `tripwire plant` so a privileged one-shot step (systemd's
// ExecStartPre=+) can plant where the unprivileged agent may not write.
func PlantHoneyfiles(rules []FileRule, log *slog.Logger) (refused []string, err error) {
	rs, err := compileFileRules(rules)
	if err != nil {
		return nil, err
	}
	err = plantHoneyfiles(rs, log)
	return rs.refused, err
}

// Unserved lists the file rules the watcher dropped at Start because their
// decoy could not be planted safely; the agent reports them as unserved.
func (w *fileWatcher) Unserved() []string { return slices.Clone(w.rules.refused) }

// plantHoneyfiles creates the decoy of every rule with Plant, before any watch
// is placed so planting itself trips nothing. It never overwrites: a file
// already at the path is watched as it is, with a warning when it is not the
// decoy (other content, another owner, not a regular file).
//
// A decoy whose path another user could redirect (safefile.ErrUnsafe: a
// symlinked or shared parent) is not planted and its rule is dropped and
// listed in rs.refused, not an error: a user who can write her own home
// directory must not be able to stop the agent, and with it every other
// rule, by swapping ~/.aws for a symlink. Any other failure is an error.
func plantHoneyfiles(rs *fileRules, log *slog.Logger) error {
	kept := rs.rules[:0]
	for _, r := range rs.rules {
		if r.Plant == nil {
			kept = append(kept, r)
			continue
		}
		planted, same, err := plantHoneyfile(r.Paths[0], r.Plant)
		if errors.Is(err, safefile.ErrUnsafe) {
			log.Error("honeyfile not planted: another user could redirect it; its rule is not served",
				event.KeyFilePath, r.Paths[0], event.KeyRule, r.Name, "error", err)
			rs.refused = append(rs.refused, fmt.Sprintf("file rule %q: decoy not planted: %v", r.Name, err))
			delete(rs.exact, r.Paths[0])
			continue
		}
		if err != nil {
			return fmt.Errorf("file rule %q: %w", r.Name, err)
		}
		kept = append(kept, r)
		switch {
		case planted:
			log.Info("honeyfile planted", event.KeyFilePath, r.Paths[0], event.KeyRule, r.Name)
		case same:
			log.Info("honeyfile already planted", event.KeyFilePath, r.Paths[0], event.KeyRule, r.Name)
		default:
			log.Warn("a different file exists where the honeyfile goes: not overwriting it, watching it as it is",
				event.KeyFilePath, r.Paths[0], event.KeyRule, r.Name)
		}
	}
	rs.rules = kept
	return nil
}

// plantHoneyfile creates path with O_EXCL inside its parent directory, which
// is reached without following a symlink and must not be writable by other
// users (safefile.OpenDir): the decoy, its owner and its mode go exactly
// where the config says or nowhere. When something is already there it
// reports whether it is the decoy. The parent directory must exist: creating
// directories would leave traces the config did not ask for.
func plantHoneyfile(path string, h *Honeyfile) (planted, same bool, err error) {
	mode := fs.FileMode(h.Mode & 0o7777)
	if mode == 0 {
		mode = defaultHoneyfileMode
	}
	uid, gid, err := honeyfileOwner(h)
	if err != nil {
		return false, false, err
	}
	dir, err := safefile.OpenDir(filepath.Dir(path), safefile.DirOptions{})
	if err != nil {
		return false, false, fmt.Errorf("planting honeyfile: %w", err)
	}
	defer dir.Close()
	name := filepath.Base(path)
	f, err := safefile.CreateAt(dir, name, os.O_WRONLY, mode)
	if errors.Is(err, fs.ErrExist) {
		same, err := isDecoy(dir, name, h.Content, uid, gid)
		return false, same, err
	}
	if err != nil {
		return false, false, fmt.Errorf("planting honeyfile: %w", err)
	}
	// From here the file is ours: remove it rather than leave a half decoy.
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("planting honeyfile: %w", cerr)
		}
		if err != nil {
			safefile.RemoveAt(dir, name)
			planted = false
		}
	}()
	if _, err := io.WriteString(f, h.Content); err != nil {
		return false, false, fmt.Errorf("planting honeyfile: %w", err)
	}
	if runtime.GOOS != "windows" && (uid >= 0 || gid >= 0) {
		if err := f.Chown(uid, gid); err != nil {
			return false, false, fmt.Errorf("planting honeyfile: %w", err)
		}
	}
	// The umask narrowed the mode given to open; a chown may clear set-id bits.
	if err := f.Chmod(mode); err != nil {
		return false, false, fmt.Errorf("planting honeyfile: %w", err)
	}
	if err := f.Sync(); err != nil {
		return false, false, fmt.Errorf("planting honeyfile: %w", err)
	}
	return true, false, nil
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

// isDecoy reports whether the file name in dir is the decoy: a regular file
// (a symlink is not followed) with its content and, where the rule sets one,
// its owner and group.
func isDecoy(dir *os.File, name, content string, uid, gid int) (bool, error) {
	f, err := safefile.OpenAt(dir, name, os.O_RDONLY)
	if errors.Is(err, safefile.ErrUnsafe) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking existing honeyfile: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !ownedBy(fi, uid, gid) {
		return false, nil
	}
	got, err := io.ReadAll(io.LimitReader(f, int64(len(content))+1))
	if err != nil {
		return false, fmt.Errorf("checking existing honeyfile: %w", err)
	}
	return bytes.Equal(got, []byte(content)), nil
}
