package collector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	// OTLP clients may gzip their requests (the collector's exporters do by default).
	_ "google.golang.org/grpc/encoding/gzip"
)

var healthClient = &http.Client{Timeout: 5 * time.Second}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		// The kernel may hand a closed port out again at once: a stack's
		// receiver and health check once got the same one.
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// syncBuffer is a log buffer the collector process writes and the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// collectorProc is a running tripwire-collector.
type collectorProc struct {
	cmd    *exec.Cmd
	log    *syncBuffer
	health string
	done   chan error
}

// startCollector writes config to a file and starts the collector on it
// (see startCollectorOn).
func startCollector(t testing.TB, config string, healthPort int, env ...string) *collectorProc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return startCollectorOn(t, []string{path}, healthPort, env...)
}

// startCollectorOn starts the built collector on the config files, layered
// in order, and waits until its health_check extension, at healthPort, says
// it is ready.
func startCollectorOn(t testing.TB, configs []string, healthPort int, env ...string) *collectorProc {
	t.Helper()
	bin := collectorBinary(t)
	var args []string
	for _, c := range configs {
		args = append(args, "--config", c)
	}
	p := &collectorProc{log: &syncBuffer{}, health: fmt.Sprintf("http://127.0.0.1:%d/", healthPort), done: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	waitHealthy(t, "collector", p.health, p.done, p.log)
	return p
}

// waitHealthy polls a started process's health URL until it answers 200,
// failing the test if the process exits first (its exit stays in done) or
// is not healthy within 60 s.
func waitHealthy(t testing.TB, what, url string, done chan error, log *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := healthClient.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("%s exited during start: %v\n%s", what, err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after 60s:\n%s", what, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits (SIGKILL after 30 s). Safe to call twice.
func (p *collectorProc) stop(t testing.TB) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("collector did not stop on SIGTERM within 30s:\n%s", p.log.String())
	}
}

// agentClient dials a tripwire receiver as an OTLP client with the agent
// certificate issued for host in the PKI dir.
func agentClient(t testing.TB, dir, host, addr string) plogotlp.GRPCClient {
	t.Helper()
	certFile, keyFile := filepath.Join(dir, "agents", host+".crt"), filepath.Join(dir, "agents", host+".key")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
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

// otlpSink is a plain OTLP/gRPC logs server that records what it gets: the
// "other OTLP endpoint" a forward pipeline sends to.
type otlpSink struct {
	plogotlp.UnimplementedGRPCServer
	mu    sync.Mutex
	got   []plogotlp.ExportRequest
	count int
	// countOnly keeps no copies (benchmarks: the sink stands for a backend
	// on another machine, and copying would take this machine's CPU).
	countOnly bool
	addr      string
}

func startSink(t testing.TB) *otlpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &otlpSink{addr: ln.Addr().String()}
	srv := grpc.NewServer()
	plogotlp.RegisterGRPCServer(srv, s)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return s
}

func (s *otlpSink) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count += req.Logs().LogRecordCount()
	if s.countOnly {
		return plogotlp.NewExportResponse(), nil
	}
	// The request's memory is reused after return: keep a copy.
	cp := plogotlp.NewExportRequest()
	b, err := req.MarshalProto()
	if err != nil {
		return plogotlp.NewExportResponse(), err
	}
	if err := cp.UnmarshalProto(b); err != nil {
		return plogotlp.NewExportResponse(), err
	}
	s.got = append(s.got, cp)
	return plogotlp.NewExportResponse(), nil
}

func (s *otlpSink) records() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}
