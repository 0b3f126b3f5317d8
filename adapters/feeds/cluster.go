package feeds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// ConnectCluster runs the feeds on an external NATS cluster instead of an
// embedded server: it opens the authority under dir (authority.json,
// created on first use) and connects the relay's user (account FEEDS) to
// urls, comma-separated client URLs of the cluster. The cluster must trust
// the authority: its nodes' configuration holds the stanza of
// Authority.ServerConfig. Partners connect to the cluster with credentials
// from the same authority. The Server it returns runs no nats-server (NATS
// returns nil); Close closes the connection. WithServerLogger,
// WithAuthorityPoll and WithRevocationRefresh apply.
//
// While connected it keeps the nodes told of the partners' revocations:
// when authority.json changes (maillage partner revoke, which works
// offline) and, while any revocation is in force, at start and every
// WithRevocationRefresh, it pushes the PARTNERS account to every node
// (Authority.PushPartners).
func ConnectCluster(ctx context.Context, dir, urls string, opts ...ServerOption) (*Server, error) {
	cfg := serverConfig{log: slog.Default(), poll: DefaultAuthorityPoll, refresh: DefaultRevocationRefresh}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.listen != "" || cfg.tls != nil {
		return nil, errors.New("feeds: ConnectCluster: partners connect to the cluster, WithPartnerListen and WithPartnerTLS do not apply")
	}
	var list []string
	for u := range strings.SplitSeq(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			list = append(list, u)
		}
	}
	if len(list) == 0 {
		return nil, errors.New("feeds: ConnectCluster: no URL")
	}
	auth, err := OpenAuthority(dir)
	if err != nil {
		return nil, err
	}
	token, seed, err := auth.relayUser(jwt.ConnectionTypeStandard)
	if err != nil {
		return nil, fmt.Errorf("feeds: relay user: %w", err)
	}
	log := cfg.log.With("component", "nats-feeds")
	nc, err := nats.Connect(strings.Join(list, ","), nats.Name("maillage-relay"),
		nats.UserJWTAndSeed(token, string(seed)), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("feed relay disconnected from the NATS cluster", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("feed relay reconnected to the NATS cluster", "url", nc.ConnectedUrlRedacted())
		}))
	if err != nil {
		return nil, fmt.Errorf("feeds: connect to %s (does the cluster trust the authority of %s? see Authority.ServerConfig): %w", strings.Join(list, ","), dir, err)
	}
	partners, err := json.Marshal(auth.partnersAccount())
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("feeds: accounts: %w", err)
	}
	s := &Server{urls: list, auth: auth, nc: nc, log: cfg.log, partners: partners}
	js, err := jetstream.New(nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("feeds: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch err := accountInfo(actx, js); {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		s.Close()
		return nil, fmt.Errorf("feeds: the NATS cluster at %s runs no JetStream for the feeds account: %w", strings.Join(list, ","), err)
	case err != nil && ctx.Err() == nil:
		// The cluster may be electing its leaders: the relay retries.
		cfg.log.Warn("feeds: JetStream of the NATS cluster not answering yet", "err", err)
	}
	if err := ctx.Err(); err != nil {
		s.Close()
		return nil, err
	}
	s.stopWatch, s.watchDone = make(chan struct{}), make(chan struct{})
	go s.watchAuthority(cfg.poll, cfg.refresh)
	return s, nil
}

// pushWait is how long a push of the PARTNERS account waits for the nodes
// to confirm.
const pushWait = 2 * time.Second

// pushPartners pushes the PARTNERS account, as the authority now has it,
// to every node of the cluster, and logs how many confirmed. When no node
// could be told, pushFailed is set, for watchAuthority to try again.
func (s *Server) pushPartners(ctx context.Context, why string) error {
	s.pushedAt = time.Now()
	claims := s.auth.partnersAccount()
	revocations := len(claims.Revocations)
	n, err := s.auth.PushPartners(ctx, strings.Join(s.urls, ","), pushWait)
	s.pushFailed = err != nil || n == 0
	if !s.pushFailed {
		s.partners, _ = json.Marshal(claims)
	}
	switch {
	case err != nil:
		return fmt.Errorf("push to the NATS cluster (%d of %d nodes confirmed): %w", n, len(s.urls), err)
	case n == 0:
		return fmt.Errorf("push to the NATS cluster: no node of %d confirmed within %s", len(s.urls), pushWait)
	case n < len(s.urls):
		s.log.Warn("feeds: partner revocations pushed, but not every node of the NATS cluster confirmed", "why", why, "revocations", revocations, "nodes", n, "urls", len(s.urls))
	case why == "changed" || why == "retry":
		s.log.Info("feeds: partner revocations pushed to the NATS cluster", "revocations", revocations, "nodes", n)
	default:
		s.log.Debug("feeds: partner revocations pushed to the NATS cluster", "why", why, "revocations", revocations, "nodes", n)
	}
	return nil
}

// DefaultResolverDir is where, by default, each node of a feeds cluster
// keeps the account JWTs it holds (relative to its working directory).
const DefaultResolverDir = "maillage-feeds-jwt"

