package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/adapters/jetstream/backup"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

const backupUsage = `Usage:
  maillage backup --out FILE [--data DIR | --nats URL] [--with-signing-key]
      back up the store while it runs: events, signed heads, access log and
      its seals, the per-case keys (or erasure records), the institution
      directory; the signing key only with --with-signing-key
  maillage backup --erasures-only --out FILE [--data DIR | --nats URL]
      export the erasure records only, for a restore of an older backup
  maillage restore --in FILE --data NEWDIR --erasures LIST [...]
      restore a backup into a new, empty data directory, re-applying the
      erasures of LIST (taken after the backup), then: maillage serve --data NEWDIR

A server running on --data holds it: start it with --nats-listen
127.0.0.1:4222 and pass --nats nats://127.0.0.1:4222 (and --data, for the
directory's files). See docs/operations.md, "Backup and restore".
`

// backedUpFiles are the data directory's files a backup keeps; the
// signing key is added with --with-signing-key. Left out: the read
// models' snapshot (rebuilt at start), the lock, the feeds (rebuilt by the
// relay; feeds/authority.json is a secret to keep apart, as the key).
var backedUpFiles = []string{"directory.json", "signing.pub"}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backupUsage); fs.PrintDefaults() }
	data := fs.String("data", env("MAILLAGE_DATA", "data"), "data directory: its embedded store (server stopped), and its files (env MAILLAGE_DATA)")
	natsURL := fs.String("nats", env("MAILLAGE_NATS", ""), "NATS URL(s) of the running store (serve --nats-listen, or the cluster of serve --nats), instead of the embedded store (env MAILLAGE_NATS)")
	out := fs.String("out", "", "the backup file to write (required; never replaced)")
	withKey := fs.Bool("with-signing-key", false, "also keep <data>/signing.key, the private key of the signed heads and seals: the file is then a secret")
	erasuresOnly := fs.Bool("erasures-only", false, "write the erasure records only (no key, no event): the list a restore of an older backup needs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backup : argument inattendu %q (voir maillage backup -h)", fs.Arg(0))
	}
	if *out == "" {
		fmt.Fprint(stderr, backupUsage)
		return errors.New("backup : --out FICHIER est obligatoire")
	}
	if *withKey && *erasuresOnly {
		return errors.New("backup : --with-signing-key n'a pas de sens avec --erasures-only")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("backup : %s existe déjà : une sauvegarde n'en remplace jamais une autre, choisissez un autre nom", *out)
	}
	files := append([]string(nil), backedUpFiles...)
	if *withKey {
		if _, err := os.Stat(filepath.Join(*data, "signing.key")); err != nil {
			return fmt.Errorf("backup --with-signing-key : pas de clé de signature dans %s (le serveur utilise-t-il --signing-key ? sauvegardez ce fichier vous-même) : %w", *data, err)
		}
		files = append(files, "signing.key")
	}
	nc, source, closeStore, err := openBackupSource(*data, *natsURL)
	if err != nil {
		return err
	}
	defer closeStore()

	opts := []backup.Option{backup.WithSource(source)}
	if *erasuresOnly {
		opts = append(opts, backup.WithErasuresOnly())
	} else if _, err := os.Stat(*data); err == nil {
		opts = append(opts, backup.WithFiles(*data, files...))
	}
	line := newProgressLine(stderr, "sauvegarde")
	opts = append(opts, backup.WithProgress(line.update))
	sum, err := writeBackup(ctx, nc, *out, opts)
	line.finish()
	if err != nil {
		return err
	}
	if *erasuresOnly {
		fmt.Fprintf(stdout, "liste des effacements → %s : %d dossier(s) effacé(s), lus le %s\n", *out, sum.Erasures, sum.KeysFrom.Format(time.RFC3339))
		fmt.Fprintln(stdout, "donnez-la à maillage restore --erasures pour réappliquer ces effacements à une sauvegarde plus ancienne")
		return nil
	}
	fmt.Fprintf(stdout, "sauvegarde → %s (vérifiée, empreinte SHA-256 %s)\n", *out, sum.SHA256)
	for _, s := range sum.Streams {
		fmt.Fprintf(stdout, "  %-24s %d messages (séquences %d à %d), %s\n", s.Name, s.Messages, s.FirstSeq, s.LastSeq, octets(s.Bytes))
	}
	fmt.Fprintf(stdout, "  clés des dossiers         %d clés, %d effacements\n", sum.Keys, sum.Erasures)
	if len(sum.Files) > 0 {
		fmt.Fprintf(stdout, "  fichiers                  %s\n", strings.Join(sum.Files, ", "))
	}
	if !*withKey {
		fmt.Fprintln(stdout, "clé de signature : pas dans la sauvegarde (--with-signing-key pour l'y mettre) ; sans elle, le serveur restauré signe avec une nouvelle clé")
	} else {
		fmt.Fprintln(stdout, "clé de signature : dans la sauvegarde : ce fichier est un secret, gardez-le comme la clé")
	}
	fmt.Fprintln(stdout, "ce fichier contient les clés des données personnelles : ne le gardez pas au-delà de la durée de conservation")
	fmt.Fprintf(stdout, "effacements : ceux d'avant le %s sont dans la sauvegarde ; à la restauration, donnez une liste prise après (maillage backup --erasures-only)\n",
		sum.KeysUntil.Format(time.RFC3339))
	return nil
}

