// Package pki is a small certificate authority for TripWire, so that operators
// never need openssl: one CA signs the collector's server certificate and one
// client certificate per agent, whose CN is the host name the collector binds
// every event to.
//
// Start with [Init], then [IssueServer] for the collector and [IssueAgent] for
// each host; [Revoke] a lost host and hand the collector the CRL it rewrites.
// [Main] is the `tripwire pki` command line over the same functions.
//
// Layout of a PKI directory (mode 0700; keys 0600, everything else 0644):
//
//	ca.crt ca.key            the CA (ECDSA P-256, 10 years)
//	server.crt server.key    the collector's server certificate
//	agents/HOST.crt .key     one client certificate per agent host
//	index.json               every certificate issued: serial, kind, name, expiry, revocation
//	crl.pem                  the certificate revocation list, rewritten on every revoke
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// File names inside a PKI directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	CRLFile        = "crl.pem"
	IndexFile      = "index.json"
	AgentsDir      = "agents"
)

// Validity bounds. Agent certificates are short-lived on purpose: a stolen
// key is only useful until it expires or is revoked, and the agent warns 30
// days before expiry.
const (
	CAValidity      = 10 * 365 * 24 * time.Hour
	DefaultValidity = 365 * 24 * time.Hour
	MaxValidity     = 2 * 365 * 24 * time.Hour
	// CRLValidity is the CRL's NextUpdate horizon; `tripwire pki crl`
	// re-signs it before then.
	CRLValidity = 365 * 24 * time.Hour
)

// Kinds of certificate in the index.
const (
	KindServer = "server"
	KindAgent  = "agent"
)

// Errors; compare with errors.Is.
var (
	ErrExists      = errors.New("already exists")
	ErrNoCA        = errors.New("no CA: run `tripwire pki init` first")
	ErrValidity    = errors.New("validity out of range")
	ErrBadHost     = errors.New("bad host name")
	ErrNotFound    = errors.New("no such certificate")
	ErrNoNames     = errors.New("a server certificate needs at least one DNS name or IP address")
	errBadIndex    = errors.New("bad index")
	errKeyMismatch = errors.New("CA key does not match CA certificate")
)

// Issued describes a certificate written by IssueServer or IssueAgent.
type Issued struct {
	CertFile string
	KeyFile  string
	Serial   string // lowercase hex
	NotAfter time.Time
}

// Entry is one certificate in the index.
type Entry struct {
	Serial    string     `json:"serial"` // lowercase hex
	Kind      string     `json:"kind"`
	Name      string     `json:"name"` // host name for agents, first SAN for servers
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// mu serialises index updates within a process; lockDir across processes.
var mu sync.Mutex

func locked(dir string) (func(), error) {
	mu.Lock()
	unlock, err := lockDir(dir)
	if err != nil {
		mu.Unlock()
		return nil, err
	}
	return func() { unlock(); mu.Unlock() }, nil
}

// index is the serial index: every certificate issued, and the CRL number,
// which must grow with every CRL signed.
type index struct {
	CRLNumber int64   `json:"crl_number"`
	Certs     []Entry `json:"certs"`
}

// Init creates a CA in dir (created with mode 0700 if missing) and an empty
// CRL. It refuses to overwrite an existing CA.
func Init(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone; the keys inside
	// must not be listable by others either.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restricting %s: %w", dir, err)
	}
	unlock, err := locked(dir)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return fmt.Errorf("CA in %s: %w", dir, ErrExists)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "TripWire CA", Organization: []string{"TripWire"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("signing CA certificate: %w", err)
	}
	// Key first: a certificate without its key would block a retry of init.
	if err := writeKey(filepath.Join(dir, CAKeyFile), key); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, CACertFile), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	if err := saveIndex(dir, &index{}); err != nil {
		return err
	}
	return writeCRL(dir)
}

// IssueServer issues the collector's server certificate for the given DNS
// names and IP addresses (each name is parsed: an IP goes into the IP SANs).
// It replaces server.crt and server.key; the previous certificate stays valid
// until it expires or is revoked by serial.
func IssueServer(dir string, names []string, validity time.Duration) (Issued, error) {
	if len(names) == 0 {
		return Issued{}, ErrNoNames
	}
	tmpl := &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if err := CheckHost(n); err != nil {
			return Issued{}, err
		}
		tmpl.DNSNames = append(tmpl.DNSNames, n)
	}
	tmpl.Subject = pkix.Name{CommonName: names[0], Organization: []string{"TripWire"}}
	return issue(dir, KindServer, names[0], tmpl, validity,
		filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile))
}

