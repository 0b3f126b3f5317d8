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

const clusterConfigUsage = `Usage: maillage partner cluster-config [flags]

Prints the nats-server configuration stanza (operator, system account,
full account resolver preloaded with the accounts) that every node of a
NATS cluster needs to hold the partner feeds (maillage serve --feeds-nats):
the nodes then trust the keys under <data>/feeds, and the credentials they
issue. Each node keeps the accounts it is sent (revocations included) in
--resolver-dir, so that a node that restarts still refuses revoked
credentials. Copy <data>/feeds/authority.json to every maillage replica.

Flags:
`

const revokeUsage = `Usage: maillage partner revoke <institution> [flags]

Revokes every credentials of an institution's partner feed issued until now
(a leaked or compromised partner system): the revocation is written to
<data>/feeds/authority.json, offline. A running maillage server with its
embedded feed server applies it within seconds and closes the connections
of the revoked credentials; a server started later refuses them. With
--feeds-nats (one URL per node of the NATS cluster holding the feeds) the
revocation is pushed to every node at once, and each node keeps it in its
resolver directory across restarts; putting the new "maillage partner
cluster-config" stanza in each node's configuration keeps it even for a
node whose directory is lost. Issue new credentials afterwards with
"maillage partner credentials".

Flags:
`

// runPartner issues or revokes partner credentials, or prints the
// configuration of the feeds' NATS cluster.
func runPartner(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "cluster-config" {
		return runPartnerClusterConfig(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "revoke" {
		return runPartnerRevoke(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("maillage partner credentials", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, partnerUsage); fs.PrintDefaults() }
	data := fs.String("data", env("MAILLAGE_DATA", "data"), "data directory (env MAILLAGE_DATA)")
	valid := fs.Duration("valid", feeds.DefaultValidity, "how long the credentials stay valid")
	out := fs.String("out", "", "write the credentials to this file (mode 0600) rather than to the standard output")
	if len(args) == 0 || args[0] != "credentials" {
		fs.Usage()
		return errors.New(`partner : préciser la commande, par exemple « maillage partner credentials mecs-les-tilleuls », « maillage partner revoke mecs-les-tilleuls » ou « maillage partner cluster-config »`)
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

// runPartnerClusterConfig prints the configuration stanza of the feeds'
// NATS cluster.
func runPartnerClusterConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage partner cluster-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clusterConfigUsage); fs.PrintDefaults() }
	data := fs.String("data", env("MAILLAGE_DATA", "data"), "data directory (env MAILLAGE_DATA)")
	resolverDir := fs.String("resolver-dir", feeds.DefaultResolverDir, "directory where each node keeps the account JWTs it is sent, revocations included (relative to the node's working directory unless absolute)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("partner cluster-config : argument inattendu %q", fs.Arg(0))
	}
	if strings.TrimSpace(*resolverDir) == "" {
		return errors.New("partner cluster-config : --resolver-dir vide ; donnez le répertoire où chaque nœud garde les comptes, par exemple " + feeds.DefaultResolverDir)
	}
	dir := filepath.Join(*data, "feeds")
	auth, err := feeds.OpenAuthority(dir)
	if err != nil {
		return err
	}
	conf, err := auth.ServerConfig(*resolverDir)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(stdout, conf); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "Configuration à ajouter à chaque nœud du cluster NATS des flux partenaires (avec JetStream et les routes du cluster).\n"+
		"Elle fait confiance aux clés de %s : copiez ce fichier sur chaque réplique de maillage, puis lancez maillage serve --feeds-nats nats://a:4222,nats://b:4222,nats://c:4222\n",
		filepath.Join(dir, "authority.json"))
	return nil
}

// runPartnerRevoke revokes the credentials issued to an institution until
// now.
func runPartnerRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage partner revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, revokeUsage); fs.PrintDefaults() }
	data := fs.String("data", env("MAILLAGE_DATA", "data"), "data directory (env MAILLAGE_DATA)")
	feedsNATS := fs.String("feeds-nats", env("MAILLAGE_FEEDS_NATS", ""), "the NATS cluster holding the feeds (serve --feeds-nats): the revocation is pushed to its nodes at once (env MAILLAGE_FEEDS_NATS)")
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fs.Usage()
		return errors.New("partner revoke : préciser l'identifiant de l'institution, par exemple mecs-les-tilleuls")
	}
	inst := domain.InstitutionID(args[0])
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("partner revoke : argument inattendu %q", fs.Arg(0))
	}
	// No check against the directory: an institution removed from it must
	// still lose its access.
	dir := filepath.Join(*data, "feeds")
	if _, err := os.Stat(filepath.Join(dir, "authority.json")); err != nil {
		return fmt.Errorf("partner revoke : pas de clés des flux partenaires sous %s (aucun identifiant n'a été délivré) : %w", dir, err)
	}
	auth, err := feeds.OpenAuthority(dir)
	if err != nil {
		return err
	}
	now := time.Now()
	n, err := auth.Revoke(inst, now)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(stdout, "Aucun identifiant du flux partenaire de %s à révoquer : aucun n'est en cours de validité (déjà révoqués ou expirés).\n", inst)
		return nil
	}
	plural := ""
	if n > 1 {
		plural = "s"
	}
	fmt.Fprintf(stdout, "%d identifiant%s du flux partenaire de %s révoqué%s (délivrés jusqu'au %s).\n"+
		"Un serveur maillage en marche avec son serveur de flux intégré l'applique en quelques secondes et ferme leurs connexions ; un serveur démarré ensuite les refuse.\n",
		n, plural, inst, plural, now.Format("02/01/2006 15:04:05"))
	stanza := "mettez aussi la nouvelle configuration de « maillage partner cluster-config --data " + *data + " » dans celle de chaque nœud, pour qu'il la garde après un redémarrage."
	if *feedsNATS != "" {
		nodes, err := auth.PushPartners(ctx, *feedsNATS, 2*time.Second)
		if err != nil {
			return fmt.Errorf("partner revoke : révocation enregistrée, mais pas transmise au cluster NATS %s (refaites la commande) : %w", *feedsNATS, err)
		}
		if nodes == 0 {
			return fmt.Errorf("partner revoke : révocation enregistrée, mais aucun nœud du cluster NATS %s n'a confirmé l'avoir appliquée (refaites la commande, ou rechargez les nœuds avec la nouvelle configuration de « maillage partner cluster-config »)", *feedsNATS)
		}
		fmt.Fprintf(stdout, "Cluster NATS des flux : révocation appliquée par %d nœud(s), leurs connexions fermées ; %s\n", nodes, stanza)
		if urls := len(strings.Split(*feedsNATS, ",")); nodes < urls {
			fmt.Fprintf(stdout, "%d nœud(s) sur %d n'ont pas confirmé : ils la reçoivent de leurs pairs à leur retour, et un maillage serve --feeds-nats en marche la leur pousse de nouveau (--feeds-revocation-refresh).\n", urls-nodes, urls)
		}
	} else {
		fmt.Fprintf(stdout, "Si les flux sont sur un cluster NATS : un maillage serve --feeds-nats en marche pousse la révocation à ses nœuds en quelques secondes ; sinon refaites la commande avec --feeds-nats. Et %s\n", stanza)
	}
	fmt.Fprintf(stdout, "Nouveaux identifiants : maillage partner credentials %s --data %s\n", inst, *data)
	return nil
}
