// Command maillage is Maillage's one binary. It only wires: the domain,
// projections and adapters do the work.
//
//	maillage serve [--data DIR] [--addr :8080] [--nats URL] [--demo]
//	maillage admin institution add|list ...
//	maillage admin token issue ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `maillage: the shared support plan and auditable history of a child in care.

Usage:
  maillage serve [flags]                run the API server (embedded NATS JetStream by default)
  maillage admin institution add [...]  register an institution in the directory
  maillage admin institution list       list the directory's institutions
  maillage admin token issue [...]      issue a bearer token (shown once)
  maillage bench <scenario> [flags]     measure append, fanout, read, rebuild or verify (docs/benchmarks.md)
  maillage projections rebuild|bench    rebuild the read models and their snapshot; measure them (docs/projections.md)
  maillage audit verify|replay|export   check hash chains and signed heads; a case as of a date; export (docs/audit.md)
  maillage case erase <case> --reason   destroy a case's personal data (docs/personal-data.md)
  maillage backup --out FILE            back up the running store consistently; --erasures-only: the erasure list (docs/operations.md)
  maillage restore --in FILE --data DIR restore a backup into a new data directory, re-applying later erasures
  maillage partner credentials <inst>   issue the NATS credentials of an institution's partner feed (docs/feeds.md)
  maillage partner revoke <inst>        revoke every credentials issued to an institution until now
  maillage partner cluster-config       the nats-server stanza a NATS cluster needs to carry the feeds (--feeds-nats)
  maillage feed tail --creds FILE       read a partner feed as it arrives and verify its hash chains

Run "maillage <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "maillage:", err)
		os.Exit(1)
	}
}

// run dispatches a command line; tests call it as the binary would be called.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New(`no command given: try "maillage serve"`)
	}
	switch args[0] {
	case "serve":
		m := NewMain(stdout, stderr)
		if err := m.ParseFlags(args[1:]); err != nil {
			return err
		}
		return m.Serve(ctx)
	case "admin":
		return runAdmin(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "projections":
		return runProjections(ctx, args[1:], stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], stdout, stderr)
	case "case":
		return runCase(ctx, args[1:], stdout, stderr)
	case "backup":
		return runBackup(ctx, args[1:], stdout, stderr)
	case "restore":
		return runRestore(ctx, args[1:], stdout, stderr)
	case "partner":
		return runPartner(ctx, args[1:], stdout, stderr)
	case "feed":
		return runFeed(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q: see the list above", args[0])
}
