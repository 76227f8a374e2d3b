// Package installbench measures what an operator waits for on a new host:
// from `dpkg -i` of the agent's package (the one `make packages` builds) to
// the agent's first heartbeat stored centrally, through the real collector
// into PostgreSQL. Run with
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/install/
//
// The package is installed inside a private mount namespace whose /usr,
// /etc and /var/lib are overlays on the host's, so the host keeps no trace
// of it (no tripwire user, no dpkg record). systemd does not run here: the
// unit's commands run as systemd would run them, ExecStart as the unit's
// user with exactly the capabilities the unit file gives it.
package installbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/deploy/systemd"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// repoRoot is the repository's root, two levels up from here.
func repoRoot(b *testing.B) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	return root
}

// packageFile is the .deb for this machine's architecture in dist/ (or
// TRIPWIRE_DEB): the newest one `make packages` left there.
func packageFile(b *testing.B, root string) string {
	if p := os.Getenv("TRIPWIRE_DEB"); p != "" {
		return p
	}
	debs, _ := filepath.Glob(filepath.Join(root, "dist", "tripwire_*_"+runtime.GOARCH+".deb"))
	var newest string
	var at time.Time
	for _, d := range debs {
		if fi, err := os.Stat(d); err == nil && fi.ModTime().After(at) {
			newest, at = d, fi.ModTime()
		}
	}
	if newest == "" {
		b.Skipf("no dist/tripwire_*_%s.deb: run `make packages` first", runtime.GOARCH)
	}
	return newest
}

