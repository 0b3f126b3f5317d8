package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/adapters/feeds"
	"github.com/maillage/maillage/domain"
)

const feedUsage = `Usage: maillage feed tail --url URL --creds FILE [flags]

Reads the partner feed the credentials were issued for (see "maillage partner
credentials"), prints each message as it arrives and verifies each case's hash
chain. It resumes where it stopped (the feed's durable consumer).

Flags:
`

// runFeed is the reference subscriber of a partner feed.
func runFeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage feed tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, feedUsage); fs.PrintDefaults() }
	url := fs.String("url", env("MAILLAGE_FEED_URL", "nats://127.0.0.1:4223"), "feed server (serve --partner-listen) (env MAILLAGE_FEED_URL)")
	creds := fs.String("creds", env("MAILLAGE_FEED_CREDS", ""), "credentials file (env MAILLAGE_FEED_CREDS)")
	ca := fs.String("ca", "", "certificate authority (PEM) to trust for a TLS feed server")
	asJSON := fs.Bool("json", false, "print each message as one JSON line instead of text")
	if len(args) == 0 || args[0] != "tail" {
		fs.Usage()
		return errors.New(`feed : préciser la commande, par exemple « maillage feed tail --creds mecs.creds »`)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *creds == "" {
		return errors.New("feed tail : préciser le fichier d'identifiants avec --creds (voir « maillage partner credentials »)")
	}
	var opts []nats.Option
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca %s : aucun certificat PEM lisible", *ca)
		}
		opts = append(opts, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	nc, inst, err := feeds.Dial(*url, *creds, opts...)
	if err != nil {
		return fmt.Errorf("connexion au serveur de flux : %w", err)
	}
	defer nc.Close()
	tail, err := feeds.NewTail(nc, inst)
	if err != nil {
		return err
	}
	p := &feedPrinter{out: stdout, json: *asJSON, heads: map[domain.CaseID]feeds.Delivery{}}
	if !p.json {
		fmt.Fprintf(stdout, "Flux partenaire de %s (%s) : en attente des messages. Ctrl-C pour arrêter.\n", inst, *url)
	}
	waiting := false
	for {
		err := tail.Run(ctx, p.print)
		if !errors.Is(err, feeds.ErrNoFeed) {
			p.summary()
			return err
		}
		if !waiting && !p.json {
			fmt.Fprintf(stdout, "Pas encore de flux pour %s (aucun dossier partagé) : nouvel essai toutes les 5 s.\n", inst)
		}
		waiting = true
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// feedPrinter prints deliveries, in French for professionals or as JSON.
type feedPrinter struct {
	out   io.Writer
	json  bool
	heads map[domain.CaseID]feeds.Delivery // last delivery of each case
}

// feedLine is the JSON form of a delivery.
type feedLine struct {
	Kind      feeds.Kind       `json:"kind"`
	CaseID    domain.CaseID    `json:"caseId"`
	Sequence  uint64           `json:"sequence"`
	Cause     uint64           `json:"cause"`
	Rule      string           `json:"rule,omitempty"`
	View      domain.EventView `json:"view"`
	Verified  uint64           `json:"verified"`
	Head      domain.Hash      `json:"head"`
	Missing   []uint64         `json:"missing,omitempty"`
	Duplicate bool             `json:"duplicate,omitempty"`
	Break     string           `json:"break,omitempty"`
}

func (p *feedPrinter) print(d feeds.Delivery) error {
	if d.CaseID != (domain.CaseID{}) {
		p.heads[d.CaseID] = d
	}
	if p.json {
		l := feedLine{Kind: d.Kind, CaseID: d.CaseID, Sequence: d.Sequence, Cause: d.Cause, Rule: d.Rule, View: d.View,
			Verified: d.Verified, Head: d.Head, Missing: d.Missing, Duplicate: d.Duplicate}
		if d.Break != nil {
			l.Break = d.Break.Error()
		}
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.out, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[dossier %s] n°%d  ", shortID(d.CaseID), d.Sequence)
	switch d.Kind {
	case feeds.KindReveal:
		fmt.Fprintf(&b, "RÉVÉLÉ (désormais visible, suite au n°%d) : ", d.Cause)
	case feeds.KindRetract:
		fmt.Fprintf(&b, "RETIRÉ (suite au n°%d) : supprimez de vos systèmes ce que vous détenez de cet événement ; ", d.Cause)
	case feeds.KindErase:
		fmt.Fprintf(&b, "DOSSIER EFFACÉ : les données personnelles de ce dossier ont été détruites (fin de conservation) ; supprimez de vos systèmes tout ce que vous en détenez. Le flux n'en garde que cet avis (dernier n°%d, empreinte %s…).", d.Sequence, d.View.ChainHash.String()[:12])
		if _, err := fmt.Fprintln(p.out, b.String()); err != nil {
			return err
		}
		delete(p.heads, d.CaseID)
		return nil
	}
	summary, payload := describeView(d.View)
	b.WriteString(summary)
	if d.Redelivered {
		b.WriteString(" (remis à nouveau)")
	}
	switch {
	case d.Break != nil:
		fmt.Fprintf(&b, "\n  ⚠ CHAÎNE NON VÉRIFIÉE : %s. Ce message ne prolonge pas l'historique reçu : il a pu être altéré ; signalez-le au coordinateur du dossier.", describeBreak(d.Break))
	case d.Duplicate:
		b.WriteString("\n  ⚠ déjà reçu : ce message est un doublon.")
	case len(d.Missing) > 0:
		fmt.Fprintf(&b, "  … chaîne vérifiée jusqu'au n°%d, en attente du n°%d", d.Verified, d.Missing[0])
	default:
		fmt.Fprintf(&b, "  ✓ chaîne vérifiée jusqu'au n°%d (%s…)", d.Verified, d.Head.String()[:12])
	}
	if payload != "" {
		b.WriteString("\n    " + payload)
	}
	_, err := fmt.Fprintln(p.out, b.String())
	return err
}

// summary prints where each case's chain stands.
func (p *feedPrinter) summary() {
	if p.json || len(p.heads) == 0 {
		return
	}
	ids := make([]domain.CaseID, 0, len(p.heads))
	for id := range p.heads {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b domain.CaseID) int { return strings.Compare(a.String(), b.String()) })
	fmt.Fprintln(p.out, "Arrêt. État des chaînes reçues :")
	for _, id := range ids {
		d := p.heads[id]
		fmt.Fprintf(p.out, "  dossier %s : vérifiée du n°1 au n°%d, empreinte de tête %s\n", id, d.Verified, d.Head)
	}
}

func shortID(id domain.CaseID) string { return id.String()[:8] }

// describeView says what a view shows, in French, and its payload
// (shortened).
func describeView(v domain.EventView) (summary, payload string) {
	if v.Visibility == domain.Hidden {
		return "événement non visible pour votre institution (numéro et empreintes seulement)", ""
	}
	label, ok := eventLabels[v.Type]
	if !ok {
		label = "événement de type inconnu « " + string(v.Type) + " »"
	}
	var b strings.Builder
	b.WriteString(label)
	if c, ok := categoryLabels[v.Category]; ok {
		fmt.Fprintf(&b, " (%s)", c)
	}
	if v.OccurredAt != nil {
		fmt.Fprintf(&b, ", le %s", v.OccurredAt.Local().Format("02/01/2006 15:04"))
	}
	if v.Actor != nil {
		who := string(v.Actor.Institution)
		if v.Actor.Professional != "" {
			who += " (" + v.Actor.Professional + ")"
		}
		if who == "" {
			who = "un membre de la famille"
		}
		b.WriteString(", par " + who)
	}
	if v.Visibility == domain.Redacted {
		fmt.Fprintf(&b, " [champs masqués : %s]", strings.Join(v.RedactedFields, ", "))
	}
	payload = string(v.Payload)
	if r := []rune(payload); len(r) > 300 {
		payload = string(r[:300]) + "…"
	}
	return b.String(), payload
}

func describeBreak(err error) string {
	var brk *domain.ChainBreak
	if !errors.As(err, &brk) {
		return "message illisible (" + err.Error() + ")"
	}
	switch brk.Field {
	case "sequence":
		return fmt.Sprintf("n°%s attendu, n°%s reçu", brk.Expected, brk.Found)
	case "leafHash":
		return fmt.Sprintf("le contenu ne correspond pas à son empreinte (attendue %s, reçue %s)", brk.Expected, brk.Found)
	default:
		return fmt.Sprintf("empreinte de chaîne attendue %s, reçue %s", brk.Expected, brk.Found)
	}
}

var categoryLabels = map[domain.Category]string{
	domain.CategoryCoordination: "coordination",
	domain.CategoryPlan:         "projet",
	domain.CategoryDailyLife:    "vie quotidienne",
	domain.CategoryHealth:       "santé",
	domain.CategoryJudicial:     "judiciaire",
	domain.CategoryConsent:      "consentement",
}

var eventLabels = map[domain.EventType]string{
	domain.CaseOpened:                 "Ouverture du dossier",
	domain.PartnerJoined:              "Entrée d'une institution dans le dossier",
	domain.PartnerLeft:                "Sortie d'une institution du dossier",
	domain.ReferentChanged:            "Changement de référent",
	domain.CoordinationHandedOver:     "Passation de la coordination",
	domain.FamilyMemberRecorded:       "Enregistrement d'un membre de la famille",
	domain.NeedIdentified:             "Besoin identifié",
	domain.ObjectiveSet:               "Objectif fixé",
	domain.ObjectiveReviewed:          "Objectif réexaminé",
	domain.InterventionAgreed:         "Intervention convenue",
	domain.InterventionChanged:        "Intervention modifiée",
	domain.InterventionEnded:          "Intervention terminée",
	domain.PlansArticulated:           "Articulation avec les projets des institutions",
	domain.SynthesisMeetingHeld:       "Réunion de synthèse",
	domain.DecisionRecorded:           "Décision de coopération",
	domain.CrisisDeclared:             "Crise déclarée",
	domain.CrisisResolved:             "Crise résolue",
	domain.PlacementChanged:           "Changement de lieu de vie",
	domain.ObservationRecorded:        "Observation partagée",
	domain.ConsentGiven:               "Consentement donné",
	domain.ConsentWithdrawn:           "Consentement retiré",
	domain.JudicialRestrictionImposed: "Ordonnance du juge des enfants",
	domain.JudicialRestrictionLifted:  "Levée d'une ordonnance",
	domain.FamilyInformed:             "Information de la famille",
	domain.FamilyNotInformed:          "Décision de ne pas informer la famille",
	domain.CaseClosed:                 "Clôture du dossier",
}
