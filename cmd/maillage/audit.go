package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/adapters/jetstream/casekeys"
	"github.com/maillage/maillage/adapters/jetstream/checkpoints"
	"github.com/maillage/maillage/adapters/kurrentdb"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/domain/personal"
	"github.com/maillage/maillage/internal/reads"
)

const auditUsage = `Usage:
  maillage audit verify [--case ID] [--pubkey FILE ...] [--data DIR | --nats URL]
      check the hash chain of every case (or one) in the event store and the
      access log against its seals; with --pubkey (again for each former
      key, after a rotation), also the signatures, and that every chain goes
      through its signed heads
  maillage audit verify --file EXPORT.jsonl [--pubkey FILE ...]
      check an export offline, with the same code
  maillage audit replay --case ID --as-of T [--event N] [--data DIR | --nats URL]
      the case as it was at T, and what each viewer could see then; with
      --event, who could see event N at T, and why
  maillage audit export --case ID [--out FILE] [--purpose TEXT] [--data DIR | --nats URL]
      the case's full history as JSON lines, with its hash fields and its
      latest signed head (recorded in the access log)
  maillage audit pubkey [--data DIR | --signing-key FILE]
      print the public key that checks the signed heads

The store is the embedded one under --data, which only one process may open:
stop the server first, or start it with --nats-listen 127.0.0.1:4222 and
pass --nats nats://127.0.0.1:4222. See docs/audit.md.
`

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errors.New("audit: verify, replay, export or pubkey?")
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "replay":
		return auditReplay(ctx, args[1:], stdout, stderr)
	case "export":
		return auditExport(ctx, args[1:], stdout, stderr)
	case "pubkey":
		return auditPubkey(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprint(stderr, auditUsage)
	return fmt.Errorf("audit: unknown command %q", args[0])
}

// storeFlags are the flags that say where the store is.
type storeFlags struct {
	data, nats, kurrent string
}

func (f *storeFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.data, "data", env("MAILLAGE_DATA", "data"), "data directory of the embedded store (env MAILLAGE_DATA)")
	fs.StringVar(&f.nats, "nats", env("MAILLAGE_NATS", ""), "NATS URL(s) of a running server or cluster, instead of the embedded store (env MAILLAGE_NATS)")
	fs.StringVar(&f.kurrent, "kurrentdb", "", "KurrentDB connection string, when it is the store of record (NATS still holds the keys, heads and access log)")
}

// auditEnv is what the audit commands open: the event store (raw: as
// stored), the keys, the signed heads and the access log.
type auditEnv struct {
	nats    *jetstream.Store
	events  domain.EventStore
	keys    *casekeys.Keys
	heads   *checkpoints.Heads
	access  *accesslog.Log
	lock    *os.File
	closers []func() error
}

// openAuditEnv opens the store like serve does: embedded under --data
// (refused while a server holds it), or at --nats.
func openAuditEnv(ctx context.Context, f storeFlags) (*auditEnv, error) {
	quiet := slog.New(slog.DiscardHandler)
	env := &auditEnv{}
	opts := []jetstream.Option{jetstream.WithLogger(quiet)}
	if f.nats != "" {
		opts = append(opts, jetstream.WithURL(f.nats))
	} else {
		dir := filepath.Join(f.data, "jetstream")
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("aucun journal d'événements dans %s (choisissez le répertoire avec --data) : %w", dir, err)
		}
		lock, err := lockData(f.data)
		if errors.Is(err, errDataInUse) {
			return nil, fmt.Errorf("le répertoire de données %s est ouvert par un serveur en marche : arrêtez-le, "+
				"ou lancez-le avec --nats-listen 127.0.0.1:4222 et passez ici --nats nats://127.0.0.1:4222", f.data)
		}
		if err != nil {
			return nil, err
		}
		env.lock = lock
		opts = append(opts, jetstream.WithEmbedded(dir))
	}
	var err error
	if env.nats, err = jetstream.Open(ctx, opts...); err != nil {
		env.Close()
		return nil, fmt.Errorf("journal d'événements : %w", err)
	}
	env.closers = append(env.closers, env.nats.Close)
	env.events = env.nats
	if f.kurrent != "" {
		k, err := kurrentdb.Open(ctx, kurrentdb.WithURL(f.kurrent), kurrentdb.WithLogger(quiet))
		if err != nil {
			env.Close()
			return nil, fmt.Errorf("journal d'événements (KurrentDB) : %w", err)
		}
		env.events = k
		env.closers = append([]func() error{k.Close}, env.closers...)
	}
	js := env.nats.JetStream()
	if env.keys, err = casekeys.Open(ctx, js, casekeys.WithLogger(quiet)); err != nil {
		env.Close()
		return nil, err
	}
	env.closers = append([]func() error{env.keys.Close}, env.closers...)
	if env.heads, err = checkpoints.OpenHeads(ctx, js); err != nil {
		env.Close()
		return nil, err
	}
	if env.access, err = accesslog.Open(ctx, js, accesslog.WithLogger(quiet), accesslog.WithPersonalData(env.keys)); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

