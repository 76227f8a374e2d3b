package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestBadConfigs runs every archive under agent/testdata/config: the files
// other than config.yaml and want are laid out in a temp dir ($DIR), the
// config is loaded from there, and its errors must be exactly the want lines.
func TestBadConfigs(t *testing.T) {
	archives, err := filepath.Glob("../testdata/config/*.txtar")
	if err != nil || len(archives) == 0 {
		t.Fatalf("no test archives: %v", err)
	}
	for _, a := range archives {
		t.Run(strings.TrimSuffix(filepath.Base(a), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(a)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var conf, want string
			for _, f := range ar.Files {
				switch f.Name {
				case "config.yaml":
					conf = strings.ReplaceAll(string(f.Data), "$DIR", dir)
				case "want":
					want = strings.TrimSpace(string(f.Data))
				default:
					p := filepath.Join(dir, f.Name)
					if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, f.Data, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Load(path)
			got := ""
			if err != nil {
				got = strings.ReplaceAll(err.Error(), dir, "$DIR")
			}
			if got != want {
				t.Errorf("errors differ\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	c, err := Load("../config.example.yaml")
	if err != nil {
		t.Fatalf("the shipped example is invalid:\n%v", err)
	}
	if len(c.FileRules()) == 0 || len(c.ProcessRules()) == 0 || len(c.NetworkRules()) == 0 {
		t.Errorf("the example should show every rule type, got %d file, %d process, %d network",
			len(c.FileRules()), len(c.ProcessRules()), len(c.NetworkRules()))
	}
}

func TestDefaultsAndConversion(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := `
rules:
  - name: d
    type: file
    severity: CRITICAL
    paths: ["` + dir + `/d/../d"]
    recursive: true
  - name: off
    type: process
    severity: INFO
    enabled: false
    names: [nc]
  - name: hp
    type: network
    severity: WARN
    mode: honeyport
    ports: 2222
`
	c, err := Parse(filepath.Join(dir, "c.yaml"), []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	if c.Health.Socket != DefaultHealthSocket || c.Health.Address != "" || c.Spool.Path != DefaultSpoolPath ||
		c.Spool.MaxEvents != DefaultSpoolMaxEvents || c.HeartbeatInterval != DefaultHeartbeatInterval {
		t.Errorf("defaults not applied: %+v", c)
	}
	fr := c.FileRules()
	if len(fr) != 1 || fr[0].Paths[0] != filepath.Join(dir, "d") || !fr[0].Recursive || fr[0].Severity != event.SeverityCritical {
		t.Errorf("file rules = %+v", fr)
	}
	if pr := c.ProcessRules(); len(pr) != 0 {
		t.Errorf("a disabled rule was converted: %+v", pr)
	}
	nr := c.NetworkRules()
	if len(nr) != 1 || nr[0].Ports[0] != 2222 || nr[0].Mode != "honeyport" || nr[0].Transport != "tcp" {
		t.Errorf("network rules = %+v", nr)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	_, err := Parse("x.yaml", []byte("bogus: 1\nrules: 3\n"))
	var n int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *Error
		if !errors.As(e, &ce) || ce.File != "x.yaml" || ce.Line == 0 {
			t.Errorf("not a placed *Error: %#v", e)
		}
		n++
	}
	if n != 2 {
		t.Errorf("got %d errors, want 2: %v", n, err)
	}
}

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, and
// every error it returns must be placed in the file.
func FuzzParse(f *testing.F) {
	archives, _ := filepath.Glob("../testdata/config/*.txtar")
	for _, a := range archives {
		if ar, err := txtar.ParseFile(a); err == nil {
			for _, file := range ar.Files {
				if file.Name == "config.yaml" {
					f.Add(file.Data)
				}
			}
		}
	}
	if b, err := os.ReadFile("../config.example.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, "fuzz.yaml:") {
				t.Fatalf("error line not placed in the file: %q", line)
			}
		}
	})
}

func TestEmptyFileIsAllDefaults(t *testing.T) {
	for _, data := range []string{"", "# nothing yet\n", "{}\n"} {
		c, err := Parse("empty.yaml", []byte(data))
		if err != nil {
			t.Errorf("%q: %v", data, err)
			continue
		}
		if len(c.Rules) != 0 || c.Health.Socket != DefaultHealthSocket || c.Health.Address != "" {
			t.Errorf("%q: %+v", data, c)
		}
	}
}
