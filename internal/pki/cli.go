package pki

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"slices"

	"github.com/jackc/pgx/v5"
)

// Usage is the help text of `tripwire pki`.
const Usage = `usage: tripwire pki COMMAND [flags]

A small certificate authority for TripWire: the collector's server certificate
and one client certificate per agent (CN = host name).

Commands:
  init                  create the CA (ca.crt, ca.key) and an empty CRL
  issue-server          issue the collector's certificate (server.crt, server.key)
  issue-agent HOST      issue HOST's client certificate (agents/HOST.crt, .key)
  revoke HOST|SERIAL    revoke HOST's certificates or one serial; rewrite crl.pem
                        (with a DSN also in PostgreSQL, for every collector)
  token HOST            print a one-time bootstrap token for HOST's first
                        enrollment over OpAMP (stored hashed in PostgreSQL)
  crl                   re-sign crl.pem (do it before its next update, yearly)
  list                  list issued certificates

Flags:
  --dir DIR             PKI directory (default $TRIPWIRE_PKI_DIR or ./pki)
  --validity D          issue-*: validity, e.g. 365d, 1y, 720h (default 365d, max 730d)
  --dns NAME            issue-server: a DNS name (repeatable)
  --ip ADDR             issue-server: an IP address (repeatable)
  --ttl D               token: how long the token is good (default 15m, max 24h)
  --dsn DSN             token, revoke: PostgreSQL (default $TRIPWIRE_PG_DSN)

Exit status: 0 done, 1 failed, 2 bad usage.
`