func (e *auditEnv) Close() error {
	var errs []error
	for _, c := range e.closers {
		errs = append(errs, c())
	}
	e.closers = nil
	if e.lock != nil {
		e.lock.Close()
		e.lock = nil
	}
	return errors.Join(errs...)
}

// opened is the event store with personal data opened (or erased).
func (e *auditEnv) opened() domain.EventStore { return personal.NewStore(e.events, e.keys) }

func parseCase(s string) (domain.CaseID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("--case %q : identifiant de dossier (UUID) attendu", s)
	}
	return id, nil
}

func readPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--pubkey : %w", err)
	}
	return audit.ParsePublicKey(b)
}

// errChainBroken is what verify returns when a chain does not verify.
var errChainBroken = errors.New("hash chain broken")

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.add(fs)
	caseArg := fs.String("case", "", "verify this case only")
	var keys audit.Keys
	fs.Func("pubkey", "public key (PEM) of the server's signing key: also check the signed heads and the access log's seals; "+
		"give it again for each key the server had before a rotation", func(path string) error {
		pub, err := readPublicKey(path)
		if err != nil {
			return err
		}
		keys = append(keys, pub)
		return nil
	})
	file := fs.String("file", "", "verify this export (maillage audit export) instead of the store")
	if err := fs.Parse(args); err != nil {
		return err
	}
	signed := len(keys) > 0
	start := time.Now()
	if *file != "" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		x, err := audit.ReadExport(f)
		if err != nil {
			return err
		}
		rep, err := audit.VerifyExport(x, keys)
		if err != nil {
			return err
		}
		return printReport(stdout, rep, time.Since(start), signed)
	}
	var only domain.CaseID
	if *caseArg != "" {
		var err error
		if only, err = parseCase(*caseArg); err != nil {
			return err
		}
	}
	env, err := openAuditEnv(ctx, sf)
	if err != nil {
		return err
	}
	defer env.Close()
	var heads []audit.SignedHead
	if signed {
		all, err := env.heads.All(ctx, false)
		if err != nil {
			return fmt.Errorf("têtes signées : %w", err)
		}
		for _, h := range all {
			if only != uuid.Nil && h.CaseID != only {
				continue
			}
			if err := keys.VerifyHead(h); err != nil {
				return fmt.Errorf("tête signée du dossier %s (version %d, clé %s) : la signature ne vérifie avec aucune des clés données (%s) ; "+
					"après un changement de clé, donnez aussi l'ancienne clé publique avec un second --pubkey : %w",
					h.CaseID, h.Version, h.KeyID, strings.Join(keys.IDs(), ", "), err)
			}
			heads = append(heads, h)
		}
	}
	v := audit.NewVerifier(heads)
	if only != uuid.Nil {
		events, err := env.events.ReadCase(ctx, only, 0)
		if err != nil {
			return fmt.Errorf("lecture du dossier : %w", err)
		}
		if len(events) == 0 && len(heads) == 0 {
			return fmt.Errorf("aucun dossier %s dans ce journal", only)
		}
		for _, e := range events {
			v.Add(e)
		}
	} else {
		var total uint64
		if env.events == domain.EventStore(env.nats) {
			total, _ = lastSequence(ctx, env.nats)
		}
		bar := newProgressBar(stderr, "vérification", total, "événements")
		n := 0
		for e, err := range env.events.ReadAll(ctx, 0) {
			if err != nil {
				bar.finish()
				return fmt.Errorf("lecture du journal (après %d événements) : %w", n, err)
			}
			v.Add(e)
			n++
			seq, _ := jetstream.SplitPosition(e.Position)
			bar.update(seq, n)
		}
		bar.finish()
	}
	err = printReport(stdout, v.Finish(), time.Since(start), signed)
	if only != uuid.Nil {
		return err
	}
	// The access log, against its seals.
	start = time.Now()
	var bar *progressBar
	arep, aerr := env.access.VerifySeals(ctx, keys, func(seq, last uint64) {
		if bar == nil {
			bar = newProgressBar(stderr, "journal des accès", last, "enregistrements")
		}
		bar.update(seq, int(seq))
	})
	if bar != nil {
		bar.finish()
	}
	if aerr != nil {
		return errors.Join(err, fmt.Errorf("journal des accès : %w", aerr))
	}
	return errors.Join(err, printAccessReport(stdout, arep, time.Since(start), signed))
}

