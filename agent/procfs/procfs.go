// Package procfs reads what /proc knows about the actor of a trip: PID, parent,
// user, executable and command line, with care for short-lived processes and
// for reuse of PIDs.
//
// Use [Read] (or [ReadSeen] when the time the PID was seen is known) first: it
// returns what it could read consistently, and an [*Incomplete] error listing
// the event attribute keys it could not fill. [Ancestry] renders the parent
// chain. The parsers ([ParseStat], [ParseStatus], [CommandLine]) are pure and
// work on any OS; reading /proc needs Linux.
package procfs

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// DefaultRoot is where /proc is mounted unless a caller says otherwise.
const DefaultRoot = "/proc"

// Attribute keys of the fields Read fills besides process.pid, which the caller
// always knows. An [Incomplete] error lists the ones it could not fill.
const (
	KeyPPID        = event.KeyProcessParentPID
	KeyExecutable  = event.KeyProcessExecutable
	KeyCommandLine = event.KeyProcessCommandLine
	KeyUserName    = event.KeyProcessUserName
	KeyUserID      = event.KeyProcessUserID
)

// ActorKeys are the attribute keys of a trip's actor that Read fills, sorted.
var ActorKeys = []string{KeyCommandLine, KeyExecutable, KeyPPID, KeyUserID, KeyUserName}

// NoActorKeys is what a mechanism that cannot see the actor at all lists as
// missing: ActorKeys and process.pid, sorted.
var NoActorKeys = []string{KeyCommandLine, KeyExecutable, KeyPPID, event.KeyProcessPID, KeyUserID, KeyUserName}

// Actor is what [ReadActor] knows of a process: the event fields, and what
// TripWire matches on but events do not carry.
type Actor struct {
	event.Process
	// Comm is the kernel's command name (at most 15 bytes, settable by the
	// process itself). It outlives the executable link: a zombie still has it.
	Comm      string
	StartTime uint64 // clock ticks after boot; with PID it names one process
}

// Sentinel causes, compared with errors.Is through an [*Incomplete].
var (
	// ErrGone: the process exited (and was perhaps reaped) before it was read.
	ErrGone = errors.New("process gone")
	// ErrReused: the PID now belongs to a process started after the one that
	// acted, so nothing read under it may be attributed to the actor.
	ErrReused = errors.New("pid reused")
	// ErrNoPID: the mechanism gave no PID (0), e.g. an actor in a PID
	// namespace the agent cannot see.
	ErrNoPID = errors.New("no pid")
	// ErrUnsupported: /proc is not available on this OS.
	ErrUnsupported = errors.New("procfs unsupported on this OS")
)

// Incomplete says which fields of a Process could not be filled and why. The
// Process returned with it holds only fields read from the right process.
type Incomplete struct {
	PID     int
	Missing []string // attribute keys, sorted
	Err     error
}

func (e *Incomplete) Error() string {
	return fmt.Sprintf("reading process %d: missing %s: %v", e.PID, strings.Join(e.Missing, ","), e.Err)
}

func (e *Incomplete) Unwrap() error { return e.Err }

// MissingKeys returns the attribute keys err says are missing: those of an
// [*Incomplete], all [ActorKeys] for any other non-nil error, nil for nil.
func MissingKeys(err error) []string {
	if err == nil {
		return nil
	}
	var inc *Incomplete
	if errors.As(err, &inc) {
		return inc.Missing
	}
	return append([]string(nil), ActorKeys...)
}

func incomplete(pid int, missing []string, err error) error {
	if len(missing) == 0 {
		return nil
	}
	m := append([]string(nil), missing...)
	sort.Strings(m)
	return &Incomplete{PID: pid, Missing: m, Err: err}
}
