package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The central part of the PKI lives in PostgreSQL (migration 0017), because
// every collector replica must see it: one-time bootstrap tokens, the
// certificates the collectors sign over OpAMP, and the revoked serials.

// RevocationsChannel is the channel PostgreSQL NOTIFYs on when
// pki_revocations changes; collectors LISTEN and reload.
const RevocationsChannel = "tripwire_revocations"

// Bootstrap token bounds: a token only has to live from `tripwire pki token`
// to the agent's first start.
const (
	DefaultTokenTTL = 15 * time.Minute
	MaxTokenTTL     = 24 * time.Hour
	tokenPrefix     = "twb_"
)

// Why a bootstrap token is refused; compare with errors.Is.
var (
	ErrTokenUnknown = errors.New("bootstrap token unknown")
	ErrTokenExpired = errors.New("bootstrap token expired")
	ErrTokenUsed    = errors.New("bootstrap token already used")
	ErrTokenHost    = errors.New("bootstrap token was issued for another host")
	ErrCSR          = errors.New("bad certificate request")
	ErrCAKeyMode    = errors.New("CA key is readable by others")
)

// Querier is what the central functions need of a pgx connection or pool.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewToken stores a one-time bootstrap token for host, good for ttl, and
// returns it. Only its SHA-256 is stored; the token itself is shown once.
func NewToken(ctx context.Context, q Querier, host string, ttl time.Duration) (token string, expires time.Time, err error) {
	if err := CheckHost(host); err != nil {
		return "", time.Time{}, err
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("token ttl %s: between 1s and %s", ttl, MaxTokenTTL)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, fmt.Errorf("generating token: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	// The server's clock decides expiry, the same clock the collectors
	// check it by.
	err = q.QueryRow(ctx, `INSERT INTO pki_bootstrap_tokens (token_hash, host_name, expires_at)
		VALUES ($1, $2, now() + $3::interval) RETURNING expires_at`,
		tokenHash(token), host, fmt.Sprintf("%d microseconds", ttl.Microseconds())).Scan(&expires)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("storing token: %w", err)
	}
	return token, expires, nil
}

// RedeemToken uses token up for host: it succeeds once, before expiry, for
// the host it was issued for. A refusal says why (ErrTokenUnknown, Expired,
// Used or Host); a token refused for another host stays usable.
func RedeemToken(ctx context.Context, q Querier, token, host string) error {
	h := tokenHash(token)
	tag, err := q.Exec(ctx, `UPDATE pki_bootstrap_tokens SET used_at = now()
		WHERE token_hash = $1 AND host_name = $2 AND used_at IS NULL AND expires_at > now()`, h, host)
	if err != nil {
		return fmt.Errorf("checking bootstrap token: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var owner string
	var used, expired bool
	err = q.QueryRow(ctx, `SELECT host_name, used_at IS NOT NULL, expires_at <= now()
		FROM pki_bootstrap_tokens WHERE token_hash = $1`, h).Scan(&owner, &used, &expired)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrTokenUnknown
	case err != nil:
		return fmt.Errorf("checking bootstrap token: %w", err)
	case used:
		return ErrTokenUsed
	case expired:
		return ErrTokenExpired
	case owner != host:
		return fmt.Errorf("%w (%q)", ErrTokenHost, owner)
	}
	// Used or expired between the two statements.
	return ErrTokenUsed
}

// NoteTokenSerial records which certificate a redeemed token bought.
func NoteTokenSerial(ctx context.Context, q Querier, token, serial string) error {
	_, err := q.Exec(ctx, `UPDATE pki_bootstrap_tokens SET used_serial = $2 WHERE token_hash = $1`, tokenHash(token), serial)
	return err
}

// How a collector came to sign a certificate.
const (
	HowEnroll = "enroll"
	HowRenew  = "renew"
)

// RecordIssued records a certificate a collector signed, so that `tripwire
// pki revoke HOST --dsn` finds it.
func RecordIssued(ctx context.Context, q Querier, cert *x509.Certificate, how string) error {
	_, err := q.Exec(ctx, `INSERT INTO pki_certificates (serial, host_name, how, not_before, not_after)
		VALUES ($1, $2, $3, $4, $5)`, serialHex(cert.SerialNumber), cert.Subject.CommonName, how, cert.NotBefore, cert.NotAfter)
	if err != nil {
		return fmt.Errorf("recording certificate: %w", err)
	}
	return nil
}

// RevokeCentral revokes in PostgreSQL the serial what, or else every
// certificate of the host what: those the collectors signed and those in
// the local index (entries, from [Revoke]). It returns the serials revoked.
func RevokeCentral(ctx context.Context, q Querier, what string, entries []Entry) ([]string, error) {
	serials := map[string]string{} // serial → host
	for _, e := range entries {
		serials[e.Serial] = e.Name
	}
	rows, err := q.Query(ctx, `SELECT serial, host_name FROM pki_certificates WHERE host_name = $1 OR serial = $2`,
		what, normalizeSerial(what))
	if err != nil {
		return nil, fmt.Errorf("finding certificates: %w", err)
	}
	for rows.Next() {
		var s, h string
		if err := rows.Scan(&s, &h); err != nil {
			rows.Close()
			return nil, fmt.Errorf("finding certificates: %w", err)
		}
		serials[s] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding certificates: %w", err)
	}
	if len(serials) == 0 {
		return nil, fmt.Errorf("%w for %q", ErrNotFound, what)
	}
	var done []string
	for s, h := range serials {
		if _, err := q.Exec(ctx, `INSERT INTO pki_revocations (serial, host_name) VALUES ($1, $2)
			ON CONFLICT (serial) DO NOTHING`, s, h); err != nil {
			return done, fmt.Errorf("revoking %s: %w", s, err)
		}
		done = append(done, s)
	}
	return done, nil
}

// RevokedSerials reads every revoked serial (lowercase hex).
func RevokedSerials(ctx context.Context, q Querier) (map[string]bool, error) {
	rows, err := q.Query(ctx, `SELECT serial FROM pki_revocations`)
	if err != nil {
		return nil, fmt.Errorf("reading revocations: %w", err)
	}
	serials, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading revocations: %w", err)
	}
	m := make(map[string]bool, len(serials))
	for _, s := range serials {
		m[normalizeSerial(s)] = true
	}
	return m, nil
}

// Signer signs agent certificates from CSRs with the CA's key, for a
// collector (enrollment and renewal over OpAMP).
type Signer struct {
	CA       *x509.Certificate
	key      crypto.Signer
	Validity time.Duration
}

// LoadSigner reads the CA certificate and key. The key must be a regular
// file readable by its owner only (0600 or 0400): it can mint any host.
func LoadSigner(certFile, keyFile string, validity time.Duration) (*Signer, error) {
	fi, err := os.Stat(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600", ErrCAKeyMode, keyFile, fi.Mode().Perm())
	}
	cert, key, err := loadCAFiles(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &Signer{CA: cert, key: key, Validity: validity}, nil
}

// ParseCSR reads a PEM certificate request and checks its signature and
// key: ECDSA P-256/P-384, Ed25519, or RSA of 2048 bits or more.
func ParseCSR(pemBytes []byte) (*x509.CertificateRequest, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: no CERTIFICATE REQUEST PEM block", ErrCSR)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if n := k.Curve.Params().Name; n != "P-256" && n != "P-384" {
			return nil, fmt.Errorf("%w: curve %s", ErrCSR, n)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: RSA key of %d bits", ErrCSR, k.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("%w: key type %T", ErrCSR, k)
	}
	if err := CheckHost(csr.Subject.CommonName); err != nil {
		return nil, fmt.Errorf("%w: CN: %w", ErrCSR, err)
	}
	return csr, nil
}

// Sign issues host's client certificate for the key in csr. Only host is
// taken from the caller; the CSR's CN must be it, and nothing else the CSR
// asks for (SANs, usages) is copied.
func (s *Signer) Sign(csr *x509.CertificateRequest, host string) (*x509.Certificate, []byte, error) {
	if csr.Subject.CommonName != host {
		return nil, nil, fmt.Errorf("%w: CN %q, the certificate is for %q", ErrCSR, csr.Subject.CommonName, host)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, Organization: []string{"TripWire"}},
		DNSNames:     []string{host},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(s.Validity),
	}
	if tmpl.NotAfter.After(s.CA.NotAfter) {
		tmpl.NotAfter = s.CA.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.CA, csr.PublicKey, s.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing agent certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// CAPEM is the CA certificate, for the agent's trust store.
func (s *Signer) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.CA.Raw})
}

// IsToken tells a bootstrap token from other text (a mistyped file).
func IsToken(s string) bool {
	return strings.HasPrefix(s, tokenPrefix) && len(s) == len(tokenPrefix)+43
}
