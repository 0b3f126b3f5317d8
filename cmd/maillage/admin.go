package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/domain"
)

// runAdmin manages the directory file: institutions and tokens. A running
// server sees the changes at once (it rereads the file when a token is
// unknown).
func runAdmin(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return errors.New(`admin: say what to do: "admin institution add", "admin institution list" or "admin token issue"`)
	}
	fs := flag.NewFlagSet("maillage admin "+args[0]+" "+args[1], flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("MAILLAGE_DATA", "data"), "data directory (env MAILLAGE_DATA)")
	switch args[0] + " " + args[1] {
	case "institution add":
		id := fs.String("id", "", "institution id: letters, digits and dashes, e.g. mecs-les-tilleuls (required)")
		kind := fs.String("kind", "", "kind: ase, mecs, ditep, aemo, aed, cmp, school, mdph, pjj, foster, other (required)")
		name := fs.String("name", "", "name (required)")
		dep := fs.String("departement", "", "département code, e.g. 35 (required)")
		onCall := fs.String("on-call", "", "who to reach in a crisis, when and how")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		if *id == "" || *kind == "" || *name == "" || *dep == "" {
			return errors.New("admin institution add: --id, --kind, --name and --departement are required")
		}
		dir, err := directory.Open(filepath.Join(*data, "directory.json"))
		if err != nil {
			return err
		}
		inst := directory.Institution{ID: domain.InstitutionID(*id), Kind: domain.InstitutionKind(*kind), Name: *name, Departement: *dep, OnCall: *onCall}
		if err := dir.AddInstitution(inst); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "institution %s registered\n", *id)
		return nil
	case "institution list":
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		dir, err := directory.Open(filepath.Join(*data, "directory.json"))
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tDÉPARTEMENT\tNOM")
		for _, i := range dir.Institutions() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.ID, i.Kind, i.Departement, i.Name)
		}
		return tw.Flush()
	case "token issue":
		role := fs.String("role", "", "role: professional, family, auditor or admin (required)")
		name := fs.String("name", "", "the person's name and function (required)")
		inst := fs.String("institution", "", "institution id (professionals)")
		person := fs.String("family-member", "", "family member id as recorded on the case (family)")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		dir, err := directory.Open(filepath.Join(*data, "directory.json"))
		if err != nil {
			return err
		}
		p := directory.Principal{Role: domain.Role(*role), Name: *name, Institution: domain.InstitutionID(*inst)}
		if *person != "" {
			if p.FamilyMember, err = uuid.Parse(*person); err != nil {
				return fmt.Errorf("--family-member %q: not a UUID (use the id recorded by FamilyMemberRecorded)", *person)
			}
		}
		token, _, err := dir.Issue(p, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stderr, "token issued; it is shown this once, only its hash is kept:")
		fmt.Fprintln(stdout, token)
		return nil
	}
	return fmt.Errorf("admin %s %s: unknown; use \"admin institution add\", \"admin institution list\" or \"admin token issue\"", args[0], args[1])
}
