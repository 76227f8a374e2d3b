// Package systemd holds the agent's systemd unit, tripwire.service, and reads
// it so that its commands can be run the way systemd would where systemd
// does not run: the unit's test and `make bench`'s install measurement start
// ExecStart as the unit's user with exactly its capabilities.
package systemd

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Unit is the [Service] section of a unit file: each key's values in order.
type Unit map[string][]string

// ReadUnit reads the [Service] section of the unit file at path.
func ReadUnit(path string) (Unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u, section := Unit{}, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("%s: not key=value: %q", path, line)
			}
			u[k] = append(u[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return u, nil
}

// One is key's last value, or def when the unit does not set it.
func (u Unit) One(key, def string) string {
	if v := u[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return def
}

// SetprivCaps turns "CAP_SYS_ADMIN CAP_BPF" into "-all,+sys_admin,+bpf".
func SetprivCaps(list string) string {
	out := "-all"
	for _, c := range strings.Fields(list) {
		out += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return out
}

// AsUser is the setpriv command line, ending in "--", that runs a command
// as the unit's User and Group with exactly its AmbientCapabilities
// (ambient and inheritable) and CapabilityBoundingSet, and no_new_privs
// when NoNewPrivileges is set.
func (u Unit) AsUser() string {
	caps := u.One("AmbientCapabilities", "")
	s := fmt.Sprintf("setpriv --reuid=%s --regid=%s --init-groups --inh-caps=%s --ambient-caps=%s --bounding-set=%s",
		u.One("User", "root"), u.One("Group", "root"), SetprivCaps(caps), SetprivCaps(caps),
		SetprivCaps(u.One("CapabilityBoundingSet", caps)))
	if u.One("NoNewPrivileges", "no") == "yes" {
		s += " --no-new-privs"
	}
	return s + " --"
}