// errAccessLogBroken is what verify returns when a sealed range of the
// access log does not verify.
var errAccessLogBroken = errors.New("access log seal broken")

func printAccessReport(w io.Writer, rep audit.AccessReport, took time.Duration, signed bool) error {
	fmt.Fprintf(w, "journal des accès : %d enregistrements scellés vérifiés (%d scellement(s)", rep.Verified, rep.Seals)
	if signed {
		fmt.Fprint(w, ", signatures contrôlées")
	}
	fmt.Fprintf(w, ") en %s ; %d enregistrements pas encore scellés", took.Round(time.Millisecond), rep.Unsealed)
	if rep.Expired > 0 {
		fmt.Fprintf(w, " ; %d scellements portent sur des enregistrements expirés", rep.Expired)
	}
	fmt.Fprintln(w)
	if rep.OK() {
		fmt.Fprintln(w, "OK : aucun enregistrement scellé n'a été modifié, retiré ni ajouté.")
		return nil
	}
	for _, b := range rep.Breaks {
		switch b.Kind {
		case audit.AccessBreakChain:
			fmt.Fprintf(w, "RUPTURE journal des accès, scellement des enregistrements %d à %d : il ne suit pas le scellement précédent "+
				"(empreinte attendue %s, trouvée %s) : un scellement a été retiré ou modifié\n", b.From, b.To, b.Expected, b.Found)
		default:
			fmt.Fprintf(w, "RUPTURE journal des accès, enregistrements %d à %d : empreinte attendue %s, trouvée %s "+
				"(%d enregistrements lus, %d au scellement) : un enregistrement a été modifié, retiré ou ajouté\n",
				b.From, b.To, b.Expected, b.Found, b.Records, b.Sealed)
		}
	}
	first := rep.Breaks[0]
	return fmt.Errorf("%w: %d range(s); first: records %d to %d (%s)", errAccessLogBroken, len(rep.Breaks), first.From, first.To, first.Kind)
}

// breakWords says which field broke, in French.
var breakWords = map[string]string{
	audit.BreakSequence:   "numéro de séquence",
	audit.BreakLeaf:       "empreinte de l'événement (leafHash)",
	audit.BreakChain:      "empreinte de chaîne (chainHash)",
	audit.BreakSignedHead: "tête signée",
}