// Exit codes of Main.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// Main runs `tripwire pki ARGS...` (args exclude "tripwire pki") and returns
// the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return ExitUsage
	}
	cmd := args[0]
	if cmd == "-h" || cmd == "--help" || cmd == "help" {
		fmt.Fprint(stdout, Usage)
		return ExitOK
	}
	fs := flag.NewFlagSet("tripwire pki "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defDir := os.Getenv("TRIPWIRE_PKI_DIR")
	if defDir == "" {
		defDir = "pki"
	}
	dir := fs.String("dir", defDir, "")
	validityText := fs.String("validity", "", "")
	var dns, ips listFlag
	ttl := fs.Duration("ttl", DefaultTokenTTL, "")
	dsn := fs.String("dsn", os.Getenv("TRIPWIRE_PG_DSN"), "")
	fs.Var(&dns, "dns", "")
	fs.Var(&ips, "ip", "")

	// Flags may come before or after the positional argument.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, Usage)
				return ExitOK
			}
			return usageError(stderr, err.Error())
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var validity time.Duration
	if set["validity"] {
		v, err := ParseValidity(*validityText)
		if err != nil {
			return usageError(stderr, err.Error())
		}
		if v > MaxValidity {
			return usageError(stderr, fmt.Sprintf("%v: %s is more than the maximum %s", ErrValidity, *validityText, FormatValidity(MaxValidity)))
		}
		validity = v
	}
	allowed := map[string][]string{
		"init": {"dir"}, "crl": {"dir"}, "list": {"dir"}, "revoke": {"dir", "dsn"},
		"token":        {"ttl", "dsn"},
		"issue-agent":  {"dir", "validity"},
		"issue-server": {"dir", "validity", "dns", "ip"},
	}
	wantPos := map[string]int{"issue-agent": 1, "revoke": 1, "token": 1}
	ok, known := allowed[cmd]
	if !known {
		return usageError(stderr, fmt.Sprintf("unknown command %q", cmd))
	}
	for name := range set {
		if !slices.Contains(ok, name) {
			return usageError(stderr, fmt.Sprintf("%s does not take --%s", cmd, name))
		}
	}
	if len(pos) != wantPos[cmd] {
		switch wantPos[cmd] {
		case 0:
			return usageError(stderr, fmt.Sprintf("%s takes no arguments, got %q", cmd, strings.Join(pos, " ")))
		default:
			return usageError(stderr, fmt.Sprintf("%s needs exactly one argument", cmd))
		}
	}

	switch cmd {
	case "init":
		if err := Init(*dir); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "created CA %s/%s (key %s/%s, keep it offline if you can)\n", *dir, CACertFile, *dir, CAKeyFile)
	case "issue-server":
		names := append(append([]string{}, dns...), ips...)
		is, err := IssueServer(*dir, names, validity)
		if err != nil {
			return fail(stderr, err)
		}
		printIssued(stdout, "server "+strings.Join(names, ","), is)
	case "issue-agent":
		is, err := IssueAgent(*dir, pos[0], validity)
		if err != nil {
			return fail(stderr, err)
		}
		printIssued(stdout, "agent "+pos[0], is)
	case "revoke":
		// The collectors sign certificates the local index never saw: with a
		// DSN, a host unknown here may still be revoked centrally.
		revoked, err := Revoke(*dir, pos[0])
		if err != nil && (*dsn == "" || !errors.Is(err, ErrNotFound)) {
			return fail(stderr, err)
		}
		for _, e := range revoked {
			fmt.Fprintf(stdout, "revoked %s %s serial %s\n", e.Kind, e.Name, e.Serial)
		}
		if err == nil {
			fmt.Fprintf(stdout, "wrote %s/%s\n", *dir, CRLFile)
		}
		if *dsn != "" {
			serials, err := withDB(*dsn, func(ctx context.Context, conn *pgx.Conn) ([]string, error) {
				return RevokeCentral(ctx, conn, pos[0], revoked)
			})
			if err != nil {
				return fail(stderr, err)
			}
			fmt.Fprintf(stdout, "revoked in PostgreSQL for every collector: %s\n", strings.Join(serials, " "))
		}
	case "token":
		if *dsn == "" {
			return usageError(stderr, "token needs --dsn or $TRIPWIRE_PG_DSN: the collectors check tokens in PostgreSQL")
		}
		var expires time.Time
		tok, err := withDB(*dsn, func(ctx context.Context, conn *pgx.Conn) (string, error) {
			t, e, err := NewToken(ctx, conn, pos[0], *ttl)
			expires = e
			return t, err
		})
		if err != nil {
			return fail(stderr, err)
		}
		// The token alone on stdout, so TOKEN=$(tripwire pki token HOST) works.
		fmt.Fprintln(stdout, tok)
		fmt.Fprintf(stderr, "one-time bootstrap token for %s, good until %s\n", pos[0], expires.UTC().Format(time.RFC3339))
	case "crl":
		if err := WriteCRL(*dir); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "wrote %s/%s\n", *dir, CRLFile)
	case "list":
		certs, err := List(*dir)
		if err != nil {
			return fail(stderr, err)
		}
		for _, e := range certs {
			state := "valid"
			switch {
			case e.RevokedAt != nil:
				state = "revoked " + e.RevokedAt.Format(time.RFC3339)
			case time.Now().After(e.NotAfter):
				state = "expired"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\tnot_after=%s\t%s\n", e.Serial, e.Kind, e.Name, e.NotAfter.Format(time.RFC3339), state)
		}
	}
	return ExitOK
}

func withDB[T any](dsn string, f func(context.Context, *pgx.Conn) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var zero T
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return zero, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	return f(ctx, conn)
}

func printIssued(w io.Writer, what string, is Issued) {
	fmt.Fprintf(w, "issued %s serial %s not_after %s\n  cert %s\n  key  %s\n",
		what, is.Serial, is.NotAfter.UTC().Format(time.RFC3339), is.CertFile, is.KeyFile)
}

func usageError(w io.Writer, msg string) int {
	fmt.Fprintf(w, "tripwire pki: %s\nRun 'tripwire pki help' for usage.\n", msg)
	return ExitUsage
}

func fail(w io.Writer, err error) int {
	fmt.Fprintf(w, "tripwire pki: %v\n", err)
	return ExitFail
}
