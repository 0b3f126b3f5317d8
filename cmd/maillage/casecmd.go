package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/maillage/maillage/adapters/feeds"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

const caseUsage = `Usage:
  maillage case erase <case id> --reason TEXT [--server URL --token TOKEN]
      destroy the key of the case's personal data (crypto-shredding): those
      fields read "[effacé]" everywhere from then on, the hash chain still
      verifies, nothing more can be recorded on the case, and the partner
      feeds keep only an erase notice of it. Through a
      running server's API with --server (an auditor's or admin's token), or
      on the store directly (--data DIR | --nats URL, --by NAME, and
      --feeds-nats URLS when the feeds are on a NATS cluster), acting as
      an admin. See docs/personal-data.md.
`

func runCase(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "erase" {
		fmt.Fprint(stderr, caseUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return errors.New(`case: only "case erase" exists`)
	}
	fs := flag.NewFlagSet("maillage case erase", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.add(fs)
	reason := fs.String("reason", "", "why: end of the retention period, a decision... (required)")
	server := fs.String("server", env("MAILLAGE_SERVER", ""), "base URL of a running server, e.g. http://localhost:8080: erase through its API (env MAILLAGE_SERVER)")
	token := fs.String("token", env("MAILLAGE_TOKEN", ""), "with --server: an auditor's or admin's bearer token (env MAILLAGE_TOKEN)")
	by := fs.String("by", "", "without --server: your name, recorded with the erasure")
	feedsNATS := fs.String("feeds-nats", env("MAILLAGE_FEEDS_NATS", ""), "without --server: the NATS cluster holding the partner feeds (serve --feeds-nats), cleared too (env MAILLAGE_FEEDS_NATS)")
	// The case id comes first: "case erase <id> --reason ...".
	rest := args[1:]
	var caseArg string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		caseArg, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if caseArg == "" && fs.NArg() > 0 {
		caseArg = fs.Arg(0)
	}
	if caseArg == "" || strings.TrimSpace(*reason) == "" {
		fmt.Fprint(stderr, caseUsage)
		return errors.New("case erase : donnez le dossier et --reason")
	}
	id, err := parseCase(caseArg)
	if err != nil {
		return err
	}
	if *server != "" {
		return eraseThroughAPI(ctx, *server, *token, id, *reason, stdout)
	}
	env, err := openAuditEnv(ctx, sf)
	if err != nil {
		return err
	}
	defer env.Close()
	feedsNote := "flux partenaires : aucun dans " + filepath.Join(sf.data, "feeds") +
		" (si les flux sont sur un cluster NATS : refaites l'effacement avec --feeds-nats, ou par le serveur en marche, --server, pour les vider)"
	clearFeeds := cases.WithOnErase(func(ctx context.Context, id domain.CaseID) error {
		n, cleared, err := eraseFromFeeds(ctx, sf, *feedsNATS, env.events, id)
		if cleared {
			feedsNote = fmt.Sprintf("flux partenaires : dossier retiré de %d flux (avis d'effacement envoyé)", n)
		}
		return err
	})
	svc, err := cases.New(env.events, cases.WithPersonalData(env.keys), clearFeeds)
	if err != nil {
		return err
	}
	name := strings.TrimSpace(*by)
	if name == "" {
		name = "maillage case erase (ligne de commande)"
	}
	rec, err := svc.Erase(ctx, cases.EraseRequest{CaseID: id, Role: domain.RoleAdmin, Name: name, Reason: *reason})
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return errors.New(de.Message)
		}
		if errors.Is(err, cases.ErrNotFound) {
			return fmt.Errorf("aucun dossier %s dans ce journal", id)
		}
		return err
	}
	fmt.Fprintf(stdout, "dossier %s : données personnelles effacées le %s par %s (%s)\n", id, rec.At.Format(time.RFC3339), rec.Name, rec.Reason)
	fmt.Fprintln(stdout, feedsNote)
	return nil
}

// eraseFromFeeds removes an erased case from the partner feeds: on the NATS
// cluster holding them (feedsNATS, with the authority of <data>/feeds), or
// kept in the data directory (<data>/feeds), which only a stopped server
// leaves free; cleared is false when there are none there.
func eraseFromFeeds(ctx context.Context, sf storeFlags, feedsNATS string, events domain.EventStore, id domain.CaseID) (n int, cleared bool, err error) {
	dir := filepath.Join(sf.data, "feeds")
	if feedsNATS != "" {
		evs, err := events.ReadCase(ctx, id, 0)
		if err != nil || len(evs) == 0 {
			return 0, false, err
		}
		srv, err := feeds.ConnectCluster(ctx, dir, feedsNATS, feeds.WithServerLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return 0, false, fmt.Errorf("flux partenaires sur le cluster NATS : %w", err)
		}
		defer srv.Close()
		if n, err = feeds.EraseCase(ctx, srv.Conn(), evs[len(evs)-1]); err != nil {
			return n, false, fmt.Errorf("flux partenaires (refaites l'effacement pour finir) : %w", err)
		}
		return n, true, nil
	}
	if sf.nats != "" {
		// The feeds belong to a server that may be running: only it may
		// clear them (maillage case erase --server), or erase again once it
		// is stopped.
		return 0, false, fmt.Errorf("les flux partenaires de %s n'ont pas été vidés : refaites l'effacement avec --server (serveur en marche) ou avec --data seulement (serveur arrêté)", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); errors.Is(err, os.ErrNotExist) {
		return 0, false, nil // no embedded feed server here (none, or feeds on a NATS cluster)
	}
	evs, err := events.ReadCase(ctx, id, 0)
	if err != nil || len(evs) == 0 {
		return 0, false, err
	}
	srv, err := feeds.StartServer(ctx, dir, feeds.WithServerLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, false, fmt.Errorf("flux partenaires : %w", err)
	}
	defer srv.Close()
	n, err = feeds.EraseCase(ctx, srv.Conn(), evs[len(evs)-1])
	if err != nil {
		return n, false, fmt.Errorf("flux partenaires (refaites l'effacement pour finir) : %w", err)
	}
	return n, true, nil
}

func eraseThroughAPI(ctx context.Context, server, token string, id domain.CaseID, reason string, stdout io.Writer) error {
	if token == "" {
		return errors.New("case erase --server : donnez le jeton d'un auditeur ou d'un administrateur (--token ou MAILLAGE_TOKEN)")
	}
	body, _ := json.Marshal(map[string]string{"reason": reason})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/v1/cases/"+id.String()+"/erase", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("serveur %s : %w", server, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			return fmt.Errorf("effacement refusé (%d) : %s", resp.StatusCode, p.Detail)
		}
		return fmt.Errorf("effacement refusé (%d)", resp.StatusCode)
	}
	_, err = stdout.Write(b)
	return err
}