// openBackupSource connects to the store: at natsURL, or embedded under
// data (refused while a server holds it).
func openBackupSource(data, natsURL string) (*nats.Conn, string, func(), error) {
	if natsURL != "" {
		nc, err := nats.Connect(natsURL, nats.Name("maillage-backup"))
		if err != nil {
			return nil, "", nil, fmt.Errorf("NATS %s : %w", natsURL, err)
		}
		return nc, "nats", nc.Close, nil
	}
	dir := filepath.Join(data, "jetstream")
	if _, err := os.Stat(dir); err != nil {
		return nil, "", nil, fmt.Errorf("aucun magasin dans %s (choisissez le répertoire avec --data, ou le serveur avec --nats) : %w", dir, err)
	}
	lock, err := lockData(data)
	if errors.Is(err, errDataInUse) {
		return nil, "", nil, fmt.Errorf("le répertoire de données %s est ouvert par un serveur en marche : pour le sauvegarder sans l'arrêter, "+
			"lancez-le avec --nats-listen 127.0.0.1:4222 et passez ici --nats nats://127.0.0.1:4222 --data %s", data, data)
	}
	if err != nil {
		return nil, "", nil, err
	}
	srv, err := backup.StartEmbedded(dir)
	if err != nil {
		lock.Close()
		return nil, "", nil, err
	}
	return srv.Conn(), "embedded", func() { srv.Close(); lock.Close() }, nil
}

// writeBackup writes the backup next to out, checks it by reading it
// again, then gives it its name: a file named out is always whole.
func writeBackup(ctx context.Context, nc *nats.Conn, out string, opts []backup.Option) (backup.Summary, error) {
	partial := out + ".partial"
	f, err := os.OpenFile(partial, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return backup.Summary{}, fmt.Errorf("backup : %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(partial)
		}
	}()
	sum, err := backup.Backup(ctx, nc, f, opts...)
	if err != nil {
		return sum, fmt.Errorf("sauvegarde interrompue (rien n'est écrit sous %s) : %w", out, err)
	}
	if err := f.Sync(); err != nil {
		return sum, fmt.Errorf("backup : %w", err)
	}
	if err := f.Close(); err != nil {
		return sum, fmt.Errorf("backup : %w", err)
	}
	if _, err := readBackup(partial, io.Discard); err != nil {
		return sum, fmt.Errorf("la sauvegarde écrite ne se relit pas (disque ?) : %w", err)
	}
	if _, err := os.Stat(out); err == nil {
		return sum, fmt.Errorf("backup : %s a été créé entre-temps : la sauvegarde reste dans %s", out, partial)
	}
	if err := os.Rename(partial, out); err != nil {
		return sum, fmt.Errorf("backup : %w", err)
	}
	done = true
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
	return sum, nil
}