// IssueAgent issues a client certificate for host: CN = host and one DNS SAN
// = host. validity 0 means DefaultValidity; more than MaxValidity is refused.
// Files: agents/HOST.crt and agents/HOST.key.
func IssueAgent(dir, host string, validity time.Duration) (Issued, error) {
	if err := CheckHost(host); err != nil {
		return Issued{}, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: host, Organization: []string{"TripWire"}},
		DNSNames:    []string{host},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	agents := filepath.Join(dir, AgentsDir)
	if err := os.MkdirAll(agents, 0o700); err != nil {
		return Issued{}, fmt.Errorf("creating %s: %w", agents, err)
	}
	return issue(dir, KindAgent, host, tmpl, validity,
		filepath.Join(agents, host+".crt"), filepath.Join(agents, host+".key"))
}

// AgentFiles returns the certificate and key paths IssueAgent writes for host.
func AgentFiles(dir, host string) (cert, key string) {
	return filepath.Join(dir, AgentsDir, host+".crt"), filepath.Join(dir, AgentsDir, host+".key")
}

func issue(dir, kind, name string, tmpl *x509.Certificate, validity time.Duration, certPath, keyPath string) (Issued, error) {
	if validity == 0 {
		validity = DefaultValidity
	}
	if validity < time.Hour || validity > MaxValidity {
		return Issued{}, fmt.Errorf("%w: %s (between 1h and %s)", ErrValidity, validity, FormatValidity(MaxValidity))
	}
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return Issued{}, err
	}
	unlock, err := locked(dir)
	if err != nil {
		return Issued{}, err
	}
	defer unlock()
	idx, err := loadIndex(dir)
	if err != nil {
		return Issued{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, fmt.Errorf("generating key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return Issued{}, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	// A few minutes of backdating absorb clock skew between the hosts.
	tmpl.NotBefore = now.Add(-5 * time.Minute)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return Issued{}, fmt.Errorf("signing %s certificate: %w", kind, err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return Issued{}, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return Issued{}, err
	}
	hex := serialHex(serial)
	idx.Certs = append(idx.Certs, Entry{Serial: hex, Kind: kind, Name: name,
		NotBefore: tmpl.NotBefore.UTC(), NotAfter: tmpl.NotAfter.UTC()})
	if err := saveIndex(dir, idx); err != nil {
		return Issued{}, err
	}
	return Issued{CertFile: certPath, KeyFile: keyPath, Serial: hex, NotAfter: tmpl.NotAfter}, nil
}

// Revoke revokes the certificate with serial what (hex, as printed at issue;
// a 0x prefix and colons are accepted), or else every unrevoked certificate
// issued for the host or server name what, and rewrites the CRL. It returns
// the entries it revoked.
func Revoke(dir, what string) ([]Entry, error) {
	if _, _, err := loadCA(dir); err != nil {
		return nil, err
	}
	unlock, err := locked(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, err := loadIndex(dir)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	want := normalizeSerial(what)
	var hit []int
	for i, c := range idx.Certs {
		if c.Serial == want {
			hit = []int{i}
			break
		}
		if c.Name == what && c.RevokedAt == nil {
			hit = append(hit, i)
		}
	}
	if len(hit) == 0 {
		return nil, fmt.Errorf("%w for %q", ErrNotFound, what)
	}
	var revoked []Entry
	for _, i := range hit {
		if idx.Certs[i].RevokedAt == nil {
			idx.Certs[i].RevokedAt = &now
		}
		revoked = append(revoked, idx.Certs[i])
	}
	if err := saveIndex(dir, idx); err != nil {
		return nil, err
	}
	return revoked, writeCRL(dir)
}

// List returns the index, oldest first.
func List(dir string) ([]Entry, error) {
	idx, err := loadIndex(dir)
	if err != nil {
		return nil, err
	}
	return idx.Certs, nil
}

// WriteCRL signs a fresh CRL listing every revoked serial and writes it to
// crl.pem. Revoked certificates stay listed after they expire: the list is
// short and a verifier that ignores expiry still refuses them.
func WriteCRL(dir string) error {
	if _, _, err := loadCA(dir); err != nil {
		return err
	}
	unlock, err := locked(dir)
	if err != nil {
		return err
	}
	defer unlock()
	return writeCRL(dir)
}

func writeCRL(dir string) error {
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	idx, err := loadIndex(dir)
	if err != nil {
		return err
	}
	var entries []x509.RevocationListEntry
	for _, c := range idx.Certs {
		if c.RevokedAt == nil {
			continue
		}
		n, ok := new(big.Int).SetString(c.Serial, 16)
		if !ok {
			return fmt.Errorf("%w: serial %q", errBadIndex, c.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: *c.RevokedAt})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].SerialNumber.Cmp(entries[j].SerialNumber) < 0 })
	idx.CRLNumber++
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(idx.CRLNumber),
		ThisUpdate:                now.Add(-5 * time.Minute),
		NextUpdate:                now.Add(CRLValidity),
		RevokedCertificateEntries: entries,
	}, caCert, caKey)
	if err != nil {
		return fmt.Errorf("signing CRL: %w", err)
	}
	if err := saveIndex(dir, idx); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, CRLFile), "X509 CRL", der, 0o644)
}

