package watcher

import (
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// Rules are what the config hands to watchers: already validated, enabled
// only, with paths cleaned and absolute.

// Exclusions name actors whose access is expected and trips nothing.
type Exclusions struct {
	Processes []string // executable base names or absolute paths
	Users     []string // user names or numeric uids
}

// FileRule watches files and directories for any read or write.
type FileRule struct {
	Name      string
	Severity  event.Severity
	Paths     []string // files or directories
	Recursive bool     // directories: watch the whole tree
	Exclude   Exclusions
	Plant     *Honeyfile // non-nil: create a decoy at Paths[0] first
	// HoldOpens makes every open of the rule's files wait, on the fanotify
	// mechanism, until the agent has read the opener from /proc
	// (FAN_OPEN_PERM), so a process that exits at once is still named in
	// full. The cost is the host's: each open waits for the agent, and a
	// stopped agent blocks them all. The config allows it only on a planted
	// decoy, which nothing legitimate opens. Other mechanisms ignore it.
	HoldOpens bool
}

// Honeyfile is a decoy the agent plants; it never overwrites an existing file.
type Honeyfile struct {
	Content string
	Mode    uint32 // e.g. 0o640
	Owner   string // user name or uid; empty keeps root
	Group   string
}

// ProcessRule trips when a watched executable runs.
type ProcessRule struct {
	Name     string
	Severity event.Severity
	Names    []string // executable base names (comm / argv[0] base), e.g. "nc"
	Paths    []string // absolute executable paths as exec'd
	// Resolve matches the resolved binary (symlinks followed, by device and
	// inode), so a symlink or a renamed copy of a watched path still trips.
	Resolve bool
	Exclude Exclusions
}

// NetworkRule trips on inbound connections to a port.
type NetworkRule struct {
	Name      string
	Severity  event.Severity
	Ports     []int
	Mode      string // "observe" (a real service's port) or "honeyport" (the agent listens)
	Transport string // "tcp" (default) or "udp" (honeyport only)
	Address   string // honeyport listen address; default all interfaces
	Flood     Flood  // honeyport only
	Exclude   Exclusions
}

// Flood says when a honeyport stops reporting each probe on its own: above
// Sources distinct sources on one port within Window, further probes in the
// window are counted into one aggregate event. Zero values take the defaults.
type Flood struct {
	Sources int
	Window  time.Duration
}

// Defaults of Flood: a scan of a port from a few hosts is still reported
// source by source; a flood of forged sources costs one event per window.
const (
	DefaultFloodSources = 20
	DefaultFloodWindow  = 10 * time.Second
)
