package watcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/tripwire-sec/tripwire/internal/event"
)

func sh(t *testing.T, script string) {
	t.Helper()
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
}

// The fsnotify fallback, forced, runs the fanotify scenarios it can: every
// event lists the actor fields as missing and carries no process; reads are
// seen on Linux (inotify IN_ACCESS).
func TestFsnotifyScenarios(t *testing.T) {
	dir := t.TempDir()
	f, g := filepath.Join(dir, "f"), filepath.Join(dir, "g")
	writeFile(t, f, "1\n")
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(tree, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	w, s := startFileWatcher(t, []FileRule{
		{Name: "flat", Severity: event.SeverityWarn, Paths: []string{dir}},
		{Name: "tree", Severity: event.SeverityCritical, Paths: []string{tree}, Recursive: true},
	}, MechanismFsnotify)
	if w.Mechanism() != MechanismFsnotify || !slices.Equal(w.Missing(), fsnotifyMissing) {
		t.Fatalf("mechanism %s missing %v", w.Mechanism(), w.Missing())
	}

	// A read, then a write: on Linux the read is an access, without actor
	// (reads come from a second inotify instance: no order between them).
	sh(t, "cat "+f+" >/dev/null; echo x >> "+f)
	e := s.waitFor(t, "modify", on(event.FileModify, f))
	if runtime.GOOS == "linux" {
		a := s.waitFor(t, "access", on(event.FileAccess, f))
		if a.Process != nil || a.Mechanism != MechanismFsnotify || a.Rule != "flat" {
			t.Errorf("access: %s", describe([]*event.Event{a}))
		}
	}
	if e.Process != nil || !slices.Equal(e.Missing, fsnotifyMissing) || e.Mechanism != MechanismFsnotify || e.Rule != "flat" {
		t.Errorf("modify: %s", describe([]*event.Event{e}))
	}
	sh(t, "chmod 600 "+f)
	s.waitFor(t, "attrib", on(event.FileAttrib, f))
	sh(t, "mv "+f+" "+g)
	s.waitFor(t, "rename (old name)", on(event.FileRename, f))
	s.waitFor(t, "create (new name)", on(event.FileCreate, g))
	sh(t, "rm "+g)
	s.waitFor(t, "delete", on(event.FileDelete, g))

	deep := filepath.Join(tree, "old", "f")
	sh(t, "echo x > "+deep)
	e = s.waitFor(t, "create in an existing subdirectory", on(event.FileCreate, deep))
	if e.Rule != "tree" || e.Severity != event.SeverityCritical {
		t.Errorf("recursive: %s", describe([]*event.Event{e}))
	}
	nf := filepath.Join(tree, "new", "deeper", "f")
	sh(t, "mkdir -p "+filepath.Dir(nf)+" && echo x > "+nf)
	s.waitFor(t, "file in a new subdirectory", func(e *event.Event) bool {
		return (e.Name == event.FileCreate || e.Name == event.FileModify) && e.File.Path == nf
	})
	sh(t, "echo y >> "+nf)
	s.waitFor(t, "write in the new subdirectory", on(event.FileModify, nf))
	for _, e := range s.all() {
		if e.Process != nil || !slices.Equal(e.Missing, fsnotifyMissing) {
			t.Errorf("event with an actor or wrong missing list: %s", describe([]*event.Event{e}))
		}
		if err := stamp(e).Validate(); err != nil {
			t.Errorf("invalid event %s: %v", describe([]*event.Event{e}), err)
		}
	}
}

// stamp adds what the pipeline adds, so Validate checks the watcher's part.
func stamp(e *event.Event) *event.Event {
	c := *e
	c.AlertID, c.Seq = event.NewAlertID(), 1
	return &c
}

// A watched file is watched through its directory: siblings trip nothing, and
// a replaced file is still watched.
func TestFsnotifyWatchedFile(t *testing.T) {
	dir := t.TempDir()
	f, sibling := filepath.Join(dir, "f"), filepath.Join(dir, "sibling")
	writeFile(t, f, "1")
	_, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityInfo, Paths: []string{f}}}, MechanismFsnotify)
	sh(t, "echo x >> "+sibling+"; echo new > "+f+".tmp; mv "+f+".tmp "+f+"; echo y >> "+f)
	s.waitFor(t, "write to the replacement", on(event.FileModify, f))
	for _, e := range s.all() {
		if e.File.Path != f {
			t.Errorf("unwatched path tripped: %s", describe([]*event.Event{e}))
		}
	}
}

// Planting happens before the watch: the first event is the write that
// follows, not the decoy's creation.
func TestFsnotifyHoneyfilePlantingTripsNothing(t *testing.T) {
	dir := t.TempDir()
	decoy := filepath.Join(dir, "passwords.txt")
	_, s := startFileWatcher(t, []FileRule{{Name: "decoy", Severity: event.SeverityCritical, Paths: []string{decoy},
		Plant: &Honeyfile{Content: "admin:hunter2\n", Mode: 0o644}}}, MechanismFsnotify)
	if b, err := os.ReadFile(decoy); err != nil || string(b) != "admin:hunter2\n" {
		t.Fatalf("decoy: %q %v", b, err)
	}
	sh(t, "echo x >> "+decoy)
	s.waitFor(t, "write to the decoy", on(event.FileModify, decoy))
	// The read above is reported (fsnotify cannot tell the agent's own
	// accesses from anyone's); planting must not be.
	for _, e := range s.before(on(event.FileModify, decoy)) {
		if e.Name != event.FileAccess {
			t.Errorf("planting tripped: %s", describe([]*event.Event{e}))
		}
	}
}
