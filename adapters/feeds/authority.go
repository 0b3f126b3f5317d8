package feeds

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/maillage/maillage/domain"
)

// Authority holds the keys of the feed server's decentralised NATS
// authentication (operator, accounts), so that partner credentials can be
// issued offline, without the server and without reloading it: the server
// trusts the operator and knows the accounts; a user JWT signed by the
// PARTNERS account key is valid as soon as it is written.
//
// Accounts:
//   - FEEDS holds the feed streams and the relay's checkpoint; its only user
//     is the relay, connected in-process with credentials made at start and
//     never written down.
//   - PARTNERS holds the partner users, one per credentials file, each
//     allowed to read its own institution's feed through the services FEEDS
//     exports (see partnerPermissions) and nothing else. Keeping partners in
//     another account means the replies the server sends them cannot land
//     in a FEEDS subject, so no partner can write into a feed.
//   - SYS, the server's system account.
//
// The authority also records the public key of every partner user it
// issues, per institution, and the revocations (see Revoke), which the
// PARTNERS account JWT carries.
type Authority struct {
	path     string
	operator nkeys.KeyPair
	feeds    nkeys.KeyPair
	partners nkeys.KeyPair
	system   nkeys.KeyPair

	mu          sync.Mutex
	issued      map[string][]issuedUser // institution -> users issued
	revocations map[string]int64        // user public key -> revoked up to (Unix seconds)
}

// authorityFile is the JSON form of the authority's seeds, of the users
// issued and of the revocations.
type authorityFile struct {
	Operator    string                  `json:"operator"`
	Feeds       string                  `json:"feedsAccount"`
	Partners    string                  `json:"partnersAccount"`
	System      string                  `json:"systemAccount"`
	Issued      map[string][]issuedUser `json:"issued,omitempty"`
	Revocations map[string]int64        `json:"revocations,omitempty"`
}

// authorityFileName is the file under the feeds directory holding the seeds.
const authorityFileName = "authority.json"

