package systemd

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitRunsPackagedConfig runs the packaged unit's commands with the
// packaged example config as systemd would: ExecStartPre lines marked "+"
// as root outside the sandbox, the rest and ExecStart as the unit's user
// with exactly its capabilities (setpriv: ambient, inheritable and bounding
// sets, no_new_privs), its UMask, its State/Logs/RuntimeDirectory, and
// ProtectHome=read-only. It runs in a private mount and network namespace
// (tmpfs over /run, /var/lib, /var/log and /root, its own loopback), so the
// host keeps no trace and the example's honeyport cannot collide. systemd
// itself is not running here, so ProtectSystem= and the other sandboxing
// options are not reproduced; the config path and the binary are the test's.
// Then `tripwire status` must say ok.
func TestUnitRunsPackagedConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates the tripwire user and namespaces")
	}
	for _, tool := range []string{"setpriv", "unshare", "ip", "useradd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	u, err := ReadUnit(filepath.Join(root, "deploy", "systemd", "tripwire.service"))
	if err != nil {
		t.Fatal(err)
	}
	if v := u.One("PrivateTmp", "no"); v == "yes" || v == "true" {
		t.Errorf("PrivateTmp=%s: a rule on /tmp would watch the service's private /tmp, not the host's", v)
	}
	usr, grp := u.One("User", "root"), u.One("Group", "root")
	ensureUser(t, root, usr)

	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tripwire")
	build := exec.Command("go", "build", "-o", bin, "./agent/cmd/tripwire")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The config as the package installs it: nfpm mode 0640, postinstall
	// gives it to the tripwire group.
	conf := filepath.Join(dir, "etc", "tripwire", "config.yaml")
	example, err := os.ReadFile(filepath.Join(root, "agent", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, example, 0o640); err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(grp)
	if err != nil {
		t.Fatal(err)
	}
	var gid int
	fmt.Sscan(g.Gid, &gid)
	if err := os.Chown(conf, 0, gid); err != nil {
		t.Fatal(err)
	}
	command := func(line string) (privileged bool, cmd string) {
		line = strings.TrimSpace(line)
		privileged = strings.HasPrefix(line, "+")
		line = strings.TrimLeft(line, "+-@:!")
		line = strings.ReplaceAll(line, "/usr/bin/tripwire", bin)
		return privileged, strings.ReplaceAll(line, "/etc/tripwire/config.yaml", conf)
	}
	asUser := u.AsUser()
	// The sandbox applies to the unit's user commands, not to "+" ones: each
	// runs in its own mount namespace with the protections applied.
	protect := fmt.Sprintf("umask %s", u.One("UMask", "0022"))
	if u.One("ProtectHome", "no") == "read-only" {
		protect += "; for d in /root /home; do mount --bind $d $d; mount -o remount,bind,ro $d; done"
	}
	sandboxed := func(cmd string) string {
		return fmt.Sprintf("unshare --mount sh -c '%s; exec %s %s'", protect, asUser, cmd)
	}

	var sb strings.Builder
	sb.WriteString("set -eu\nmount --make-rprivate /\nip link set lo up\n")
	for _, d := range []string{"/run", "/var/lib", "/var/log", "/root"} {
		fmt.Fprintf(&sb, "mount -t tmpfs -o mode=0755 tmpfs %s\n", d)
	}
	sb.WriteString("chmod 0700 /root\n")
	for key, parent := range map[string]string{"StateDirectory": "/var/lib", "LogsDirectory": "/var/log", "RuntimeDirectory": "/run"} {
		for _, name := range strings.Fields(u.One(key, "")) {
			mode := u.One(key+"Mode", "0755")
			fmt.Fprintf(&sb, "install -d -o %s -g %s -m %s %s/%s\n", usr, grp, mode, parent, name)
		}
	}
	for _, line := range u["ExecStartPre"] {
		if privileged, cmd := command(line); privileged {
			fmt.Fprintf(&sb, "%s\n", cmd)
		} else {
			fmt.Fprintf(&sb, "%s\n", sandboxed(cmd))
		}
	}
	_, start := command(u.One("ExecStart", ""))
	fmt.Fprintf(&sb, "%s >%s/agent.log 2>&1 &\nagent=$!\n", sandboxed(start), dir)
	fmt.Fprintf(&sb, `code=1
for i in $(seq 100); do
  if %s status >%s/status.txt 2>&1; then code=0; break; fi
  kill -0 $agent 2>/dev/null || break
  sleep 0.2
done
cat %s/status.txt
kill -TERM $agent 2>/dev/null || true
wait $agent || true
exit $code
`, bin, dir, dir)
	script := filepath.Join(dir, "unit.sh")
	if err := os.WriteFile(script, []byte(sb.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("unshare", "--mount", "--net", "--fork", "sh", script).CombinedOutput()
	log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
	if err != nil || !strings.Contains(string(out), "status: ok") {
		t.Fatalf("the packaged unit with the packaged config is not ok: %v\n%s\nscript:\n%s\nagent log:\n%s", err, out, sb.String(), log)
	}
	t.Logf("tripwire status under the unit:\n%s", out)
}

// ensureUser creates the unit's user with the package's own preinstall
// script when it is missing, and removes it again after the test.
func ensureUser(t *testing.T, root, name string) {
	t.Helper()
	if _, err := user.Lookup(name); err == nil {
		return
	}
	if out, err := exec.Command("sh", filepath.Join(root, "deploy", "scripts", "preinstall.sh")).CombinedOutput(); err != nil {
		t.Fatalf("preinstall.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("userdel", name).Run()
		exec.Command("groupdel", name).Run()
	})
}
