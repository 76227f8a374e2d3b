//go:build !linux

package procfs

import (
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// Read reports ErrUnsupported: only Linux has /proc.
func Read(root string, pid int) (event.Process, error) { return ReadSeen(root, pid, 0) }

// ReadSeen reports ErrUnsupported: only Linux has /proc.
func ReadSeen(root string, pid int, seen time.Duration) (event.Process, error) {
	return event.Process{PID: int64(pid)}, incomplete(pid, ActorKeys, ErrUnsupported)
}

// ReadActor reports ErrUnsupported: only Linux has /proc.
func ReadActor(root string, pid int, seen time.Duration) (Actor, error) {
	p, err := ReadSeen(root, pid, seen)
	return Actor{Process: p}, err
}

// ReadActorNoLookup reports ErrUnsupported: only Linux has /proc.
func ReadActorNoLookup(root string, pid int, seen time.Duration) (Actor, error) {
	return ReadActor(root, pid, seen)
}

// BootTime returns 0: only Linux has /proc start times.
func BootTime() time.Duration { return 0 }

// StartTime reports ErrUnsupported: only Linux has /proc.
func StartTime(root string, pid int) (uint64, error) { return 0, ErrUnsupported }

// ReadStat reports ErrUnsupported: only Linux has /proc.
func ReadStat(root string, pid int) (Stat, error) { return Stat{}, ErrUnsupported }

// Ancestry returns "": only Linux has /proc.
func Ancestry(root string, pid, depth int) string { return "" }

// AncestryFrom returns "": only Linux has /proc.
func AncestryFrom(root string, ppid, depth int) string { return "" }
