package watcher

import (
	"testing"

	"github.com/tripwire-sec/tripwire/internal/event"
)

func TestExclusions(t *testing.T) {
	x := compileExclusions(Exclusions{Processes: []string{"backup", "/usr/sbin/sshd", "a-very-long-daemon-name"}, Users: []string{"root", "1001"}})
	for _, tc := range []struct {
		what string
		p    *event.Process
		comm string
		want bool
	}{
		{"base name", &event.Process{ExecutablePath: "/opt/bin/backup", UserID: "5"}, "", true},
		{"deleted binary", &event.Process{ExecutablePath: "/opt/bin/backup (deleted)", UserID: "5"}, "", true},
		{"path", &event.Process{ExecutablePath: "/usr/sbin/sshd", UserID: "5"}, "", true},
		{"same name, other path", &event.Process{ExecutablePath: "/tmp/sshd", UserID: "5"}, "sshd", false},
		{"argv[0] is not the name", &event.Process{ExecutablePath: "/bin/nc", CommandLine: "backup -x", UserID: "5"}, "backup", false},
		{"user by name", &event.Process{ExecutablePath: "/bin/cat", UserName: "root"}, "", true},
		{"user by name resolved to uid", &event.Process{ExecutablePath: "/bin/cat", UserID: "0"}, "", true},
		{"user by uid", &event.Process{ExecutablePath: "/bin/cat", UserID: "1001", UserName: "alice"}, "", true},
		{"gone: command name", &event.Process{UserID: "5"}, "backup", true},
		{"gone: truncated command name", &event.Process{UserID: "5"}, "a-very-long-dae", true},
		{"gone: path rules need the path", &event.Process{UserID: "5"}, "sshd", false},
		{"unknown actor", &event.Process{PID: 7}, "", false},
		{"no actor", nil, "", false},
	} {
		if got := x.excludes(tc.p, tc.comm); got != tc.want {
			t.Errorf("%s: excludes = %v, want %v", tc.what, got, tc.want)
		}
	}
}
