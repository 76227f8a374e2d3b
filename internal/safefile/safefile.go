// Package safefile opens the files the agent creates — decoys, its spool and
// its audit log — without following a symlink another user could have put
// anywhere on their path.
//
// Start with [OpenDir] for a directory reached by a walk from / that opens
// one component at a time with O_NOFOLLOW|O_DIRECTORY and checks each, then
// create inside it relative to that descriptor; [OpenPrivate] does both for a
// file only the agent may own. The walk follows a symlink only where root
// alone could have made it (/var -> private/var on macOS, /var/run -> /run);
// the file itself is never reached through a symlink.
//
// Why a walk and a check of every directory, not just O_NOFOLLOW on the last
// component: a user who can write any directory on the path can swap the
// next component for a symlink and send a root agent's create, chown and
// chmod wherever she likes. Directories writable by group or others are
// refused, except a sticky directory owned by root (/tmp): there nobody can
// rename or remove an entry they do not own, so what the walk opened stays
// where it is. ACLs are not read.
package safefile

import "errors"

// ErrUnsafe is wrapped by every refusal of a path another user could
// redirect.
var ErrUnsafe = errors.New("unsafe path")

// DirOptions say which directories a walk accepts.
type DirOptions struct {
	// Owners, when not empty, are the only uids a directory on the path may
	// belong to. Files that some program later reopens by name (SQLite's
	// database, -wal and -shm) need this: the owner of a directory can rename
	// it between the check and the reopen.
	Owners []int
	// Mkdir creates missing directories instead of failing, with Mode (0:
	// 0700), set through the descriptor so the umask does not narrow it.
	Mkdir bool
	Mode  uint32
}