func printReport(w io.Writer, rep audit.Report, took time.Duration, signed bool) error {
	rate := float64(rep.Events) / max(took.Seconds(), 1e-9)
	fmt.Fprintf(w, "%d dossiers, %d événements vérifiés en %s (%.0f événements/s)", rep.Cases, rep.Events, took.Round(time.Millisecond), rate)
	if signed {
		fmt.Fprintf(w, " ; %d têtes signées contrôlées", rep.SignedHeads)
	}
	fmt.Fprintln(w)
	if rep.OK() {
		fmt.Fprintln(w, "OK : toutes les chaînes vérifient.")
		return nil
	}
	for _, b := range rep.Breaks {
		fmt.Fprintf(w, "RUPTURE dossier %s, maillon %d : %s attendu %s, trouvé %s", b.CaseID, b.Sequence, breakWords[b.Field], b.Expected, b.Found)
		if b.Position != 0 {
			msg, idx := jetstream.SplitPosition(b.Position)
			fmt.Fprintf(w, " (message %d, événement %d du message)", msg, idx)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Ces dossiers sont en lecture seule sur le serveur. Arrêtez-le, restaurez le répertoire de données depuis la dernière sauvegarde, "+
		"relancez maillage audit verify, puis redémarrez (docs/operations.md, « Dossiers endommagés »).")
	first := rep.Breaks[0]
	return fmt.Errorf("%w: %d case(s); first: case %s, link %d (%s)", errChainBroken, len(rep.Breaks), first.CaseID, first.Sequence, first.Field)
}

func auditReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage audit replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.add(fs)
	caseArg := fs.String("case", "", "the case (required)")
	asOf := fs.String("as-of", "", "the date, RFC 3339 (2026-03-05T18:00:00+01:00) or a day (2026-03-05, its end in UTC) (required)")
	event := fs.Uint64("event", 0, "who could see this event at that date, and why")
	purpose := fs.String("purpose", "", "why you read the case (recorded in the access log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *caseArg == "" || *asOf == "" {
		return errors.New("audit replay : --case et --as-of sont obligatoires")
	}
	id, err := parseCase(*caseArg)
	if err != nil {
		return err
	}
	at, err := parseAsOf(*asOf)
	if err != nil {
		return err
	}
	env, err := openAuditEnv(ctx, sf)
	if err != nil {
		return err
	}
	defer env.Close()
	rs, err := env.reads()
	if err != nil {
		return err
	}
	rp, err := rs.Replay(ctx, cliReader("audit replay --as-of "+at.Format(time.RFC3339)+" "+*purpose), id, at)
	if err != nil {
		return cliReadError(id, err)
	}
	writeReplay(stdout, rp)
	if *event == 0 {
		return nil
	}
	seen, err := rp.Who(*event)
	if err != nil {
		return fmt.Errorf("événement %d : pas encore enregistré le %s (le dossier était à la version %d)", *event, at.Format(time.RFC3339), rp.Version)
	}
	e := rp.Events[*event-1]
	fmt.Fprintf(stdout, "\nÉvénement %d (%s, catégorie %s, enregistré le %s) : qui pouvait le voir le %s, et pourquoi\n",
		e.Sequence, e.Type, e.Category, e.RecordedAt.Format(time.RFC3339), at.Format(time.RFC3339))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUI\tVISIBILITÉ\tRÈGLE\tFONDEMENT\tPOURQUOI")
	for _, s := range seen {
		basis := s.Decision.Basis
		if basis == "" {
			basis = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Label, visibilityWords[s.Decision.Visibility], s.Decision.Rule, basis, s.Why)
	}
	return tw.Flush()
}

var visibilityWords = map[domain.Visibility]string{domain.Full: "complet", domain.Redacted: "expurgé", domain.Hidden: "masqué"}

func parseAsOf(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.Parse("2006-01-02", s); err == nil {
		return d.Add(24*time.Hour - time.Nanosecond), nil
	}
	return time.Time{}, fmt.Errorf("--as-of %q : une date RFC 3339 (2026-03-05T18:00:00+01:00) ou un jour (2026-03-05) est attendu", s)
}