// collectorBinary is bin/tripwire-collector (or TRIPWIRE_COLLECTOR_BIN),
// built by collector/build.sh when missing.
func collectorBinary(b *testing.B, root string) string {
	if p := os.Getenv("TRIPWIRE_COLLECTOR_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(root, "bin", "tripwire-collector")
	if _, err := os.Stat(bin); err != nil {
		if out, err := exec.Command(filepath.Join(root, "collector", "build.sh")).CombinedOutput(); err != nil {
			b.Fatalf("building the collector: %v\n%s", err, out)
		}
	}
	return bin
}

func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startCollector runs the real collector with the shipped config on db and
// waits until its health check answers.
func startCollector(b *testing.B, root, pkiDir, db, endpoint string) {
	health := freePort(b)
	cmd := exec.Command(collectorBinary(b, root), "--config", filepath.Join(root, "collector", "config.yaml"))
	cmd.Env = append(os.Environ(),
		"TRIPWIRE_PKI_DIR="+pkiDir, "TRIPWIRE_PG_DSN="+db, "TRIPWIRE_QUEUE_DIR="+b.TempDir(),
		"TRIPWIRE_ENDPOINT="+endpoint, fmt.Sprintf("TRIPWIRE_HEALTH_ENDPOINT=127.0.0.1:%d", health),
		fmt.Sprintf("TRIPWIRE_METRICS_PORT=%d", freePort(b)))
	log, err := os.Create(filepath.Join(b.TempDir(), "collector.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	url := fmt.Sprintf("127.0.0.1:%d", health)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", url); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			b.Fatalf("collector not up after 60 s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkInstallToFirstHeartbeat prints the seconds from `dpkg -i` to the
// agent's first heartbeat stored in PostgreSQL, split into the install and
// the start. The configuration step an operator would type is a file copy
// here (config, CA, certificate and key), counted in the start.
func BenchmarkInstallToFirstHeartbeat(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: installs a package and runs the unit's user with capabilities")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		b.Skip("dpkg is not available on this machine: install time not measured")
	}
	for _, tool := range []string{"unshare", "setpriv", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed: install time not measured", tool)
		}
	}
	root := repoRoot(b)
	deb := packageFile(b, root)
	unit, err := systemd.ReadUnit(filepath.Join(root, "deploy", "systemd", "tripwire.service"))
	if err != nil {
		b.Fatal(err)
	}

	pkiDir := filepath.Join(b.TempDir(), "pki")
	if err := pki.Init(pkiDir); err != nil {
		b.Fatal(err)
	}
	if _, err := pki.IssueServer(pkiDir, []string{"localhost", "127.0.0.1"}, 0); err != nil {
		b.Fatal(err)
	}
	const host = "install-01"
	issued, err := pki.IssueAgent(pkiDir, host, 0)
	if err != nil {
		b.Fatal(err)
	}
	db := pgtest.NewDB(b)
	endpoint := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	startCollector(b, root, pkiDir, db, endpoint)
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())

	for i := 0; i < b.N; i++ {
		if _, err := conn.Exec(context.Background(), `TRUNCATE hosts CASCADE`); err != nil && i > 0 {
			b.Fatal(err)
		}
		dpkg, total, watchers := installOnce(b, unit, deb, pkiDir, issued, host, endpoint, conn)
		b.ReportMetric(total.Seconds(), "s/install")
		fmt.Printf("install to first heartbeat in PostgreSQL: %.2f s (dpkg -i %.2f s, configure + start → heartbeat stored %.2f s); %s, watchers %s\n",
			total.Seconds(), dpkg.Seconds(), (total - dpkg).Seconds(), filepath.Base(deb), watchers)
	}
}

// installOnce installs deb in a private mount namespace, configures and
// starts the agent as the unit would, and waits for its heartbeat in
// PostgreSQL. It returns how long dpkg -i took, the whole, and the watchers
// the heartbeat reports (what the unit's capabilities allowed).
func installOnce(b *testing.B, unit systemd.Unit, deb, pkiDir string, issued pki.Issued, host, endpoint string, conn *pgx.Conn) (dpkg, total time.Duration, watchers string) {
	dir := b.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// Watched outside the namespace's overlays (fanotify cannot mark every
	// file of an overlay), as a host's data is.
	if err := os.WriteFile(filepath.Join(dir, "payroll.csv"), []byte("name,salary\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	usr, grp := unit.One("User", "root"), unit.One("Group", "root")
	command := func(line string) (privileged bool, cmd string) {
		line = strings.TrimSpace(line)
		return strings.HasPrefix(line, "+"), strings.TrimLeft(line, "+-@:!")
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `set -eu
mount --make-rprivate /
W=%[1]s/ns
mkdir -p $W
mount -t tmpfs tmpfs $W
for d in /usr /etc /var/lib; do
  n=$(echo $d | tr / _)
  mkdir -p $W/$n.up $W/$n.work
  mount -t overlay overlay -o lowerdir=$d,upperdir=$W/$n.up,workdir=$W/$n.work $d
done
mount -t tmpfs -o mode=0755 tmpfs /var/log
mount -t tmpfs -o mode=0755 tmpfs /run
echo dpkg_start $(date +%%s.%%N)
dpkg -i %[2]s >%[1]s/dpkg.log 2>&1
echo dpkg_end $(date +%%s.%%N)
install -d -m 0750 -g %[4]s /etc/tripwire/pki
install -m 0640 -g %[4]s %[5]s %[6]s %[7]s /etc/tripwire/pki/
cat >/etc/tripwire/config.yaml <<'CONFIG'
host:
  name: %[8]s
rules:
  - {name: payroll-read, type: file, severity: CRITICAL, paths: [%[1]s/payroll.csv]}
  - {name: decoy-port, type: network, mode: honeyport, severity: CRITICAL, ports: [%[9]d], address: 127.0.0.1}
transport:
  endpoint: %[10]s
  ca: /etc/tripwire/pki/ca.crt
  cert: /etc/tripwire/pki/%[8]s.crt
  key: /etc/tripwire/pki/%[8]s.key
  server_name: localhost
CONFIG
chmod 0640 /etc/tripwire/config.yaml
chgrp %[4]s /etc/tripwire/config.yaml
`, dir, deb, usr, grp, filepath.Join(pkiDir, pki.CACertFile), issued.CertFile, issued.KeyFile, host, freePort(b), endpoint)
	for key, parent := range map[string]string{"StateDirectory": "/var/lib", "LogsDirectory": "/var/log", "RuntimeDirectory": "/run"} {
		for _, name := range strings.Fields(unit.One(key, "")) {
			fmt.Fprintf(&sb, "install -d -o %s -g %s -m %s %s/%s\n", usr, grp, unit.One(key+"Mode", "0755"), parent, name)
		}
	}
	asUser := fmt.Sprintf("sh -c 'umask %s; exec %s \"$@\"' --", unit.One("UMask", "0022"), unit.AsUser())
	for _, line := range unit["ExecStartPre"] {
		if privileged, cmd := command(line); privileged {
			fmt.Fprintf(&sb, "%s >>%s/unit.log 2>&1\n", cmd, dir)
		} else {
			fmt.Fprintf(&sb, "%s %s >>%s/unit.log 2>&1\n", asUser, cmd, dir)
		}
	}
	_, start := command(unit.One("ExecStart", ""))
	fmt.Fprintf(&sb, `%s %s >%s/agent.log 2>&1 &
agent=$!
echo started $(date +%%s.%%N)
while [ ! -e %s/stop ] && kill -0 $agent 2>/dev/null; do sleep 0.1; done
kill -TERM $agent 2>/dev/null || true
wait $agent || true
`, asUser, start, dir, dir)
	script := filepath.Join(dir, "install.sh")
	if err := os.WriteFile(script, []byte(sb.String()), 0o700); err != nil {
		b.Fatal(err)
	}

	t0 := time.Now()
	cmd := exec.Command("unshare", "--mount", "--fork", "sh", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	marks := map[string]float64{}
	var lines []string
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if k, v, ok := strings.Cut(sc.Text(), " "); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					marks[k] = f
				}
			}
		}
	}()
	logs := func() string {
		var s strings.Builder
		for _, f := range []string{"dpkg.log", "unit.log", "agent.log"} {
			data, _ := os.ReadFile(filepath.Join(dir, f))
			fmt.Fprintf(&s, "--- %s\n%s\n", f, data)
		}
		return s.String()
	}
	defer func() {
		os.WriteFile(filepath.Join(dir, "stop"), nil, 0o600)
		cmd.Wait()
	}()

	deadline := time.Now().Add(2 * time.Minute)
	for {
		// The heartbeat sets the watchers the agent runs; its start event
		// alone leaves them empty.
		err := conn.QueryRow(context.Background(), `SELECT watchers FROM hosts WHERE host_name = $1 AND watchers IS NOT NULL`, host).Scan(&watchers)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P01") {
			// 42P01: the exporter has not applied its migrations yet.
			b.Fatal(err)
		}
		if watchers != "" {
			total = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no heartbeat of %s in PostgreSQL after 2 minutes\n%s", host, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.WriteFile(filepath.Join(dir, "stop"), nil, 0o600)
	cmd.Wait()
	<-scanned
	if marks["dpkg_end"] == 0 {
		b.Fatalf("dpkg -i did not finish:\n%s\n%s", strings.Join(lines, "\n"), logs())
	}
	return time.Duration((marks["dpkg_end"] - marks["dpkg_start"]) * float64(time.Second)), total, watchers
}
