//go:build !unix

package main

// restrictUmask has nothing to do where files carry ACLs instead of modes.
func restrictUmask() {}
