package watcher

import (
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// exclusionSet is Exclusions compiled for matching trip actors.
type exclusionSet struct {
	names map[string]bool // executable base names
	paths map[string]bool // absolute executable paths
	users map[string]bool // user names and numeric uids
}

// compileExclusions resolves user names to uids once, so an actor whose name
// lookup failed is still excluded by its uid.
func compileExclusions(x Exclusions) exclusionSet {
	s := exclusionSet{names: map[string]bool{}, paths: map[string]bool{}, users: map[string]bool{}}
	for _, p := range x.Processes {
		if filepath.IsAbs(p) {
			s.paths[filepath.Clean(p)] = true
		} else {
			s.names[p] = true
		}
	}
	for _, u := range x.Users {
		s.users[u] = true
		if _, err := strconv.Atoi(u); err != nil {
			if uu, err := user.Lookup(u); err == nil {
				s.users[uu.Uid] = true
			}
		}
	}
	return s
}

func (s exclusionSet) empty() bool { return len(s.names)+len(s.paths)+len(s.users) == 0 }

// excludes reports whether the actor's access is expected. Processes match
// by the executable's path or base name (not argv[0], which the actor
// chooses); when the actor exited before its executable could be read, a base
// name is matched against the kernel's command name, which outlives it until
// the process is reaped. Users match by name or uid. An actor the mechanism
// could not identify is never excluded: an unknown actor's trip is reported
// rather than guessed away. Base names are a convenience, not a boundary (any
// binary can be copied under an excluded name); absolute paths are stricter.
func (s exclusionSet) excludes(p *event.Process, comm string) bool {
	if p == nil {
		return false
	}
	if exe := strings.TrimSuffix(p.ExecutablePath, " (deleted)"); exe != "" {
		if s.paths[exe] || s.names[filepath.Base(exe)] {
			return true
		}
	} else if comm != "" {
		const commLen = 15 // TASK_COMM_LEN - 1: longer names are cut
		for name := range s.names {
			if name == comm || (len(comm) == commLen && strings.HasPrefix(name, comm)) {
				return true
			}
		}
	}
	return (p.UserID != "" && s.users[p.UserID]) || (p.UserName != "" && s.users[p.UserName])
}