// LoadCRL reads a PEM or DER CRL and checks its signature against ca.
func LoadCRL(path string, ca *x509.Certificate) (*x509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRL: %w", err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("parsing CRL %s: PEM block is %q, want X509 CRL", path, blk.Type)
		}
		b = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("parsing CRL %s: %w", path, err)
	}
	if ca != nil {
		if err := crl.CheckSignatureFrom(ca); err != nil {
			return nil, fmt.Errorf("checking CRL %s signature: %w", path, err)
		}
	}
	return crl, nil
}

func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", dir, ErrNoCA)
	}
	return loadCAFiles(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
}

func loadCAFiles(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("parsing %s: no CERTIFICATE block", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA key: %w", err)
	}
	blk, _ = pem.Decode(keyPEM)
	if blk == nil {
		return nil, nil, fmt.Errorf("parsing %s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("parsing CA key: %T cannot sign", k)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, errKeyMismatch
	}
	return cert, signer, nil
}

func loadIndex(dir string) (*index, error) {
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(dir, CACertFile)); serr != nil {
			return nil, fmt.Errorf("%s: %w", dir, ErrNoCA)
		}
		return &index{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading index: %w", err)
	}
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%w %s: %w", errBadIndex, IndexFile, err)
	}
	return &idx, nil
}

func saveIndex(dir string, idx *index) error {
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding index: %w", err)
	}
	return writeFile(filepath.Join(dir, IndexFile), append(b, '\n'), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// writeFile replaces path atomically, so a reader (the collector reloading
// the CRL, an agent reloading its certificate on SIGHUP) never sees half a
// file, and the mode is right from the first byte.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func newSerial() (*big.Int, error) {
	// 127 random bits: positive, unpredictable, unique in practice.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func serialHex(n *big.Int) string { return n.Text(16) }

func normalizeSerial(s string) string {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
	s = strings.ReplaceAll(s, ":", "")
	return strings.TrimLeft(s, "0")
}

// CheckHost accepts a DNS-style host name. It becomes a file name and the
// identity the collector stamps on events, so nothing outside
// [A-Za-z0-9.-_] gets in.
func CheckHost(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%w %q: 1 to 253 characters", ErrBadHost, h)
	}
	if h[0] == '.' || h[0] == '-' {
		return fmt.Errorf("%w %q: must start with a letter or digit", ErrBadHost, h)
	}
	for _, c := range h {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("%w %q: only letters, digits, '.', '-' and '_'", ErrBadHost, h)
		}
	}
	if strings.Contains(h, "..") {
		return fmt.Errorf("%w %q: empty label", ErrBadHost, h)
	}
	return nil
}

// ParseValidity parses a validity: a Go duration ("720h") or a number of
// days ("365d") or years ("2y", 365 days each).
func ParseValidity(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrValidity)
	}
	unit := s[len(s)-1]
	if unit == 'd' || unit == 'y' {
		var n int64
		if _, err := fmt.Sscanf(s[:len(s)-1], "%d", &n); err != nil || fmt.Sprint(n) != s[:len(s)-1] || n <= 0 {
			return 0, fmt.Errorf("%w: %q", ErrValidity, s)
		}
		days := n
		if unit == 'y' {
			days = n * 365
		}
		if days > 100*365 {
			return 0, fmt.Errorf("%w: %q", ErrValidity, s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: %q (use e.g. 365d, 1y, 720h)", ErrValidity, s)
	}
	return d, nil
}

// FormatValidity prints whole days as "Nd", anything else as a duration.
func FormatValidity(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
