// Command tripwire is the TripWire host agent.
//
//	tripwire start --config FILE       run the agent in the foreground
//	tripwire validate --config FILE [--target OS]    check a config and exit
//	tripwire plant --config FILE       plant the config's honeyfiles and exit
//	tripwire status [--socket PATH | --address ADDR --token-file FILE]
//	                                   print a running agent's /healthz
//	tripwire audit verify FILE [--anchor SEQ:HASH] [--from SEQ:HASH]
//	tripwire pki ...                   certificates for agents and the collector
//	tripwire version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tripwire-sec/tripwire/agent"
	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/agent/management"
	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: tripwire <command> [arguments]

commands:
  start --config FILE                     run the agent in the foreground
  validate --config FILE [--target OS]    check a config file and exit; with --target
                                          (linux, darwin, windows), list the rules an
                                          agent there leaves unserved
  plant --config FILE                     plant the config's honeyfiles and exit (as root, before start)
  status [--socket PATH]                  print a running agent's health (default /run/tripwire/health.sock)
  status --address HOST:PORT --token-file FILE
                                          the same over the opt-in TCP address
  audit verify FILE [--anchor SEQ:HASH] [--from SEQ:HASH]
                                          verify an audit log and its rotated files (FILE.1,
                                          ...), or with --from one file alone: exit 0 intact,
                                          1 tampered, 2 unreadable
  pki <command>                           certificates for agents and the collector (tripwire pki help)
  enroll --endpoint URL --ca FILE --host NAME --token-file FILE --cert FILE --key FILE
                                          get this host's first certificate from the collector's
                                          OpAMP server with a token from tripwire pki token
  version                                 print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "start":
		return start(rest, stderr)
	case "validate":
		return validate(rest, stdout, stderr)
	case "plant":
		return plant(rest, stderr)
	case "status":
		return status(rest, stdout, stderr)
	case "audit":
		return audit(rest, stdout, stderr)
	case "pki":
		return pki.Main(rest, stdout, stderr)
	case "enroll":
		return enroll(rest, stdout, stderr)
	case "version":
		if len(rest) > 0 {
			fmt.Fprintln(stderr, "usage: tripwire version")
			return 2
		}
		fmt.Fprintf(stdout, "tripwire %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tripwire: unknown command %q\n%s", cmd, usage)
		return 2
	}
}

// parse parses flags placed before or after positional arguments and
// returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func flags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tripwire %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func configFlag(name string, args []string, stderr io.Writer) (string, bool) {
	fs := flags(name, name+" --config FILE", stderr)
	path := fs.String("config", "", "the agent's YAML config `file`")
	pos, err := parse(fs, args)
	if err != nil {
		return "", false
	}
	if *path == "" || len(pos) > 0 {
		fs.Usage()
		return "", false
	}
	return *path, true
}