func writeReplay(w io.Writer, rp *audit.Replay) {
	st := rp.State
	fmt.Fprintf(w, "Dossier %s au %s : version %d, tête de chaîne %s\n", rp.CaseID, rp.AsOf.Format(time.RFC3339), rp.Version, rp.Head)
	if !st.Opened {
		fmt.Fprintln(w, "Le dossier n'était pas encore ouvert.")
		return
	}
	status := "ouvert"
	if st.Closed {
		status = "clôturé"
	}
	fmt.Fprintf(w, "Enfant %s, cadre %s, département %s, %s ; coordination : %s\n", st.ChildReference, st.LegalFrame, st.Departement, status, st.Coordinator)
	for _, c := range st.Consents {
		if c.ActiveAt(rp.AsOf) {
			fmt.Fprintf(w, "Consentement en vigueur : %s (catégories %v ; institutions %v ; types %v), du %s au %s\n", c.ID, c.Categories, c.Institutions, c.Kinds,
				c.From.Format("2006-01-02"), c.Until.Format("2006-01-02"))
		}
	}
	for _, r := range st.Restrictions {
		if r.ActiveAt(rp.AsOf) {
			fmt.Fprintf(w, "Ordonnance en vigueur : %s (%s, %s), du %s au %s\n", r.OrderReference, r.Kind, r.Court, r.From.Format("2006-01-02"), r.Until.Format("2006-01-02"))
		}
	}
	fmt.Fprintf(w, "\nCe que chacun pouvait voir des %d événements :\n", rp.Version)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUI\tCOMPLETS\tEXPURGÉS\tMASQUÉS")
	for _, c := range rp.Counts() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", c.Label, c.Full, c.Redacted, c.Hidden)
	}
	tw.Flush()
}

// reads is the reads service over the audited store: every read an
// operator of the audit tools makes is decided and recorded there, as the
// server's are.
func (e *auditEnv) reads() (*reads.Service, error) {
	svc, err := cases.New(e.events, cases.WithPersonalData(e.keys))
	if err != nil {
		return nil, err
	}
	return reads.New(svc, reads.WithAccessLog(e.access), reads.WithSignedHeads(e.heads)), nil
}

// cliReader is an operator of the audit tools: an auditor, with the
// purpose given.
func cliReader(purpose string) reads.Reader {
	return reads.Reader{Viewer: domain.Viewer{Role: domain.RoleAuditor}, Purpose: strings.TrimSpace(purpose)}
}

// cliReadError says in French what to do about a failed read.
func cliReadError(id domain.CaseID, err error) error {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return fmt.Errorf("aucun dossier %s dans ce journal : vérifiez l'identifiant et --data", id)
	case errors.Is(err, reads.ErrNotRecorded):
		return fmt.Errorf("la consultation n'a pas pu être inscrite au journal des accès : elle n'est pas faite ; réessayez : %w", err)
	}
	return fmt.Errorf("lecture du dossier : %w", err)
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.add(fs)
	caseArg := fs.String("case", "", "the case (required)")
	out := fs.String("out", "", "write to this file (default: standard output)")
	purpose := fs.String("purpose", "", "why you export the case (recorded in the access log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *caseArg == "" {
		return errors.New("audit export : --case est obligatoire")
	}
	id, err := parseCase(*caseArg)
	if err != nil {
		return err
	}
	env, err := openAuditEnv(ctx, sf)
	if err != nil {
		return err
	}
	defer env.Close()
	rs, err := env.reads()
	if err != nil {
		return err
	}
	var body bytes.Buffer
	version, err := rs.Export(ctx, cliReader("audit export "+*purpose), id, &body)
	if err != nil {
		return cliReadError(id, err)
	}
	w := stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if _, err := w.Write(body.Bytes()); err != nil {
		return err
	}
	if *out != "" {
		fmt.Fprintf(stderr, "export du dossier %s : %d événements → %s\n", id, version, *out)
	}
	return nil
}

func auditPubkey(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage audit pubkey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("MAILLAGE_DATA", "data"), "data directory holding signing.key (env MAILLAGE_DATA)")
	keyPath := fs.String("signing-key", env("MAILLAGE_SIGNING_KEY", ""), "the signing key (PEM), instead of <data>/signing.key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *keyPath
	if path == "" {
		path = filepath.Join(*data, "signing.key")
	}
	key, err := readSigningKey(path)
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	pem, err := audit.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "clé %s\n", audit.KeyID(pub))
	_, err = stdout.Write(pem)
	return err
}
