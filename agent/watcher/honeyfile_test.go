package watcher

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tripwire-sec/tripwire/internal/event"
)

func plantRules(t *testing.T, path string, h *Honeyfile) *fileRules {
	t.Helper()
	rs, err := compileFileRules([]FileRule{{Name: "decoy", Severity: event.SeverityCritical, Paths: []string{path}, Plant: h}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestHoneyfilePlantsOnce(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "id_rsa")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := plantHoneyfiles(plantRules(t, p, &Honeyfile{Content: "-----BEGIN KEY-----\n"}), log); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "-----BEGIN KEY-----\n" || fi.Mode().Perm() != defaultHoneyfileMode {
		t.Errorf("planted %q mode %v", b, fi.Mode())
	}
	// Planting again (a restart) finds its own decoy and leaves it alone.
	if err := plantHoneyfiles(plantRules(t, p, &Honeyfile{Content: "-----BEGIN KEY-----\n"}), log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "honeyfile already planted") {
		t.Errorf("logs: %s", logs.String())
	}
}

func TestHoneyfileNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	real, target := filepath.Join(dir, "real"), filepath.Join(dir, "target")
	writeFile(t, real, "the user's data")
	writeFile(t, target, "symlink target")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for _, p := range []string{real, link} {
		if err := plantHoneyfiles(plantRules(t, p, &Honeyfile{Content: "decoy", Mode: 0o644}), log); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(real); string(b) != "the user's data" {
		t.Errorf("existing file overwritten: %q", b)
	}
	if b, _ := os.ReadFile(target); string(b) != "symlink target" {
		t.Errorf("symlink followed: %q", b)
	}
	if n := strings.Count(logs.String(), "not overwriting"); n != 2 {
		t.Errorf("want two warnings, logs: %s", logs.String())
	}
}

func TestHoneyfileErrors(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for what, tc := range map[string]struct {
		path string
		h    Honeyfile
	}{
		"missing parent": {filepath.Join(dir, "no", "such", "dir", "f"), Honeyfile{Content: "x"}},
		"unknown owner":  {filepath.Join(dir, "f1"), Honeyfile{Content: "x", Owner: "no-such-user-tripwire"}},
		"unknown group":  {filepath.Join(dir, "f2"), Honeyfile{Content: "x", Group: "no-such-group-tripwire"}},
	} {
		if err := plantHoneyfiles(plantRules(t, tc.path, &tc.h), log); err == nil {
			t.Errorf("%s: accepted", what)
		}
		if _, err := os.Lstat(tc.path); err == nil {
			t.Errorf("%s: left a file behind", what)
		}
	}
}
