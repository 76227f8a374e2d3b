package contract

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// spelledOutAllowed are the files outside this module that may spell
// contract names out: all of them (nil), or only the words listed, which
// there mean something else.
var spelledOutAllowed = map[string][]string{
	// The frontend's copy, generated from this package by TestFrontendContract.
	"grafana-plugin/src/api/contract.gen.ts": nil,
	// Ordinary words that are not chain-break kinds there: counters and
	// rejection reasons named "malformed", a file named "link", a marker
	// named "head".
	"agent/procfs/parse.go":                {"malformed"},
	"agent/watcher/exec_ebpf_linux.go":     {"malformed"},
	"agent/watcher/network_ebpf_linux.go":  {"malformed"},
	"tripwirereceiver/binding.go":          {"malformed"},
	"agent/watcher/honeyfile_test.go":      {"link"},
	"internal/safefile/safefile_test.go":   {"link"},
	"agent/watcher/fanotify_linux_test.go": {"head"},
}

// skipDirs are never searched: dependencies, build output, VCS data.
var skipDirs = map[string]bool{".git": true, "node_modules": true, "dist": true, "_build": true, ".tools": true, "bin": true}

// contractNames parses this package's sources and returns every string
// constant it declares: the names other code must use through it.
func contractNames(t *testing.T) map[string]string {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, v := range vs.Values {
						lit, ok := v.(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						s, err := strconv.Unquote(lit.Value)
						if err != nil {
							t.Fatal(err)
						}
						names[s] = vs.Names[i].Name
					}
				}
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d contract names; the parse is broken", len(names))
	}
	return names
}

// TestNamesSpelledOutOnlyHere fails when a contract name appears as a
// quoted literal ("x", 'x' or `x`) in Go, TypeScript, SQL or YAML anywhere
// in the repository outside this module: such a copy would drift.
func TestNamesSpelledOutOnlyHere(t *testing.T) {
	names := contractNames(t)
	var quoted [][]byte
	var owner, word []string
	for s, name := range names {
		for _, q := range []string{`"`, `'`, "`"} {
			quoted = append(quoted, []byte(q+s+q))
			owner = append(owner, name)
			word = append(word, s)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	exts := []string{".go", ".ts", ".tsx", ".sql", ".yaml", ".yml"}
	var found []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if skipDirs[d.Name()] || rel == "contract" {
				return filepath.SkipDir
			}
			return nil
		}
		allowed, listed := spelledOutAllowed[rel]
		// Migrations are history: a deployed database ran them as they
		// are, so they are never edited, and SQL cannot import a constant.
		if strings.HasPrefix(rel, "migrations/") && filepath.Ext(rel) == ".sql" {
			listed, allowed = true, nil
		}
		if !slices.Contains(exts, filepath.Ext(path)) || listed && allowed == nil {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, q := range quoted {
			if slices.Contains(allowed, word[i]) {
				continue
			}
			for off := 0; ; {
				j := bytes.Index(b[off:], q)
				if j < 0 {
					break
				}
				line := 1 + bytes.Count(b[:off+j], []byte("\n"))
				found = append(found, rel+":"+strconv.Itoa(line)+": "+string(q)+" (use contract."+owner[i]+")")
				off += j + len(q)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(found)
	for _, f := range found {
		t.Error(f)
	}
}
