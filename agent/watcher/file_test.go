package watcher

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}

func TestFileRulesMatch(t *testing.T) {
	rs, err := compileFileRules([]FileRule{
		{Name: "file", Paths: []string{"/etc/shadow"}},
		{Name: "dir", Paths: []string{"/srv/flat"}},
		{Name: "tree", Paths: []string{"/srv/tree/"}, Recursive: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	// classify needs real paths; set the kinds by hand for a pure check.
	rs.files = map[string]*fileRule{"/etc/shadow": rs.exact["/etc/shadow"]}
	rs.dirs = map[string]*fileRule{"/srv/flat": rs.exact["/srv/flat"], "/srv/tree": rs.exact["/srv/tree"]}
	rs.recursive = map[string]*fileRule{"/srv/tree": rs.exact["/srv/tree"]}
	for path, want := range map[string]string{
		"/etc/shadow": "file", "/etc/passwd": "", "/srv/flat": "dir", "/srv/flat/a": "dir", "/srv/flat/a/b": "",
		"/srv/tree": "tree", "/srv/tree/a/b/c": "tree", "/srv/treehouse": "", "/": "",
	} {
		got := ""
		if r := rs.match(path); r != nil {
			got = r.Name
		}
		if got != want {
			t.Errorf("match(%s) = %q, want %q", path, got, want)
		}
	}
	for _, bad := range [][]FileRule{
		{{Name: "", Paths: []string{"/a"}}},
		{{Name: "x"}},
		{{Name: "x", Paths: []string{"relative"}}},
		{{Name: "x", Paths: []string{"/a"}}, {Name: "y", Paths: []string{"/a/"}}},
	} {
		if _, err := compileFileRules(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// Trips from mechanisms that merge queued events say their count is a lower
// bound; the eBPF modes count in the kernel and do not.
func TestFileTripLowerBound(t *testing.T) {
	r := &fileRule{FileRule: FileRule{Name: "r"}}
	for _, c := range []struct {
		mech string
		name event.Name
		want bool
	}{
		{MechanismFanotify, event.FileAccess, true},
		{MechanismFsnotify, event.FileModify, true},
		{MechanismFanotify, event.FileDelete, false},
		{MechanismEBPF, event.FileAccess, false},
		{MechanismEBPFSyscall, event.FileAccess, false},
	} {
		if got := fileTrip(c.name, r, c.mech, "/f", "", time.Now(), nil, nil).CountLowerBound; got != c.want {
			t.Errorf("%s %s: lower bound %v, want %v", c.mech, c.name, got, c.want)
		}
	}
}
