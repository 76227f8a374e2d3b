//go:build !unix

package pki

// lockDir is a no-op where flock does not exist: the in-process mutex still
// serialises callers within one program.
func lockDir(string) (func(), error) { return func() {}, nil }
