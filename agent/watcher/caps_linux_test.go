package watcher

import (
	"os"
	"strings"
	"testing"
)

func TestParseCapEff(t *testing.T) {
	b, err := os.ReadFile("testdata/status-nobody-bpf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCapEff(b)
	if err != nil {
		t.Fatal(err)
	}
	if !c.has(capBPF, capPerfmon) || c.has(capSysAdmin) || !c.ebpf() {
		t.Errorf("CapEff 000000c000000000 parsed as %#x", uint64(c))
	}
	if _, err := parseCapEff([]byte("Name:\tx\nCapEff:\tzz\n")); err == nil {
		t.Error("bad CapEff accepted")
	}
	if _, err := parseCapEff([]byte("Name:\tx\n")); err == nil {
		t.Error("missing CapEff accepted")
	}
}

func TestUnservedByCapabilities(t *testing.T) {
	files := []FileRule{{Name: "shadow", Paths: []string{"/etc/shadow"}}}
	procs := []ProcessRule{
		{Name: "nc-name", Names: []string{"nc"}},
		{Name: "nc-path", Paths: []string{"/usr/bin/nc"}, Resolve: true},
	}
	nets := []NetworkRule{
		{Name: "ssh-decoy", Ports: []int{22}, Mode: "honeyport"},
		{Name: "high-decoy", Ports: []int{2222}, Mode: "honeyport"},
		{Name: "db", Ports: []int{5432}, Mode: "observe"},
	}
	unreadable := func(p string) bool { return p != "/etc/shadow" }
	cases := []struct {
		name string
		host capHost
		want []string // rule names expected, in order
	}{
		{"all caps", capHost{caps: ^capSet(0), procConnector: true, unprivPortStart: 1024, readable: unreadable}, nil},
		{"none, connector open", capHost{caps: 0, procConnector: true, unprivPortStart: 1024, readable: unreadable},
			[]string{"shadow", "nc-path", "ssh-decoy"}},
		{"none, connector refused", capHost{caps: 0, procConnector: false, procConnectorWhy: "EPERM", unprivPortStart: 1024, readable: unreadable},
			[]string{"shadow", "nc-path", "ssh-decoy"}}, // nc-name: served by polling /proc
		{"bpf+perfmon", capHost{caps: 1<<capBPF | 1<<capPerfmon, unprivPortStart: 1024, readable: unreadable},
			[]string{"shadow", "ssh-decoy"}},
		{"ptrace+dac+bind", capHost{caps: 1<<capSysPtrace | 1<<capDacReadSearch | 1<<capNetBindService, procConnector: true, unprivPortStart: 1024, readable: unreadable},
			nil},
		{"low unprivileged ports", capHost{caps: 1 << capSysAdmin, unprivPortStart: 0, readable: unreadable},
			[]string{"shadow"}},
	}
	for _, c := range cases {
		got := c.host.unserved(files, procs, nets)
		if len(got) != len(c.want) {
			t.Errorf("%s: got %d lines, want %d: %q", c.name, len(got), len(c.want), got)
			continue
		}
		for i, name := range c.want {
			if !strings.Contains(got[i], `"`+name+`"`) {
				t.Errorf("%s: line %d = %q, want rule %q", c.name, i, got[i], name)
			}
		}
	}
	if d := (capHost{caps: 0}).degraded(files, procs, nets); len(d) != 5 {
		t.Errorf("no caps: %d degraded lines, want 5: %q", len(d), d)
	}
	if d := (capHost{caps: ^capSet(0)}).degraded(files, procs, nets); len(d) != 0 {
		t.Errorf("all caps: degraded %q", d)
	}
}

// TestUnservedAsRoot asks the running kernel: as root everything is served.
func TestUnservedAsRoot(t *testing.T) {
	needRootFor(t)
	got := Unserved([]FileRule{{Name: "f", Paths: []string{"/etc/passwd"}}},
		[]ProcessRule{{Name: "p", Paths: []string{"/bin/true"}, Resolve: true}},
		[]NetworkRule{{Name: "n", Ports: []int{22}, Mode: "honeyport"}})
	if len(got) != 0 {
		t.Errorf("root: unserved %q", got)
	}
}
