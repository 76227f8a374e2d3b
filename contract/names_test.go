package contract

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// spelledOutAllowed are the files outside this module that may spell
// contract names out.
var spelledOutAllowed = map[string]bool{
	// The frontend's copy, generated from this package by TestFrontendContract.
	"grafana-plugin/src/api/contract.gen.ts": true,
}

// plainWord matches names that are ordinary words ("gap", "link",
// "malformed"): elsewhere they are file names, counters and markers too, so
// they count as a spelled-out contract name only on a line that speaks of a
// kind or a break.
var plainWord = regexp.MustCompile(`^[a-z]+$`)
var kindLine = regexp.MustCompile(`(?i)kind|break`)

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
		// Migrations are history: a deployed database ran them as they
		// are, so they are never edited, and SQL cannot import a constant.
		migration := strings.HasPrefix(rel, "migrations/") && filepath.Ext(rel) == ".sql"
		if !slices.Contains(exts, filepath.Ext(path)) || spelledOutAllowed[rel] || migration {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, q := range quoted {
			for off := 0; ; {
				j := bytes.Index(b[off:], q)
				if j < 0 {
					break
				}
				at := off + j
				off = at + len(q)
				if plainWord.MatchString(word[i]) {
					start := bytes.LastIndexByte(b[:at], '\n') + 1
					end := bytes.IndexByte(b[at:], '\n')
					if end < 0 {
						end = len(b) - at
					}
					if !kindLine.Match(b[start : at+end]) {
						continue
					}
				}
				line := 1 + bytes.Count(b[:at], []byte("\n"))
				found = append(found, rel+":"+strconv.Itoa(line)+": "+string(q)+" (use contract."+owner[i]+")")
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
