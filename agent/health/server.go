package health

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tripwire-sec/tripwire/internal/safefile"
)

// ListenOptions say where health is served.
type ListenOptions struct {
	// Socket is a Unix socket path, mode 0660, group SocketGroup; "" for none.
	Socket      string
	SocketGroup string
	// Address is an opt-in TCP host:port; every request must carry the
	// bearer token read from TokenFile.
	Address   string
	TokenFile string
	Logger    *slog.Logger
}

// Server serves /healthz and /metrics on a Unix socket and, opt-in, on TCP
// behind a bearer token. Both name rules and count trips, which no local user
// outside the socket's group should learn.
type Server struct {
	socket, tcp net.Listener
	tcpToken    [sha256.Size]byte
	servers     []*http.Server
}

// Listen binds the socket and the TCP address; Serve starts answering.
func Listen(o ListenOptions) (_ *Server, err error) {
	s := &Server{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if o.Socket != "" {
		if s.socket, err = listenSocket(o.Socket, o.SocketGroup, o.Logger); err != nil {
			return nil, fmt.Errorf("health socket %s (health.socket): %w", o.Socket, bareErr(err))
		}
	}
	if o.Address != "" {
		token, err := LoadToken(o.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("%w (health.token_file)", err)
		}
		if s.tcp, err = net.Listen("tcp", o.Address); err != nil {
			return nil, fmt.Errorf("health address %s (health.address): %w", o.Address, bareErr(err))
		}
		s.tcpToken = tokenDigest(token)
	}
	return s, nil
}

// Serve answers on every listener until Shutdown.
func (s *Server) Serve(report func() Report, gatherer prometheus.Gatherer, log *slog.Logger) {
	h := Handler(report, gatherer)
	if log == nil {
		log = slog.Default()
	}
	serve := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		s.servers = append(s.servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("serving health", "error", err)
			}
		}()
	}
	if s.socket != nil {
		serve(s.socket, h)
	}
	if s.tcp != nil {
		serve(s.tcp, requireToken(s.tcpToken, h))
	}
}

// Addr is where `tripwire status` should ask: the socket if there is one.
func (s *Server) Addr() string {
	if s.socket != nil {
		return s.socket.Addr().String()
	}
	return s.tcp.Addr().String()
}

// TCPAddr is the opt-in TCP address, "" without one.
func (s *Server) TCPAddr() string {
	if s.tcp == nil {
		return ""
	}
	return s.tcp.Addr().String()
}

// Shutdown stops serving, letting requests in flight finish until ctx ends.
func (s *Server) Shutdown(ctx context.Context) {
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
	}
	s.Close()
}

// Close closes the listeners (the socket file is removed).
func (s *Server) Close() {
	for _, ln := range []net.Listener{s.socket, s.tcp} {
		if ln != nil {
			ln.Close()
		}
	}
}

// bareErr drops what repeats the path or address the caller names
// ("address already in use" rather than "listen tcp ADDR: bind: ...").
func bareErr(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) && err.Error() == pe.Error() {
		return pe.Err
	}
	return err
}

// minTokenBytes keeps a guessable token out: 16 bytes is 128 bits when random.
const minTokenBytes = 16

// LoadToken reads a bearer token from path: a regular file, reached without
// following a symlink, owned by root or the agent and readable by nobody
// else. Surrounding white space is dropped. The token is never logged.
func LoadToken(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("health token: no token_file")
	}
	dir, err := safefile.OpenDir(filepath.Dir(path), safefile.DirOptions{})
	if err != nil {
		return nil, fmt.Errorf("health token: %w", err)
	}
	defer dir.Close()
	f, err := safefile.OpenAt(dir, filepath.Base(path), os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("health token: %w", err)
	}
	defer f.Close()
	if err := privateToAgent(f); err != nil {
		return nil, fmt.Errorf("health token: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("health token: %w", err)
	}
	token := []byte(strings.TrimSpace(string(b)))
	if len(token) < minTokenBytes {
		return nil, fmt.Errorf("health token: %s holds %d bytes; want at least %d", path, len(token), minTokenBytes)
	}
	return token, nil
}

func tokenDigest(token []byte) [sha256.Size]byte { return sha256.Sum256(token) }

// requireToken answers 401 unless the request carries "Authorization: Bearer
// TOKEN". Digests are compared, in constant time, so neither the token's
// bytes nor its length shows in the timing.
func requireToken(want [sha256.Size]byte, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		d := tokenDigest([]byte(got))
		if subtle.ConstantTimeCompare(d[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tripwire"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
