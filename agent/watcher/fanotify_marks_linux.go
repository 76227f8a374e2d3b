package watcher

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// markTree marks every directory under root (not root itself). found, if
// set, is told of every entry met.
func (w *fanotifyWatcher) markTree(root string, r *fileRule, found func(string)) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			w.markErrors.Add(1)
			w.log.Warn("cannot walk watched tree", "file.path", p, "error", err.Error())
			return nil
		}
		if p == root {
			return nil
		}
		if found != nil {
			found(p)
		}
		if d.IsDir() {
			if err := w.markDir(p, r, true); err != nil {
				w.markErrors.Add(1)
				w.log.Warn("cannot watch directory", "file.path", p, "error", err.Error())
				return fs.SkipDir
			}
		}
		return nil
	})
}

// markDir marks a directory of rule r. A directory found while walking is
// opened without following symlinks, so a link swapped in cannot move the
// watch outside the tree. The mark, the handle and the path all come from one
// open descriptor.
func (w *fanotifyWatcher) markDir(path string, r *fileRule, walked bool) error {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if walked {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_ONLYDIR, w.dirMask, fd, ""); err != nil {
		return fmt.Errorf("marking %s: %w", path, err)
	}
	if r.HoldOpens {
		w.permMark(fd, path, unix.FAN_MARK_ONLYDIR, permDirMask, fd, "")
	}
	key, fsid, err := fdHandleKey(fd)
	if err != nil {
		return fmt.Errorf("marking %s: %w", path, err)
	}
	n := w.nodes[key]
	if n == nil {
		n = &fanNode{}
		w.nodes[key] = n
	}
	n.path, n.dir, n.rule, n.recursive = path, true, r, r.Recursive
	if _, ok := w.mounts[fsid]; !ok {
		w.mounts[fsid], keep = fd, true
	}
	return nil
}

// markFile marks a watched file and, for entry events, its directory.
func (w *fanotifyWatcher) markFile(path string, r *fileRule) error {
	dir := filepath.Dir(path)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(dfd)
		}
	}()
	// O_PATH: opening the file for reading would change nothing, but a
	// special file (a FIFO decoy) could block. A symlink is followed, as
	// os.Stat did when the rule's paths were classified.
	fd, err := unix.Openat(dfd, filepath.Base(path), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	procPath := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD, w.fileMask, unix.AT_FDCWD, procPath); err != nil {
		return fmt.Errorf("marking %s: %w", path, err)
	}
	if r.HoldOpens {
		w.permMark(fd, path, 0, permFileMask, unix.AT_FDCWD, procPath)
	}
	key, _, err := fdHandleKey(fd)
	if err != nil {
		return fmt.Errorf("marking %s: %w", path, err)
	}
	w.nodes[key] = &fanNode{path: path, rule: r}
	return w.markParentFD(dfd, dir, filepath.Base(path), r, false, &keep)
}

// markParent marks the directory holding a watched path for entry events, so
// the path's own deletion, renaming or replacement is seen.
func (w *fanotifyWatcher) markParent(path string, r *fileRule, isDir bool) error {
	dir := filepath.Dir(path)
	if dir == path {
		return nil // the root directory has no parent
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(dfd)
		}
	}()
	return w.markParentFD(dfd, dir, filepath.Base(path), r, isDir, &keep)
}

// markParentFD marks dfd (the directory dir) for entry events about name.
// It sets *kept when dfd is kept as the filesystem's handle-resolving
// descriptor.
func (w *fanotifyWatcher) markParentFD(dfd int, dir, name string, r *fileRule, isDir bool, kept *bool) error {
	mask := uint64(fanParentMask)
	if isDir {
		mask |= unix.FAN_ONDIR // entry events about a subdirectory need it
	}
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_ONLYDIR, mask, dfd, ""); err != nil {
		return fmt.Errorf("marking %s: %w", dir, err)
	}
	dkey, fsid, err := fdHandleKey(dfd)
	if err != nil {
		return fmt.Errorf("marking %s: %w", dir, err)
	}
	dn := w.nodes[dkey]
	if dn == nil {
		dn = &fanNode{path: dir, dir: true}
		w.nodes[dkey] = dn
	}
	m := &dn.files
	if isDir {
		m = &dn.roots
	}
	if *m == nil {
		*m = map[string]*fileRule{}
	}
	(*m)[name] = r
	if _, ok := w.mounts[fsid]; !ok {
		w.mounts[fsid], *kept = dfd, true
	}
	return nil
}

// fdHandleKey returns the key fanotify info records will carry for fd: the
// filesystem id, then the file handle as struct file_handle lays it out.
func fdHandleKey(fd int) (key string, fsid [8]byte, err error) {
	h, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return "", fsid, fmt.Errorf("name_to_handle_at: %w", err)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return "", fsid, fmt.Errorf("statfs: %w", err)
	}
	ne := binary.NativeEndian
	ne.PutUint32(fsid[0:], uint32(sfs.Fsid.Val[0]))
	ne.PutUint32(fsid[4:], uint32(sfs.Fsid.Val[1]))
	hb := h.Bytes()
	k := make([]byte, 16+len(hb))
	copy(k, fsid[:])
	ne.PutUint32(k[8:], uint32(len(hb)))
	ne.PutUint32(k[12:], uint32(h.Type()))
	copy(k[16:], hb)
	return string(k), fsid, nil
}