// OpenAuthority reads the keys under dir, creating them on first use (the
// file is readable by its owner only: whoever reads it can issue
// credentials).
func OpenAuthority(dir string) (*Authority, error) {
	path := filepath.Join(dir, authorityFileName)
	if b, err := os.ReadFile(path); err == nil {
		return parseAuthority(path, b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("feeds: authority: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("feeds: authority: %w", err)
	}
	var f authorityFile
	for _, k := range []struct {
		seed   *string
		create func() (nkeys.KeyPair, error)
	}{{&f.Operator, nkeys.CreateOperator}, {&f.Feeds, nkeys.CreateAccount}, {&f.Partners, nkeys.CreateAccount}, {&f.System, nkeys.CreateAccount}} {
		kp, err := k.create()
		if err != nil {
			return nil, fmt.Errorf("feeds: authority: %w", err)
		}
		seed, _ := kp.Seed()
		*k.seed = string(seed)
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	// O_EXCL: when two processes create it at once, one wins and the other
	// reads the winner's keys.
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return OpenAuthority(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("feeds: authority: %w", err)
	}
	_, err = file.Write(append(b, '\n'))
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("feeds: authority: %w", err)
	}
	return parseAuthority(path, b)
}

func parseAuthority(path string, b []byte) (*Authority, error) {
	var f authorityFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("feeds: authority %s: %w", path, err)
	}
	a := &Authority{path: path}
	for _, k := range []struct {
		seed string
		kp   *nkeys.KeyPair
	}{{f.Operator, &a.operator}, {f.Feeds, &a.feeds}, {f.Partners, &a.partners}, {f.System, &a.system}} {
		kp, err := nkeys.FromSeed([]byte(k.seed))
		if err != nil {
			return nil, fmt.Errorf("feeds: authority %s: %w", path, err)
		}
		*k.kp = kp
	}
	a.issued, a.revocations = f.Issued, f.Revocations
	return a, nil
}

// DefaultValidity is how long partner credentials stay valid by default.
const DefaultValidity = 365 * 24 * time.Hour

// PartnerCredentials issues a NATS credentials file (user JWT and seed) that
// lets the institution read its own feed and nothing else, valid for
// validFor from now. The user's name is the institution id, which is how
// clients (Dial) learn which feed to read.
func (a *Authority) PartnerCredentials(inst domain.InstitutionID, validFor time.Duration, now time.Time) ([]byte, error) {
	if err := checkInstitution(inst); err != nil {
		return nil, err
	}
	if validFor <= 0 {
		return nil, fmt.Errorf("feeds: credentials validity %s: want more than zero", validFor)
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("feeds: credentials: %w", err)
	}
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = string(inst)
	uc.IssuedAt = now.Unix()
	uc.Expires = now.Add(validFor).Unix()
	uc.Permissions = partnerPermissions(inst)
	uc.AllowedConnectionTypes = jwt.StringList{jwt.ConnectionTypeStandard}
	uc.Limits.Subs = 100
	token, err := uc.Encode(a.partners)
	if err != nil {
		return nil, fmt.Errorf("feeds: credentials: %w", err)
	}
	// Recorded before they are handed out: credentials the authority does
	// not know of could not be revoked.
	if err := a.recordIssued(inst, issuedUser{Key: pub, IssuedAt: uc.IssuedAt, Expires: uc.Expires}); err != nil {
		return nil, fmt.Errorf("feeds: credentials: %w", err)
	}
	seed, _ := user.Seed()
	return jwt.FormatUserConfig(token, seed)
}

// partnerPermissions is everything a partner's user may do: read its feed
// stream's information, pull from and acknowledge on its durable consumer,
// get messages of its stream, and receive answers on its own inbox prefix.
// Everything else (other feeds, creating or deleting consumers, publishing
// into any subject, the JetStream account API) is denied by the server.
func partnerPermissions(inst domain.InstitutionID) jwt.Permissions {
	stream := StreamName(inst)
	var p jwt.Permissions
	p.Pub.Allow.Add(
		"$JS.API.STREAM.INFO."+stream,
		"$JS.API.CONSUMER.INFO."+stream+"."+PartnerConsumer,
		"$JS.API.CONSUMER.MSG.NEXT."+stream+"."+PartnerConsumer,
		"$JS.API.DIRECT.GET."+stream,
		"$JS.API.DIRECT.GET."+stream+".>",
		"$JS.API.STREAM.MSG.GET."+stream,
		"$JS.ACK."+stream+"."+PartnerConsumer+".>",
	)
	p.Sub.Allow.Add(Inbox(inst) + ".>")
	return p
}

// feedsExports are the services of the FEEDS account that partners import;
// user permissions (partnerPermissions) then narrow them to one stream.
// Consumer creation is not among them: a consumer delivers to a subject its
// creator chooses, which would let a partner write into another's feed.
// $JS.API.INFO is imported (and allowed to no partner) only because the
// server gives an account without JetStream its own "not enabled" answers
// to the whole $JS.API unless that subject is imported from elsewhere.
var feedsExports = []struct {
	subject string
	stream  bool // several responses per request
}{
	{"$JS.API.INFO", false},
	{"$JS.API.STREAM.INFO.*", false},
	{"$JS.API.CONSUMER.INFO.*." + PartnerConsumer, false},
	{"$JS.API.CONSUMER.MSG.NEXT.*." + PartnerConsumer, true},
	{"$JS.API.DIRECT.GET.*", true},
	{"$JS.API.DIRECT.GET.*.>", true},
	{"$JS.API.STREAM.MSG.GET.*", false},
	{"$JS.ACK.*." + PartnerConsumer + ".>", false},
}

// accounts returns the operator JWT and the JWTs of the accounts, keyed by
// public key, as the server must know them.
func (a *Authority) accounts() (*jwt.OperatorClaims, map[string]string, string, error) {
	opPub, _ := a.operator.PublicKey()
	sysPub, _ := a.system.PublicKey()
	feedsPub, _ := a.feeds.PublicKey()

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "maillage-feeds"
	oc.SystemAccount = sysPub
	if _, err := oc.Encode(a.operator); err != nil {
		return nil, nil, "", err
	}

	sys := jwt.NewAccountClaims(sysPub)
	sys.Name = "SYS"

	feeds := jwt.NewAccountClaims(feedsPub)
	feeds.Name = "FEEDS"
	feeds.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1, MaxAckPending: -1}
	for _, e := range feedsExports {
		rt := jwt.ResponseType(jwt.ResponseTypeSingleton)
		if e.stream {
			rt = jwt.ResponseTypeStream
		}
		feeds.Exports.Add(&jwt.Export{Subject: jwt.Subject(e.subject), Type: jwt.Service, ResponseType: rt})
	}
	partners := a.partnersAccount()

	out := map[string]string{}
	for _, ac := range []*jwt.AccountClaims{sys, feeds, partners} {
		token, err := ac.Encode(a.operator)
		if err != nil {
			return nil, nil, "", fmt.Errorf("account %s: %w", ac.Name, err)
		}
		out[ac.Subject] = token
	}
	return oc, out, sysPub, nil
}

// partnersAccount returns the claims of the PARTNERS account, not yet
// encoded: the imports of the FEEDS services and the revocations.
func (a *Authority) partnersAccount() *jwt.AccountClaims {
	feedsPub, _ := a.feeds.PublicKey()
	partnersPub, _ := a.partners.PublicKey()
	partners := jwt.NewAccountClaims(partnersPub)
	partners.Name = "PARTNERS"
	for _, e := range feedsExports {
		partners.Imports.Add(&jwt.Import{Subject: jwt.Subject(e.subject), Account: feedsPub, Type: jwt.Service})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for pub, at := range a.revocations {
		partners.RevokeAt(pub, time.Unix(at, 0))
	}
	return partners
}

// relayUser returns credentials for the relay: any subject of the FEEDS
// account, over connections of one type (in-process for the embedded
// server, standard TCP for a cluster). They are made at start and never
// written down.
func (a *Authority) relayUser(connectionType string) (string, []byte, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, err
	}
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = "relay"
	uc.AllowedConnectionTypes = jwt.StringList{connectionType}
	token, err := uc.Encode(a.feeds)
	if err != nil {
		return "", nil, err
	}
	seed, _ := user.Seed()
	return token, seed, nil
}

// CredentialsInstitution reads the institution a credentials file was
// issued to (the user's name), without checking its signature: the server
// does that.
func CredentialsInstitution(creds []byte) (domain.InstitutionID, error) {
	token, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", fmt.Errorf("feeds: credentials: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return "", fmt.Errorf("feeds: credentials: %w", err)
	}
	if uc.Name == "" {
		return "", errors.New("feeds: credentials name no institution")
	}
	return domain.InstitutionID(uc.Name), nil
}
