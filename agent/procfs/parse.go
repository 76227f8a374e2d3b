package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Stat is what TripWire needs from /proc/<pid>/stat.
type Stat struct {
	PID       int
	Comm      string // may contain spaces and parentheses
	State     byte
	PPID      int
	StartTime uint64 // field 22: clock ticks after boot (CLOCK_BOOTTIME)
}

var errMalformed = errors.New("malformed")

// ParseStat parses the contents of /proc/<pid>/stat. The command name sits in
// parentheses and may itself contain ") ", so fields are counted from the last
// ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return s, fmt.Errorf("parsing stat: %w: no command name", errMalformed)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("parsing stat pid: %w", err)
	}
	s.PID = pid
	s.Comm = string(b[open+1 : closing])
	rest := strings.Fields(string(b[closing+1:]))
	// rest[0] is field 3 (state), so field N is rest[N-3].
	if len(rest) < 22-3+1 {
		return s, fmt.Errorf("parsing stat: %w: %d fields after the command name", errMalformed, len(rest))
	}
	if len(rest[0]) != 1 {
		return s, fmt.Errorf("parsing stat state %q: %w", rest[0], errMalformed)
	}
	s.State = rest[0][0]
	if s.PPID, err = strconv.Atoi(rest[4-3]); err != nil {
		return s, fmt.Errorf("parsing stat ppid: %w", err)
	}
	if s.StartTime, err = strconv.ParseUint(rest[22-3], 10, 64); err != nil {
		return s, fmt.Errorf("parsing stat starttime: %w", err)
	}
	return s, nil
}

// Status is what TripWire needs from /proc/<pid>/status.
type Status struct {
	Name string
	PPID int
	UID  [4]int // real, effective, saved, filesystem
	GID  [4]int
}

// ParseStatus parses the contents of /proc/<pid>/status. Name, PPid, Uid and
// Gid must all be present.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	var seen int
	const (
		seenName = 1 << iota
		seenPPID
		seenUID
		seenGID
	)
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		var err error
		switch string(key) {
		case "Name":
			s.Name, seen = string(val), seen|seenName
		case "PPid":
			s.PPID, err = strconv.Atoi(string(val))
			seen |= seenPPID
		case "Uid":
			err = parseIDs(val, &s.UID)
			seen |= seenUID
		case "Gid":
			err = parseIDs(val, &s.GID)
			seen |= seenGID
		}
		if err != nil {
			return s, fmt.Errorf("parsing status %s: %w", key, err)
		}
	}
	if seen != seenName|seenPPID|seenUID|seenGID {
		return s, fmt.Errorf("parsing status: %w: Name, PPid, Uid or Gid absent", errMalformed)
	}
	return s, nil
}

func parseIDs(val []byte, ids *[4]int) error {
	f := strings.Fields(string(val))
	if len(f) != 4 {
		return fmt.Errorf("%w: want 4 ids, got %d", errMalformed, len(f))
	}
	for i, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: id %q", errMalformed, s)
		}
		ids[i] = n
	}
	return nil
}

// MaxCommandLine bounds a rendered command line in bytes; the event schema
// accepts 64 KiB and a command line can be megabytes.
const MaxCommandLine = 32 * 1024

// CommandLine renders the NUL-separated contents of /proc/<pid>/cmdline as one
// line: arguments joined by spaces, each quoted when it needs to be for a shell
// reader to split it back ('…' for printable text, Go "…" escapes for control
// bytes or invalid UTF-8, so the result is always valid UTF-8). It reports
// whether the result was cut at [MaxCommandLine]. An empty cmdline (kernel
// threads, zombies) renders as "".
func CommandLine(raw []byte) (line string, truncated bool) {
	raw = bytes.TrimSuffix(raw, []byte{0})
	if len(raw) == 0 {
		return "", false
	}
	var sb strings.Builder
	for i, arg := range bytes.Split(raw, []byte{0}) {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(QuoteArg(string(arg)))
		if sb.Len() > MaxCommandLine {
			break
		}
	}
	line = sb.String()
	if len(line) > MaxCommandLine {
		cut := MaxCommandLine
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		return line[:cut], true
	}
	return line, false
}

// QuoteArg quotes one argument the way [CommandLine] does.
func QuoteArg(s string) string {
	if s == "" {
		return "''"
	}
	plain, printable := true, utf8.ValidString(s)
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			printable = false
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r > 0x7f:
		case strings.ContainsRune("@%+=:,./_-", r):
		default:
			plain = false
		}
	}
	switch {
	case !printable:
		return strconv.Quote(s)
	case plain:
		return s
	default:
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
}

// Printable returns s unchanged when it is valid UTF-8, else with each invalid
// byte written as \xNN, so paths and names never make an event invalid.
func Printable(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&sb, `\x%02x`, s[i])
		} else {
			sb.WriteString(s[i : i+n])
		}
		i += n
	}
	return sb.String()
}