// ServerConfig renders the nats-server configuration a cluster node needs to
// trust the authority (ConnectCluster): the operator JWT, the system
// account, and a full account resolver keeping the accounts' JWTs in
// resolverDir, preloaded with every account's JWT. Add it to the
// configuration of every node of the cluster (with JetStream and the
// cluster's routes), the same on each: account JWTs do not expire, and the
// stanza changes only when authority.json does.
//
// A full resolver rather than a memory one: the PARTNERS account JWT that
// PushPartners sends with new revocations is written to resolverDir, and a
// node that restarts keeps it, the older JWT of its configuration's
// preload not replacing a newer one (the nodes also pass updates to each
// other). With a memory resolver a restarted node went back to its
// configuration's JWT and accepted revoked credentials again.
func (a *Authority) ServerConfig(resolverDir string) (string, error) {
	if strings.TrimSpace(resolverDir) == "" {
		return "", errors.New("feeds: ServerConfig: empty resolver directory")
	}
	oc, accounts, sysPub, err := a.accounts()
	if err != nil {
		return "", fmt.Errorf("feeds: accounts: %w", err)
	}
	opJWT, err := oc.Encode(a.operator)
	if err != nil {
		return "", fmt.Errorf("feeds: operator: %w", err)
	}
	names := map[string]string{}
	for pub, token := range accounts {
		ac, err := jwt.DecodeAccountClaims(token)
		if err != nil {
			return "", fmt.Errorf("feeds: account %s: %w", pub, err)
		}
		names[pub] = ac.Name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# maillage partner feeds: trust the authority of %s\n", a.path)
	fmt.Fprintf(&b, "operator: %q\n", opJWT)
	fmt.Fprintf(&b, "system_account: %q\n", sysPub)
	fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: %q\n  allow_delete: false\n}\n", resolverDir)
	b.WriteString("resolver_preload: {\n")
	pubs := make([]string, 0, len(accounts))
	for pub := range accounts {
		pubs = append(pubs, pub)
	}
	slices.Sort(pubs)
	for _, pub := range pubs {
		fmt.Fprintf(&b, "  # %s\n  %s: %q\n", names[pub], pub, accounts[pub])
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// PushPartners sends the PARTNERS account JWT, with its revocations, to
// every node of the NATS cluster at urls (comma-separated, one per node), as
// a user of the system account ($SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE):
// each node writes it to its resolver directory (ServerConfig), applies it
// at once and closes the connections of revoked users; a node that restarts
// keeps it. A user of PARTNERS that may do nothing is connected to each node
// first, so that every node has the account loaded when the update comes (a
// node answered "jwt update skipped" for an account it had not loaded, with
// the memory resolver of earlier configurations). A node that cannot be
// reached is skipped (it fetches the account from the others when it comes
// back); none reachable is an error. It returns how many nodes answered
// that they updated the account, waiting at most wait for them.
func (a *Authority) PushPartners(ctx context.Context, urls string, wait time.Duration) (int, error) {
	_, accounts, _, err := a.accounts()
	if err != nil {
		return 0, fmt.Errorf("feeds: accounts: %w", err)
	}
	partnersPub, _ := a.partners.PublicKey()
	var reachable []string
	var unreachable []error
	for u := range strings.SplitSeq(urls, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		token, seed, err := a.toolUser(a.partners, "maillage-admin-load", func(uc *jwt.UserClaims) {
			uc.Permissions.Pub.Deny.Add(">")
			uc.Permissions.Sub.Deny.Add(">")
		})
		if err != nil {
			return 0, err
		}
		nc, err := nats.Connect(u, nats.Name("maillage-admin"), nats.UserJWTAndSeed(token, string(seed)), nats.NoReconnect(), nats.DontRandomize())
		if err != nil {
			// A node that is down gets the account from the others' resolvers
			// when it comes back: the rest are told now.
			unreachable = append(unreachable, fmt.Errorf("connect to %s: %w", u, err))
			continue
		}
		defer nc.Close()
		reachable = append(reachable, u)
	}
	if len(reachable) == 0 {
		return 0, fmt.Errorf("feeds: no node of %s reachable: %w", urls, errors.Join(unreachable...))
	}
	token, seed, err := a.toolUser(a.system, "maillage-admin", nil)
	if err != nil {
		return 0, err
	}
	urls = strings.Join(reachable, ",")
	nc, err := nats.Connect(urls, nats.Name("maillage-admin"), nats.UserJWTAndSeed(token, string(seed)))
	if err != nil {
		return 0, fmt.Errorf("feeds: connect to %s as the system account: %w", urls, err)
	}
	defer nc.Close()
	inbox := nc.NewInbox()
	replies := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return 0, fmt.Errorf("feeds: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SYS.REQ.ACCOUNT."+partnersPub+".CLAIMS.UPDATE", inbox, []byte(accounts[partnersPub])); err != nil {
		return 0, fmt.Errorf("feeds: push the partners account: %w", err)
	}
	updated := 0
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case m := <-replies:
			var r struct {
				Data *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"data"`
				Error *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			if json.Unmarshal(m.Data, &r) == nil && r.Error == nil && r.Data != nil && r.Data.Message == "jwt updated" {
				updated++
			}
			if updated == len(reachable) {
				return updated, nil // every reachable node answered
			}
		case <-timer.C:
			return updated, nil
		case <-ctx.Done():
			return updated, ctx.Err()
		}
	}
}

// toolUser returns short-lived credentials of a user of the account whose
// key is account, for a command-line tool, over TCP.
func (a *Authority) toolUser(account nkeys.KeyPair, name string, edit func(*jwt.UserClaims)) (string, []byte, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, err
	}
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.AllowedConnectionTypes = jwt.StringList{jwt.ConnectionTypeStandard}
	uc.Expires = time.Now().Add(time.Hour).Unix()
	if edit != nil {
		edit(uc)
	}
	token, err := uc.Encode(account)
	if err != nil {
		return "", nil, err
	}
	seed, _ := user.Seed()
	return token, seed, nil
}

// accountInfo asks for the account's JetStream, retrying a few seconds
// while the nodes report it not enabled: a node that has just started, or
// just been told the account's claim, answers so until it has loaded the
// account's JetStream limits (seen under load in the cluster tests). Past
// that, it is a configuration to fix.
func accountInfo(ctx context.Context, js jetstream.JetStream) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := js.AccountInfo(ctx)
		notEnabled := errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
		if !notEnabled || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