// readBackup reads and checks a whole file, with progress on stderr's
// terminal.
func readBackup(path string, stderr io.Writer) (backup.Contents, error) {
	f, err := os.Open(path)
	if err != nil {
		return backup.Contents{}, err
	}
	defer f.Close()
	r, finish := newCountingReader(f, stderr, "vérification de "+filepath.Base(path))
	c, err := backup.Read(r)
	finish()
	if errors.Is(err, backup.ErrDamaged) {
		return c, fmt.Errorf("%s n'est pas une sauvegarde entière (coupée, modifiée ou d'un autre format) : %w", path, err)
	}
	return c, err
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backupUsage); fs.PrintDefaults() }
	in := fs.String("in", "", "the backup file (required)")
	data := fs.String("data", "", "the new data directory: missing or empty (required)")
	var lists []string
	fs.Func("erasures", "an erasure list taken after the backup (maillage backup --erasures-only), or a newer backup; again for more", func(p string) error {
		lists = append(lists, p)
		return nil
	})
	stale := fs.Bool("accept-stale-erasures", false, "restore without an erasure list taken after the backup: erasures made since are NOT re-applied")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("restore : argument inattendu %q (voir maillage restore -h)", fs.Arg(0))
	}
	if *in == "" || *data == "" {
		fmt.Fprint(stderr, backupUsage)
		return errors.New("restore : --in FICHIER et --data NOUVEAU_RÉPERTOIRE sont obligatoires")
	}
	if err := backup.CheckEmpty(*data); err != nil {
		if errors.Is(err, backup.ErrNotEmpty) {
			return fmt.Errorf("le répertoire %s n'est pas vide : une restauration ne se fait que dans un répertoire neuf (ou vide), où rien n'est remplacé ; "+
				"donnez un autre --data, ou videz celui-ci après avoir vérifié que rien n'y sert plus", *data)
		}
		return err
	}
	c, err := readBackup(*in, stderr)
	if err != nil {
		return err
	}
	if c.Header.Kind != backup.KindFull {
		return fmt.Errorf("%s est une liste d'effacements, pas une sauvegarde : donnez-la avec --erasures, et la sauvegarde avec --in", *in)
	}
	erasures, note, err := laterErasures(c, lists, *stale, stderr)
	if err != nil {
		return err
	}

	created := false
	if _, err := os.Stat(*data); errors.Is(err, os.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("restore : %w", err)
	}
	rep, err := restoreInto(ctx, *in, *data, erasures, stderr)
	if err != nil {
		clearDir(*data, created)
		return fmt.Errorf("restauration interrompue, %s est laissé vide : %w", *data, err)
	}
	fmt.Fprintf(stdout, "restauré dans %s, depuis la sauvegarde du %s :\n", *data, c.Header.StartedAt.Format(time.RFC3339))
	for _, s := range rep.Streams {
		fmt.Fprintf(stdout, "  %-24s %d messages (séquences %d à %d)\n", s.Name, s.Messages, s.FirstSeq, s.LastSeq)
	}
	fmt.Fprintf(stdout, "  clés des dossiers         %d clés, %d dossiers effacés dont %d effacés après la sauvegarde\n", rep.Keys, rep.Erased, rep.Later)
	if len(rep.Files) > 0 {
		fmt.Fprintf(stdout, "  fichiers                  %s\n", strings.Join(rep.Files, ", "))
	}
	fmt.Fprintln(stdout, note)
	withKey := false
	for _, f := range rep.Files {
		withKey = withKey || f == "signing.key"
	}
	if !withKey {
		fmt.Fprintf(stdout, "clé de signature : pas dans la sauvegarde : le serveur en fera une nouvelle (ou donnez l'ancienne avec --signing-key) ; "+
			"les têtes signées restaurées se vérifient avec l'ancienne clé publique, %s (audit verify --pubkey %s --pubkey %s)\n",
			filepath.Join(*data, backup.SigningPubBefore), filepath.Join(*data, backup.SigningPubBefore), filepath.Join(*data, "signing.pub"))
	}
	fmt.Fprintln(stdout, "flux partenaires : pas dans la sauvegarde, le relais les remplit de nouveau depuis les événements ; copiez feeds/authority.json de l'ancien répertoire pour garder les accréditations des partenaires")
	fmt.Fprintf(stdout, "démarrez le serveur : maillage serve --data %s\n", *data)
	return nil
}