func validate(args []string, stdout, stderr io.Writer) int {
	const synopsis = "validate --config FILE [--target linux|darwin|windows]"
	fs := flags("validate", synopsis, stderr)
	path := fs.String("config", "", "the agent's YAML config `file`")
	target := fs.String("target", "", "also list the rules an agent on this `os` would leave unserved or serve with less")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if *path == "" || len(pos) > 0 || (*target != "" && !slices.Contains(watcher.Platforms, *target)) {
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	fmt.Fprintf(stdout, "%s: ok: %d file, %d process, %d network rules enabled\n", *path,
		len(cfg.FileRules()), len(cfg.ProcessRules()), len(cfg.NetworkRules()))
	if *target != "" {
		files, procs, nets := cfg.FileRules(), cfg.ProcessRules(), cfg.NetworkRules()
		unserved := watcher.PlatformUnserved(*target, files, procs, nets)
		for _, u := range unserved {
			fmt.Fprintf(stdout, "unserved on %s: %s\n", *target, u)
		}
		for _, d := range watcher.PlatformDegraded(*target, files, procs, nets) {
			fmt.Fprintf(stdout, "limited on %s: %s\n", *target, d)
		}
		if len(unserved) == 0 {
			fmt.Fprintf(stdout, "every rule is served on %s\n", *target)
		}
	}
	return 0
}

// plant creates the honeyfiles of a config, as the file watcher would at
// start, and exits: the packaged unit runs it as root (ExecStartPre=+) so
// the agent itself needs neither write access to the decoys' directories
// nor CAP_CHOWN for their owner.
func plant(args []string, stderr io.Writer) int {
	path, ok := configFlag("plant", args, stderr)
	if !ok {
		return 2
	}
	restrictUmask()
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "tripwire plant: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).
		With(event.ResourceServiceName, event.ServiceName, event.ResourceServiceVersion, version)
	// A refused decoy is logged and is not a failure: the agent starts
	// without that rule and reports it unserved (degraded), rather than a
	// user's symlink keeping the whole agent from starting.
	if _, err := watcher.PlantHoneyfiles(cfg.FileRules(), log); err != nil {
		fmt.Fprintf(stderr, "tripwire plant: %v\n", err)
		return 1
	}
	return 0
}

func start(args []string, stderr io.Writer) int {
	path, ok := configFlag("start", args, stderr)
	if !ok {
		return 2
	}
	restrictUmask()
	memLimit := idleMemoryLimit()
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).
		With(event.ResourceServiceName, event.ServiceName, event.ResourceServiceVersion, version)
	cfg, err := config.Load(path)
	if err != nil {
		return cannotStart(stderr, fmt.Errorf("invalid config: %w", err))
	}
	ctx, stop := stopContext()
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	a, err := agent.New(cfg, agent.Options{Version: version, Logger: log, MemoryLimit: memLimit})
	if err != nil {
		return cannotStart(stderr, err)
	}
	reload := make(chan *config.Config)
	go func() {
		for {
			select {
			case <-hup:
				next, err := config.Load(path)
				if err != nil {
					for _, line := range strings.Split(err.Error(), "\n") {
						log.Error("SIGHUP: config invalid; keeping the running rules", "error", line)
					}
					continue
				}
				select {
				case reload <- next:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := a.Run(ctx, reload); err != nil {
		if errors.As(err, new(*agent.StartError)) {
			return cannotStart(stderr, err)
		}
		log.Error("stopped", "error", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// idleMemoryLimit sets agent.IdleMemoryLimit unless the operator set
// GOMEMLIMIT (the knob: GOMEMLIMIT=64MiB raises it, GOMEMLIMIT=off removes
// it), and returns the limit the running agent keeps in step with its live
// heap (0: the operator's, left alone).
func idleMemoryLimit() int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	debug.SetMemoryLimit(agent.IdleMemoryLimit)
	return agent.IdleMemoryLimit
}

// cannotStart prints why start failed as one line, for the operator at the
// terminal or in the journal, and returns the exit code.
func cannotStart(stderr io.Writer, err error) int {
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	fmt.Fprintf(stderr, "tripwire start: %s\n", msg)
	return 1
}

func status(args []string, stdout, stderr io.Writer) int {
	fs := flags("status", "status [--socket PATH | --address HOST:PORT --token-file FILE]", stderr)
	socket := fs.String("socket", config.DefaultHealthSocket, "the agent's health `socket`")
	address := fs.String("address", "", "the agent's opt-in TCP health `address` instead of the socket")
	tokenFile := fs.String("token-file", "", "the `file` holding the bearer token for --address")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 || (*tokenFile != "" && *address == "") {
		fs.Usage()
		return 2
	}
	target, token := *socket, ""
	if *address != "" {
		target = *address
		if *tokenFile != "" {
			b, err := health.LoadToken(*tokenFile)
			if err != nil {
				fmt.Fprintf(stderr, "tripwire status: %v\n", err)
				return 2
			}
			token = string(b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := health.Fetch(ctx, target, token)
	if err != nil {
		fmt.Fprintf(stderr, "tripwire status: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "status: %s\nuptime: %s\nqueue depth: %d\nspool depth: %d\n", r.Status,
		(time.Duration(r.UptimeS) * time.Second).String(), r.QueueDepth, r.SpoolDepth)
	if r.LastAlertAt != nil {
		fmt.Fprintf(stdout, "last alert: %s\n", r.LastAlertAt.Format(time.RFC3339))
	} else {
		fmt.Fprintln(stdout, "last alert: none")
	}
	for _, w := range r.Watchers {
		missing := "none"
		if len(w.Missing) > 0 {
			missing = strings.Join(w.Missing, ",")
		}
		fmt.Fprintf(stdout, "watcher: %s %s rules=%s missing=%s\n", w.Kind, w.Mechanism, strings.Join(w.Rules, ","), missing)
	}
	for _, u := range r.Unserved {
		fmt.Fprintf(stdout, "unserved: %s\n", u)
	}
	for _, reason := range r.Reasons {
		fmt.Fprintf(stdout, "degraded: %s\n", reason)
	}
	if r.Status != health.StatusOK {
		return 1
	}
	return 0
}

func audit(args []string, stdout, stderr io.Writer) int {
	const synopsis = "audit verify FILE [--anchor SEQ:HASH] [--from SEQ:HASH]"
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintf(stderr, "usage: tripwire %s\n", synopsis)
		return 2
	}
	fs := flags("audit verify", synopsis, stderr)
	anchorText := fs.String("anchor", "", "a `SEQ:HASH` known from elsewhere (the collector's chain head): detects truncation and a rewritten tail")
	fromText := fs.String("from", "", "verify FILE alone, its first entry following `SEQ:HASH` (the last entry of the rotated file before it)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	var anchor, from *auditchain.Anchor
	for _, a := range []struct {
		text string
		dst  **auditchain.Anchor
	}{{*anchorText, &anchor}, {*fromText, &from}} {
		if a.text == "" {
			continue
		}
		if *a.dst, err = auditchain.ParseAnchor(a.text); err != nil {
			fmt.Fprintf(stderr, "tripwire audit verify: %v\n", err)
			return 2
		}
	}
	path := pos[0]
	var rep auditchain.Report
	var start auditchain.Anchor
	files := auditchain.Files(path)
	what := path
	if from == nil && len(files) > 1 {
		// The live log with its rotated files: one chain, oldest first.
		var set auditchain.SetReport
		set, err = auditchain.VerifySet(path, anchor)
		rep, start = set.Report, set.Start
		what = fmt.Sprintf("%s (and %d rotated)", path, len(files)-1)
	} else {
		rep, start, err = auditchain.VerifyFileFrom(path, from, anchor)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tripwire audit verify: %s: unreadable: %v\n", path, unwrapPath(err))
		return 2
	}
	if rep.Break != nil {
		fmt.Fprintf(stdout, "%s: TAMPERED: %s\n", what, rep.Break)
		return 1
	}
	fmt.Fprintf(stdout, "%s: intact: %d entries, head seq %d hash %s\n", what, rep.Entries, rep.LastSeq, rep.LastHash)
	if start.Seq > 0 && from == nil {
		fmt.Fprintf(stdout, "starts after seq %d hash %s, in a file no longer here: confirm that link with --from or an anchor from the collector\n", start.Seq, start.Hash)
	}
	return 0
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// enroll gets the host's first certificate for a key made here, with a
// one-time bootstrap token read from a file (not an argument: ps shows
// those to every user).
func enroll(args []string, stdout, stderr io.Writer) int {
	fs := flags("enroll", "enroll --endpoint URL --ca FILE --host NAME --token-file FILE --cert FILE --key FILE", stderr)
	var e management.Enrollment
	fs.StringVar(&e.Endpoint, "endpoint", "", "the collector's OpAMP `url` (wss://host:4320/v1/opamp)")
	fs.StringVar(&e.CA, "ca", "", "the CA `file` that signed the collector's certificate")
	fs.StringVar(&e.ServerName, "server-name", "", "the `name` to check in the collector's certificate (default: the URL's host)")
	fs.StringVar(&e.Host, "host", "", "this host's `name`, the one the token was issued for")
	tokenFile := fs.String("token-file", "", "the `file` holding the token from tripwire pki token")
	fs.StringVar(&e.Cert, "cert", "", "where to write the certificate (`file`)")
	fs.StringVar(&e.Key, "key", "", "where to write the key (`file`, mode 0600)")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 || e.Endpoint == "" || e.CA == "" || e.Host == "" || *tokenFile == "" || e.Cert == "" || e.Key == "" {
		fs.Usage()
		return 2
	}
	b, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "tripwire enroll: %v\n", err)
		return 1
	}
	e.Token = strings.TrimSpace(string(b))
	if !pki.IsToken(e.Token) {
		fmt.Fprintf(stderr, "tripwire enroll: %s does not hold a bootstrap token\n", *tokenFile)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cert, err := management.Enroll(ctx, e)
	if err != nil {
		fmt.Fprintf(stderr, "tripwire enroll: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "enrolled %s: certificate %s (serial %s, not after %s), key %s\n", e.Host, e.Cert,
		cert.SerialNumber.Text(16), cert.NotAfter.UTC().Format(time.RFC3339), e.Key)
	return 0
}
