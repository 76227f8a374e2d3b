package watcher

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability bits (linux/capability.h) the watchers care about. What each
// mechanism needs was verified on kernel 6.18 by running each one as an
// unprivileged user with single capabilities (see docs/capabilities.md).
const (
	capDacOverride    = 1
	capDacReadSearch  = 2
	capNetBindService = 10
	capNetAdmin       = 12
	capSysPtrace      = 19
	capSysAdmin       = 21
	capPerfmon        = 38
	capBPF            = 39
)

// capSet is an effective capability set, as in CapEff.
type capSet uint64

func (c capSet) has(bits ...int) bool {
	for _, b := range bits {
		if c&(1<<b) == 0 {
			return false
		}
	}
	return true
}

// ebpf: CAP_BPF for maps and BTF, CAP_PERFMON for tracing programs; or
// CAP_SYS_ADMIN, which implies both.
func (c capSet) ebpf() bool { return c.has(capBPF, capPerfmon) || c.has(capSysAdmin) }

// effectiveCaps reads the agent's effective capability set from
// /proc/self/status (CapEff).
func effectiveCaps(procRoot string) (capSet, error) {
	b, err := os.ReadFile(procRoot + "/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading capabilities: %w", err)
	}
	return parseCapEff(b)
}

// parseCapEff finds the CapEff line of a /proc/PID/status.
func parseCapEff(b []byte) (capSet, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("CapEff:")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing CapEff %q: %w", bytes.TrimSpace(v), err)
			}
			return capSet(n), nil
		}
	}
	return 0, fmt.Errorf("parsing status: no CapEff line")
}

// capHost is what, besides capabilities, decides whether a rule can be
// served: probed once per call so the pure part can be tested.
type capHost struct {
	caps             capSet
	procConnector    bool // the proc connector accepts this process's subscription
	unprivPortStart  int  // net.ipv4.ip_unprivileged_port_start
	readable         func(path string) bool
	procConnectorWhy string
}

// Unserved lists the rules the agent cannot serve with the capabilities it
// has, one line each with the reason and the capability that would fix it.
// The agent logs them at start and carries them in its start event; an empty
// list means every rule is served (perhaps in a degraded mode: see Degraded).
func Unserved(fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	h, err := probeCapHost()
	if err != nil {
		return []string{"all rules: " + err.Error()}
	}
	return h.unserved(fileRules, procRules, netRules)
}

// Degraded lists rules that are served, but by a fallback that fills fewer
// fields or sees less, because a capability is missing.
func Degraded(fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	h, err := probeCapHost()
	if err != nil {
		return nil
	}
	return h.degraded(fileRules, procRules, netRules)
}

func probeCapHost() (capHost, error) {
	caps, err := effectiveCaps("/proc")
	if err != nil {
		return capHost{}, err
	}
	h := capHost{caps: caps, unprivPortStart: 1024,
		readable: func(p string) bool { return unix.Access(p, unix.R_OK) == nil }}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			h.unprivPortStart = n
		}
	}
	// Whether the proc connector needs CAP_NET_ADMIN depends on the kernel
	// (6.18 lets anyone listen); asking it is the only sure answer.
	if fd, err := procConnOpen(); err == nil {
		unix.Close(fd)
		h.procConnector = true
	} else {
		h.procConnectorWhy = err.Error()
	}
	return h, nil
}

func (h capHost) unserved(fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	var out []string
	dacFree := h.caps.has(capDacReadSearch) || h.caps.has(capDacOverride)
	for _, r := range fileRules {
		if dacFree {
			continue
		}
		for _, p := range r.Paths {
			if r.Plant != nil {
				continue // planted by the agent, so readable by it
			}
			if !h.readable(p) {
				out = append(out, fmt.Sprintf("file rule %q: %s is not readable by the agent: needs CAP_DAC_READ_SEARCH (or read permission)", r.Name, p))
			}
		}
	}
	for _, r := range procRules {
		switch {
		case h.caps.ebpf(), h.caps.has(capSysAdmin):
			// eBPF or fanotify serve every kind of process rule.
		case (len(r.Paths) > 0 || r.Resolve) && !h.caps.has(capSysPtrace):
			// The proc connector and polling give a PID only; the binary's
			// path and inode come from /proc/PID/exe, which needs ptrace access.
			out = append(out, fmt.Sprintf("process rule %q: matching by path or resolved binary needs the binary of other users' processes: CAP_BPF+CAP_PERFMON (eBPF), CAP_SYS_ADMIN (fanotify) or CAP_SYS_PTRACE (proc connector)", r.Name))
		}
	}
	for _, r := range netRules {
		if r.Mode != netModeHoneyport {
			continue // observe: sock_diag needs no capability
		}
		for _, p := range r.Ports {
			if p < h.unprivPortStart && !h.caps.has(capNetBindService) {
				out = append(out, fmt.Sprintf("network rule %q: honeyport %d is below net.ipv4.ip_unprivileged_port_start (%d): needs CAP_NET_BIND_SERVICE", r.Name, p, h.unprivPortStart))
			}
		}
	}
	return out
}

func (h capHost) degraded(fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	var out []string
	if len(fileRules) > 0 && !h.caps.has(capSysAdmin) {
		out = append(out, "file rules: fsnotify instead of fanotify (no PID, user or command line of the actor): needs CAP_SYS_ADMIN")
	}
	if len(procRules) > 0 {
		if !h.caps.ebpf() && !h.caps.has(capSysAdmin) && !h.procConnector {
			out = append(out, fmt.Sprintf("process rules: polling /proc instead of an exec notification (a process shorter than the poll interval is missed): eBPF needs CAP_BPF+CAP_PERFMON, fanotify CAP_SYS_ADMIN, the proc connector refused (%s)", h.procConnectorWhy))
		} else if !h.caps.ebpf() {
			out = append(out, "process rules: fanotify or the proc connector instead of eBPF (argv read from /proc after the exec, so a process that exits at once may lack it; matching happens in user space): needs CAP_BPF+CAP_PERFMON")
		}
		if !h.caps.has(capSysPtrace) {
			out = append(out, "process rules: executable path and ancestry of other users' processes come from /proc/PID/exe: needs CAP_SYS_PTRACE")
		}
	}
	observe := false
	for _, r := range netRules {
		if r.Mode != netModeHoneyport {
			observe = true
		}
	}
	if observe {
		if !h.caps.ebpf() {
			out = append(out, "network rules (observe): sock_diag polling instead of eBPF (no scans of closed ports; a connection shorter than the poll interval may be missed): needs CAP_BPF+CAP_PERFMON")
		}
		if !h.caps.has(capSysPtrace) || !(h.caps.has(capDacReadSearch) || h.caps.has(capDacOverride)) {
			out = append(out, "network rules (observe): the owning process of another user's listener is not known: needs CAP_SYS_PTRACE+CAP_DAC_READ_SEARCH")
		}
	}
	return out
}
