package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/adapters/feeds"
	"github.com/maillage/maillage/domain"
)

const partnerUsage = `Usage: maillage partner credentials <institution> [flags]

Issues the NATS credentials of an institution's partner feed: they read that
feed and nothing else. They are made offline from the keys under
<data>/feeds; a running server accepts them at once.

Flags:
`

// runPartner issues partner credentials.
func runPartner(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage partner credentials", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, partnerUsage); fs.PrintDefaults() }
	data := fs.String("data", env("MAILLAGE_DATA", "data"), "data directory (env MAILLAGE_DATA)")
	valid := fs.Duration("valid", feeds.DefaultValidity, "how long the credentials stay valid")
	out := fs.String("out", "", "write the credentials to this file (mode 0600) rather than to the standard output")
	if len(args) == 0 || args[0] != "credentials" {
		fs.Usage()
		return errors.New(`partner : préciser la commande, par exemple « maillage partner credentials mecs-les-tilleuls »`)
	}
	args = args[1:]
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fs.Usage()
		return errors.New("partner credentials : préciser l'identifiant de l'institution, par exemple mecs-les-tilleuls")
	}
	inst := domain.InstitutionID(args[0])
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("partner credentials : argument inattendu %q", fs.Arg(0))
	}
	dir, err := directory.Open(filepath.Join(*data, "directory.json"))
	if err != nil {
		return err
	}
	if _, err := dir.Institution(inst); err != nil {
		return fmt.Errorf("institution %q inconnue de l'annuaire (voir « maillage admin institution list ») : %w", inst, err)
	}
	auth, err := feeds.OpenAuthority(filepath.Join(*data, "feeds"))
	if err != nil {
		return err
	}
	now := time.Now()
	creds, err := auth.PartnerCredentials(inst, *valid, now)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(creds)
	} else {
		err = os.WriteFile(*out, creds, 0o600)
	}
	if err != nil {
		return err
	}
	where := "ci-dessus"
	if *out != "" {
		where = "dans " + *out
	}
	fmt.Fprintf(stderr, "Identifiants du flux partenaire de %s %s, valables jusqu'au %s.\n"+
		"Ils donnent accès à ce flux seulement : remettez-les par un canal sûr.\n"+
		"Lecture : maillage feed tail --url nats://<serveur>:<port> --creds <fichier>\n",
		inst, where, now.Add(*valid).Format("02/01/2006 15:04"))
	return nil
}
