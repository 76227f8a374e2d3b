//go:build unix

package health

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func serveTest(t *testing.T, o ListenOptions) *Server {
	t.Helper()
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	m.Events.WithLabelValues("file", "secret-rule").Inc()
	s.Serve(func() Report { return Report{Status: StatusOK, Watchers: []Watcher{{Rules: []string{"secret-rule"}}}} }, m.Registry, nil)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func writeToken(t *testing.T, dir, token string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "health.token")
	if err := os.WriteFile(p, []byte(token+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSocketModeAndGroup(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "health.sock")
	s := serveTest(t, ListenOptions{Socket: sock, SocketGroup: "root"})
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != socketMode || st.Gid != 0 {
		t.Errorf("socket %v gid %d, want socket 0660 gid 0", fi.Mode(), st.Gid)
	}
	if r, err := Fetch(context.Background(), s.Addr()); err != nil || r.Status != StatusOK {
		t.Errorf("fetch over the socket: %+v %v", r, err)
	}
	// An unknown group leaves the socket to the agent's user alone.
	other := filepath.Join(dir, "other.sock")
	serveTest(t, ListenOptions{Socket: other, SocketGroup: "no-such-group-tripwire"})
	if fi, err := os.Lstat(other); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket with an unknown group: %v %v", fi.Mode(), err)
	}
}

func TestSocketPathChecks(t *testing.T) {
	dir := t.TempDir()
	// A socket left by an agent killed uncleanly is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	serveTest(t, ListenOptions{Socket: stale})
	// A live one belongs to another agent; a file is not a socket.
	if _, err := Listen(ListenOptions{Socket: stale}); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second agent on a live socket: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(ListenOptions{Socket: file}); err == nil {
		t.Error("a regular file was replaced by the socket")
	}
	// A symlink another user could have made (in her directory) is not
	// followed; nor is a socket bound in her directory.
	if os.Geteuid() == 0 {
		user := filepath.Join(dir, "user")
		if err := os.Mkdir(user, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(user, "linked")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(user, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Join(link, "h.sock"), filepath.Join(user, "h.sock")} {
			if _, err := Listen(ListenOptions{Socket: p}); err == nil {
				t.Errorf("a socket was bound at %s", p)
			}
		}
	}
}

func TestTCPNeedsToken(t *testing.T) {
	dir := t.TempDir()
	const token = "0123456789abcdef0123456789abcdef"
	s := serveTest(t, ListenOptions{Address: "127.0.0.1:0", TokenFile: writeToken(t, dir, token, 0o600)})
	ctx := context.Background()
	for _, path := range []string{"/healthz", "/metrics"} {
		for _, bad := range []string{"", "wrong", token + "x", strings.ToUpper(token)} {
			body, status, err := Get(ctx, s.TCPAddr(), path, bad)
			if err == nil || !strings.HasPrefix(status, "401") || strings.Contains(string(body), "secret-rule") {
				t.Errorf("%s with token %q: %s %v %q", path, bad, status, err, body)
			}
		}
		body, status, err := Get(ctx, s.TCPAddr(), path, token)
		if err != nil || !strings.HasPrefix(status, "200") || !strings.Contains(string(body), "secret-rule") {
			t.Errorf("%s with the token: %s %v", path, status, err)
		}
	}
	// Prometheus sends the token with "Authorization: Bearer".
	req, _ := http.NewRequest("GET", "http://"+s.TCPAddr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("a Prometheus-style scrape: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

func TestLoadTokenRefuses(t *testing.T) {
	dir := t.TempDir()
	readable := writeToken(t, dir, "0123456789abcdef0123456789abcdef", 0o644)
	if _, err := LoadToken(readable); err == nil || !strings.Contains(err.Error(), "0644") {
		t.Errorf("a token readable by others: %v", err)
	}
	short := writeToken(t, t.TempDir(), "short", 0o600)
	if _, err := LoadToken(short); err == nil || strings.Contains(err.Error(), "short\n") {
		t.Errorf("a short token: %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(short, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadToken(link); err == nil {
		t.Error("a symlinked token file was read")
	}
	if _, err := Listen(ListenOptions{Address: "127.0.0.1:0"}); err == nil {
		t.Error("TCP health without a token")
	}
}
