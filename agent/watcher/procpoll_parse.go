package watcher

import (
	"bytes"
	"encoding/binary"
	"errors"
	"unicode/utf16"
)

// Pure parsers of what the macOS and Windows process tables return, kept
// untagged so they are tested on every OS.

// parseProcArgs2 parses macOS's kern.procargs2 for one process: a native
// int32 argc, the executable path and its NUL padding, then argc
// NUL-terminated arguments (the environment follows and is ignored). It
// returns the path and the arguments NUL-separated, as /proc/PID/cmdline.
func parseProcArgs2(b []byte) (exe string, args []byte, err error) {
	if len(b) < 4 {
		return "", nil, errors.New("procargs2: shorter than argc")
	}
	argc := int(int32(binary.NativeEndian.Uint32(b)))
	rest := b[4:]
	end := bytes.IndexByte(rest, 0)
	if end < 0 {
		return "", nil, errors.New("procargs2: executable path not terminated")
	}
	exe = string(rest[:end])
	rest = rest[end:]
	for len(rest) > 0 && rest[0] == 0 {
		rest = rest[1:]
	}
	if argc < 0 || argc > len(rest) {
		return exe, nil, errors.New("procargs2: argc out of range")
	}
	start := rest
	n := 0
	for i := 0; i < argc; i++ {
		e := bytes.IndexByte(rest, 0)
		if e < 0 {
			// The last argument was cut by the buffer: keep what is there.
			n = len(start)
			break
		}
		rest = rest[e+1:]
		n = len(start) - len(rest)
	}
	return exe, bytes.Clone(start[:n]), nil
}

// cString is a fixed C char array up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// utf16Name is a fixed Windows WCHAR array (PROCESSENTRY32W.szExeFile) up to
// its first NUL.
func utf16Name(u []uint16) string {
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}
