//go:build linux

package compose

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// imageFacts is what compose/collector.Dockerfile says about the final
// image: the user it runs as and the queue directory it ships.
type imageFacts struct {
	uid, gid           int
	queueDir           string
	queueUID, queueGID int
	queueMode          os.FileMode
}

func readDockerfile(t *testing.T) imageFacts {
	t.Helper()
	b, err := os.ReadFile("collector.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	final := text[strings.LastIndex(text, "\nFROM "):]
	var f imageFacts
	user := regexp.MustCompile(`(?m)^USER (\d+):(\d+)\s*$`).FindStringSubmatch(final)
	if user == nil {
		t.Fatal("collector.Dockerfile: the final stage sets no numeric USER uid:gid")
	}
	f.uid, _ = strconv.Atoi(user[1])
	f.gid, _ = strconv.Atoi(user[2])
	cp := regexp.MustCompile(`(?m)^COPY --from=\S+ --chown=(\d+):(\d+) --chmod=(0[0-7]{3}) \S+ (\S+)\s*$`).FindStringSubmatch(final)
	if cp == nil {
		t.Fatal("collector.Dockerfile: the image ships no directory with --chown and --chmod (the queue directory)")
	}
	f.queueUID, _ = strconv.Atoi(cp[1])
	f.queueGID, _ = strconv.Atoi(cp[2])
	mode, _ := strconv.ParseUint(cp[3], 8, 32)
	f.queueMode, f.queueDir = os.FileMode(mode), cp[4]
	return f
}

// TestCollectorStartsAsImageUser reproduces, without Docker, what the
// collector container meets on the first `docker compose up`: it runs as
// the image's uid, the PKI directory is what compose/init.sh prepared, and
// the queue volume is a new volume, which Docker fills from the image's
// directory with its owner and mode. The built collector, started that way
// on the shipped config and the environment compose gives it, must become
// healthy and store an event an agent sends.
func TestCollectorStartsAsImageUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start the collector as another uid and to chown as init.sh does (CI runs as root)")
	}
	img := readDockerfile(t)
	r := composeConfig(t)
	svc := r.Services["collector"]
	var queueTarget, pkiTarget string
	for _, v := range svc.Volumes {
		switch {
		case v.Type == "volume":
			queueTarget = v.Target
		case strings.HasSuffix(v.Source, "/compose/pki/collector"):
			pkiTarget = v.Target
		}
	}
	if queueTarget != img.queueDir || svc.Environment["TRIPWIRE_QUEUE_DIR"] != img.queueDir {
		t.Fatalf("the queue volume is mounted at %q and TRIPWIRE_QUEUE_DIR is %q, but the image ships %q",
			queueTarget, svc.Environment["TRIPWIRE_QUEUE_DIR"], img.queueDir)
	}
	if img.queueUID != img.uid || img.queueGID != img.gid {
		t.Fatalf("the image's queue directory is owned by %d:%d, its user is %d:%d", img.queueUID, img.queueGID, img.uid, img.gid)
	}
	if pkiTarget == "" || svc.Environment["TRIPWIRE_PKI_DIR"] != pkiTarget {
		t.Fatalf("TRIPWIRE_PKI_DIR %q is not where compose mounts compose/pki/collector (%q)", svc.Environment["TRIPWIRE_PKI_DIR"], pkiTarget)
	}

	// The container's filesystem, in a directory uid 65532 can traverse.
	root := t.TempDir()
	for d := root; d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil && d == root {
			t.Fatal(err)
		}
		if d == os.TempDir() {
			break
		}
	}
	work := filepath.Join(root, "compose")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	tripwire := filepath.Join(root, "bin", "tripwire")
	if out, err := exec.Command("go", "build", "-o", tripwire, "../agent/cmd/tripwire").CombinedOutput(); err != nil {
		t.Fatalf("building tripwire: %v\n%s", err, out)
	}
	copyFile(t, "init.sh", filepath.Join(work, "init.sh"), 0o755)
	cmd := exec.Command(filepath.Join(work, "init.sh"))
	cmd.Env = append(os.Environ(), "TRIPWIRE="+tripwire)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init.sh: %v\n%s", err, out)
	}

	// What the collector may see: four files, its key readable by it alone.
	pkiDir := filepath.Join(work, "pki", "collector")
	want := map[string]os.FileMode{"ca.crt": 0o444, "server.crt": 0o444, "server.key": 0o400, "crl.pem": 0o444}
	entries, err := os.ReadDir(pkiDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("compose/pki/collector holds %s, which the collector must not see", e.Name())
		}
	}
	for name, mode := range want {
		assertOwned(t, filepath.Join(pkiDir, name), img.uid, img.gid, mode)
	}
	// Compose bind-mounts that directory read-only; the rest of compose/pki
	// (0700, the CA key inside) is not on the collector's path at all.
	mountedPKI := filepath.Join(root, "etc", "tripwire-collector", "pki")
	bindReadOnly(t, pkiDir, mountedPKI)

	// A new named volume: Docker copies the image's directory into it.
	queue := filepath.Join(root, "volumes", "queue")
	if err := os.MkdirAll(filepath.Dir(queue), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(queue, img.queueMode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(queue, img.queueMode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(queue, img.queueUID, img.queueGID); err != nil {
		t.Fatal(err)
	}
	// The binary and config as the image and compose put them.
	bin := filepath.Join(root, "bin", "tripwire-collector")
	copyFile(t, collectorBinary(t), bin, 0o755)
	config := filepath.Join(root, "config.yaml")
	copyFile(t, "../collector/config.yaml", config, 0o444)

	dsn := pgtest.NewDB(t)
	recvPort, healthPort := freePort(t), freePort(t)
	env := []string{"PATH=/usr/bin:/bin", "HOME=/home/nonroot"}
	for k, v := range svc.Environment {
		switch k {
		case "TRIPWIRE_PKI_DIR":
			v = mountedPKI
		case "TRIPWIRE_QUEUE_DIR":
			v = queue
		case "TRIPWIRE_PG_DSN":
			v = dsn // compose's points at the postgres service
		case "TRIPWIRE_ENDPOINT":
			v = fmt.Sprintf("127.0.0.1:%d", recvPort)
		case "TRIPWIRE_HEALTH_ENDPOINT":
			v = fmt.Sprintf("127.0.0.1:%d", healthPort)
		}
		env = append(env, k+"="+v)
	}
	env = append(env, "TRIPWIRE_METRICS_PORT="+strconv.Itoa(freePort(t)))
	// The volume holds forward.yaml's persistent queue (the PostgreSQL
	// exporter keeps none): layered on, as by an operator who forwards, with
	// an endpoint that is not there, whose queue then holds the event.
	forward := filepath.Join(root, "forward.yaml")
	copyFile(t, "../collector/forward.yaml", forward, 0o444)
	env = append(env, "TRIPWIRE_FORWARD_ENDPOINT=127.0.0.1:"+strconv.Itoa(freePort(t)), "TRIPWIRE_FORWARD_INSECURE=true")
	log := &strings.Builder{}
	col := exec.Command(bin, append(svc.commandArgs(config), "--config", forward)...)
	col.Env, col.Dir = env, root
	col.Stdout, col.Stderr = log, log
	col.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(img.uid), Gid: uint32(img.gid)}}
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- col.Wait() }()
	t.Cleanup(func() {
		_ = col.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = col.Process.Kill()
			<-done
		}
	})
	waitHealthy(t, fmt.Sprintf("http://127.0.0.1:%d/", healthPort), done, log)

	// An agent of this PKI sends one trip; it must reach PostgreSQL.
	if out, err := exec.Command(tripwire, "pki", "issue-agent", "web-01", "--dir", filepath.Join(work, "pki")).CombinedOutput(); err != nil {
		t.Fatalf("issue-agent: %v\n%s", err, out)
	}
	client := agentClient(t, filepath.Join(work, "pki"), "web-01", fmt.Sprintf("127.0.0.1:%d", recvPort))
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(event.ResourceHostName, "web-01")
	now := time.Now()
	e := &event.Event{Name: event.FileAccess, AlertID: event.NewAlertID(), Seq: 1, Severity: event.SeverityCritical,
		Rule: "compose-uid-test", Time: now, ObservedTime: now, File: &event.File{Path: "/srv/decoy"}}
	e.CopyTo(rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := client.Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
	if err != nil {
		t.Fatalf("export: %v\n%s", err, log.String())
	}
	if n := resp.PartialSuccess().RejectedLogRecords(); n != 0 {
		t.Fatalf("rejected %d: %s", n, resp.PartialSuccess().ErrorMessage())
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE host_name = 'web-01' AND rule_name = 'compose-uid-test'`).Scan(&n)
		if err == nil && n == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the event was not stored (%d rows, %v); collector log:\n%s", n, err, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The forward queue lives in the volume, owned by the image's user.
	files, err := os.ReadDir(queue)
	if err != nil || len(files) == 0 {
		t.Fatalf("the collector left no queue file in the volume (%v)", err)
	}
	for _, f := range files {
		info, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); int(st.Uid) != img.uid {
			t.Errorf("queue file %s owned by uid %d, want %d", f.Name(), st.Uid, img.uid)
		}
	}
}

// commandArgs is the collector's command line with the mounted config path
// replaced by config.
func (s service) commandArgs(config string) []string {
	args := make([]string, len(s.Command))
	for i, a := range s.Command {
		if strings.HasSuffix(a, ".yaml") {
			a = config
		}
		args[i] = a
	}
	return args
}

// bindReadOnly mounts dir at target read-only, as Docker does for a ":ro"
// bind mount, and unmounts it when the test ends.
func bindReadOnly(t *testing.T, dir, target string) {
	t.Helper()
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(target); d != filepath.Dir(filepath.Dir(filepath.Dir(target))); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount(dir, target, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(target, 0); err != nil {
			t.Errorf("unmounting %s: %v", target, err)
		}
	})
	if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting %s read-only: %v", target, err)
	}
}

func assertOwned(t *testing.T, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	st := info.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || info.Mode().Perm() != mode {
		t.Errorf("%s: %d:%d %v, want %d:%d %v", path, st.Uid, st.Gid, info.Mode().Perm(), uid, gid, mode)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

// collectorBinary is bin/tripwire-collector (`make collector`, which `make
// test` runs first), or TRIPWIRE_COLLECTOR_BIN.
func collectorBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TRIPWIRE_COLLECTOR_BIN")
	if p == "" {
		p = "../bin/tripwire-collector"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no collector binary at %s: run `make collector` or set TRIPWIRE_COLLECTOR_BIN", p)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHealthy(t *testing.T, url string, done chan error, log *strings.Builder) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the collector exited during start as the image user: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector is not healthy after 90 s:\n%s", log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func agentClient(t *testing.T, dir, host, addr string) plogotlp.GRPCClient {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "agents", host+".crt"), filepath.Join(dir, "agents", host+".key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "localhost", MinVersion: tls.VersionTLS13,
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return plogotlp.NewGRPCClient(conn)
}
