package watcher

import (
	"crypto/sha256"
	"strings"
	"testing"
)

func TestCompileExecRulesRejects(t *testing.T) {
	for _, c := range []struct {
		rule ProcessRule
		want string
	}{
		{ProcessRule{Name: "empty"}, "no names and no paths"},
		{ProcessRule{Name: "slash", Names: []string{"bin/nc"}}, "not a base name"},
		{ProcessRule{Name: "relative", Paths: []string{"bin/nc"}}, "not absolute"},
	} {
		_, err := compileExecRules([]ProcessRule{c.rule})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.rule.Name, err, c.want)
		}
	}
}

// TestExecMatch covers the matching rules on sightings built by hand, as
// each mechanism reports them, without touching /proc (procRoot is empty).
func TestExecMatch(t *testing.T) {
	id := execFileID{Dev: 2049, Ino: 42}
	sum := sha256.Sum256([]byte("binary"))
	long := "a-very-long-tool-name" // longer than a kernel comm
	rs := &execRules{hashes: map[execHashKey][sha256.Size]byte{}}
	name := &execTarget{rule: ProcessRule{Name: "n"}, names: map[string]bool{"nc": true, long: true}}
	path := &execTarget{rule: ProcessRule{Name: "p"}, paths: map[string]bool{"/opt/x/tool": true}, pathIDs: map[execFileID]string{id: "/opt/x/tool"}}
	resolved := &execTarget{rule: ProcessRule{Name: "r", Resolve: true}, ids: map[execFileID]string{id: "/opt/x/tool"},
		sizes: map[int64]bool{6: true}, hashes: map[[sha256.Size]byte]string{sum: "/opt/x/tool"}}
	cases := []struct {
		what   string
		t      *execTarget
		s      execSighting
		want   bool
		wantBy string
	}{
		{"exec'd name", name, execSighting{Filename: "/usr/bin/nc"}, true, "name"},
		{"symlink named nc", name, execSighting{Filename: "/tmp/nc", ID: execFileID{Ino: 7}}, true, "name"},
		{"other name", name, execSighting{Filename: "/usr/bin/ncat", Comm: "ncat"}, false, ""},
		{"fexecve uses comm", name, execSighting{Filename: "/dev/fd/3", Comm: "nc"}, true, "name"},
		{"comm cut at 15 with no filename", name, execSighting{Comm: long[:15]}, true, "name"},
		{"comm cut but filename known", name, execSighting{Filename: "/x/" + long[:15], Comm: long[:15]}, false, ""},
		{"path as exec'd", path, execSighting{Filename: "/opt/x/tool"}, true, "path"},
		{"path unclean", path, execSighting{Filename: "/opt/x/../x/tool"}, true, "path"},
		{"symlink to path", path, execSighting{Filename: "/tmp/link", ID: id}, false, ""},
		{"fallback sees inode only", path, execSighting{ID: id}, true, "path"},
		{"fallback sees exe", path, execSighting{Exe: "/opt/x/tool"}, true, "path"},
		{"resolved by inode", resolved, execSighting{Filename: "/tmp/link", ID: id}, true, "inode"},
		{"resolved, other inode, other size", resolved, execSighting{Filename: "/tmp/copy", ID: execFileID{Ino: 9}, Size: 7}, false, ""},
	}
	for _, c := range cases {
		by, ok := rs.match(c.t, &c.s, "")
		if ok != c.want || by != c.wantBy {
			t.Errorf("%s: match = %q %v, want %q %v", c.what, by, ok, c.wantBy, c.want)
		}
	}
}

func TestExecExcluded(t *testing.T) {
	s := &execSighting{UID: 1000}
	ex := Exclusions{Users: []string{"backup"}, Processes: []string{"cron", "/usr/sbin/sshd"}}
	for _, c := range []struct {
		user, parent string
		want         bool
	}{
		{"backup", "", true},
		{"alice", "/usr/sbin/cron", true},
		{"alice", "/usr/sbin/sshd", true},
		{"alice", "/bin/bash", false},
		{"", "", false},
	} {
		if got := execExcluded(ex, s, c.user, c.parent); got != c.want {
			t.Errorf("user %q parent %q: excluded = %v, want %v", c.user, c.parent, got, c.want)
		}
	}
	if !execExcluded(Exclusions{Users: []string{"1000"}}, s, "", "") {
		t.Error("numeric uid exclusion did not match")
	}
}