// laterErasures reads the erasure lists and checks that they were taken
// after the backup read the keys; without one, the restore is refused
// unless stale is set. note says, in French, what was re-applied.
func laterErasures(c backup.Contents, lists []string, stale bool, stderr io.Writer) (map[domain.CaseID]personal.Erasure, string, error) {
	until := c.Summary.KeysUntil
	out := map[domain.CaseID]personal.Erasure{}
	newest := time.Time{}
	for _, p := range lists {
		l, err := readBackup(p, stderr)
		if err != nil {
			return nil, "", err
		}
		if l.Summary.KeysFrom.Before(until) && !stale {
			return nil, "", fmt.Errorf("la liste %s a été prise le %s, avant la fin de la sauvegarde (%s) : les effacements faits entre les deux "+
				"ne seraient pas réappliqués ; exportez une liste du magasin en service maintenant (maillage backup --erasures-only), "+
				"ou, si elle est la plus récente que vous ayez, ajoutez --accept-stale-erasures",
				p, l.Summary.KeysFrom.Format(time.RFC3339), until.Format(time.RFC3339))
		}
		for id, rec := range l.Erasures {
			out[id] = rec
		}
		if l.Summary.KeysFrom.After(newest) {
			newest = l.Summary.KeysFrom
		}
	}
	switch {
	case len(lists) == 0 && !stale:
		return nil, "", fmt.Errorf("la sauvegarde a lu les clés le %s : les effacements enregistrés depuis ne seraient pas réappliqués, "+
			"et les dossiers effacés depuis redeviendraient lisibles. Exportez la liste des effacements du magasin en service "+
			"(maillage backup --erasures-only --nats URL --out effacements.mbk) et donnez-la avec --erasures effacements.mbk ; "+
			"si ce magasin est perdu, donnez la liste la plus récente que vous ayez, ou --accept-stale-erasures", until.Format(time.RFC3339))
	case len(lists) == 0:
		return out, fmt.Sprintf("ATTENTION : aucune liste d'effacements : ceux faits après le %s ne sont PAS réappliqués", until.Format(time.RFC3339)), nil
	case newest.Before(until):
		return out, fmt.Sprintf("ATTENTION : la liste d'effacements la plus récente date du %s, avant la sauvegarde : ceux faits depuis ne sont PAS réappliqués", newest.Format(time.RFC3339)), nil
	}
	return out, fmt.Sprintf("effacements réappliqués jusqu'au %s (%d dans les listes données)", newest.Format(time.RFC3339), len(out)), nil
}

// restoreInto restores the backup file into data's embedded store.
func restoreInto(ctx context.Context, in, data string, erasures map[domain.CaseID]personal.Erasure, stderr io.Writer) (backup.Report, error) {
	lock, err := lockData(data)
	if err != nil {
		return backup.Report{}, err
	}
	defer lock.Close()
	srv, err := backup.StartEmbeddedForRestore(filepath.Join(data, "jetstream"))
	if err != nil {
		return backup.Report{}, err
	}
	f, err := os.Open(in)
	if err != nil {
		srv.Close()
		return backup.Report{}, err
	}
	defer f.Close()
	r, finish := newCountingReader(f, stderr, "restauration")
	rep, err := backup.Restore(ctx, srv.Conn(), r, data, erasures)
	finish()
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	return rep, err
}

// clearDir empties a directory the restore found empty (or removes it,
// when it made it).
func clearDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// isTerminal reports whether w is a terminal: progress is drawn only there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine shows on a terminal what a backup is writing.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	drawn time.Time
	shown bool
}

func newProgressLine(w io.Writer, label string) *progressLine {
	if !isTerminal(w) {
		w = nil
	}
	return &progressLine{w: w, label: label}
}

func (p *progressLine) update(stage string, done uint64) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn, p.shown = time.Now(), true
	fmt.Fprintf(p.w, "\r%s : %-24s %s écrits   ", p.label, stage, octets(done))
}

func (p *progressLine) finish() {
	if p.w != nil && p.shown {
		fmt.Fprintln(p.w)
	}
}

// countingReader draws the progress of reading a file on a terminal.
type countingReader struct {
	r    io.Reader
	bar  *progressBar
	read uint64
}

// newCountingReader returns f, read with a progress bar when stderr is a
// terminal, and what ends the bar.
func newCountingReader(f *os.File, stderr io.Writer, label string) (io.Reader, func()) {
	st, err := f.Stat()
	if err != nil || !isTerminal(stderr) {
		return f, func() {}
	}
	c := &countingReader{r: f, bar: newProgressBar(stderr, label, max(1, uint64(st.Size())>>20), "Mio")}
	return c, c.bar.finish
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.read += uint64(n)
	c.bar.update(c.read>>20, int(c.read>>20))
	return n, err
}

func octets(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f Gio", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f Mio", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f Kio", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d octets", n)
}
