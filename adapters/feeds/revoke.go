package feeds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/maillage/maillage/domain"
)

// issuedUser is a partner user the authority issued: its public key (never
// its seed), when it was issued and when it expires (Unix seconds, as in
// the user JWT).
type issuedUser struct {
	Key      string `json:"key"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
}

// Revoke revokes every credentials of inst issued at or before at (to the
// second, as NATS compares them): the PARTNERS account JWT then lists each
// of their user keys with time at, and the server refuses their JWT
// (jwt.AccountClaims.Revocations: a JWT of that key issued at or before the
// time is revoked). Credentials issued afterwards have keys of their own
// and are not affected. It returns how many credentials were revoked, not
// counting those already revoked or expired.
//
// Revoke writes authority.json; a running feed server (StartServer)
// applies it within its polling interval (WithAuthorityPoll) and closes the
// connections of the revoked users; one on a NATS cluster (ConnectCluster)
// pushes it to the nodes (PushPartners), which close them.
//
// Expired credentials are dropped from the record meanwhile (users and
// revocations both): the server refuses them anyway.
func (a *Authority) Revoke(inst domain.InstitutionID, at time.Time) (int, error) {
	if err := checkInstitution(inst); err != nil {
		return 0, err
	}
	if at.IsZero() {
		return 0, errors.New("feeds: revoke: no time")
	}
	now := min(at.Unix(), time.Now().Unix())
	n := 0
	err := a.update(func(f *authorityFile) {
		pruneExpired(f, now)
		if f.Revocations == nil {
			f.Revocations = map[string]int64{}
		}
		for _, u := range f.Issued[string(inst)] {
			if u.IssuedAt > at.Unix() {
				continue
			}
			if prev, ok := f.Revocations[u.Key]; ok && prev >= u.IssuedAt {
				f.Revocations[u.Key] = max(prev, at.Unix())
				continue
			}
			f.Revocations[u.Key] = at.Unix()
			n++
		}
	})
	if err != nil {
		return 0, fmt.Errorf("feeds: revoke: %w", err)
	}
	return n, nil
}

// Revoked returns the public keys of inst's users that are revoked, with
// the time up to which each is.
func (a *Authority) Revoked(inst domain.InstitutionID) map[string]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]time.Time{}
	for _, u := range a.issued[string(inst)] {
		if at, ok := a.revocations[u.Key]; ok && at >= u.IssuedAt {
			out[u.Key] = time.Unix(at, 0)
		}
	}
	return out
}

// pruneExpired drops the users expired at now, and their revocations.
func pruneExpired(f *authorityFile, now int64) {
	for inst, users := range f.Issued {
		kept := users[:0]
		for _, u := range users {
			if u.Expires > now {
				kept = append(kept, u)
			} else {
				delete(f.Revocations, u.Key)
			}
		}
		if len(kept) == 0 {
			delete(f.Issued, inst)
		} else {
			f.Issued[inst] = kept
		}
	}
}

// recordIssued adds a user to the record of authority.json.
func (a *Authority) recordIssued(inst domain.InstitutionID, u issuedUser) error {
	return a.update(func(f *authorityFile) {
		if f.Issued == nil {
			f.Issued = map[string][]issuedUser{}
		}
		f.Issued[string(inst)] = append(f.Issued[string(inst)], u)
	})
}

// update reads authority.json again (another process may have changed it:
// the CLI issues and revokes offline), applies change and writes it back
// atomically (a temporary file, synced, renamed over it), under a lock
// file that serialises the processes sharing the directory. The file's
// keys must still be the authority's.
func (a *Authority) update(change func(*authorityFile)) error {
	unlock, err := lockFile(a.path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	b, err := os.ReadFile(a.path)
	if err != nil {
		return err
	}
	fresh, err := parseAuthority(a.path, b)
	if err != nil {
		return err
	}
	if !fresh.sameKeys(a) {
		return fmt.Errorf("the keys of %s changed since it was opened", a.path)
	}
	var f authorityFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s: %w", a.path, err)
	}
	change(&f)
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(a.path, append(out, '\n')); err != nil {
		return err
	}
	a.setState(f.Issued, f.Revocations)
	return nil
}

func (a *Authority) setState(issued map[string][]issuedUser, revocations map[string]int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.issued, a.revocations = issued, revocations
}

// revoking reports whether the PARTNERS account lists any revocation.
func (a *Authority) revoking() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.revocations) > 0
}

// sameKeys reports whether b holds the same operator and account keys as a.
func (a *Authority) sameKeys(b *Authority) bool {
	for _, k := range [][2]nkeys.KeyPair{
		{a.operator, b.operator}, {a.feeds, b.feeds}, {a.partners, b.partners}, {a.system, b.system},
	} {
		x, _ := k[0].PublicKey()
		y, _ := k[1].PublicKey()
		if x != y {
			return false
		}
	}
	return true
}

// writeAtomic replaces path with b (mode 0600): readers see the old file or
// the new one, never a part.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".authority-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing to remove
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// lockWait bounds how long update waits for another process's lock;
// lockStale is the age past which a lock file is taken to be left by a
// process that died (an update takes milliseconds).
const (
	lockWait  = 10 * time.Second
	lockStale = 30 * time.Second
)

// lockFile takes a lock by creating path exclusively (portable, unlike
// flock); the returned function releases it.
func lockFile(path string) (func(), error) {
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if fi, serr := os.Stat(path); serr == nil && time.Since(fi.ModTime()) > lockStale {
			os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s held by another process for more than %s (remove it if no maillage command is running)", path, lockWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchAuthority checks authority.json every interval and, when the
// PARTNERS account it describes changed (a revocation by another process:
// maillage partner revoke runs offline), applies it to the embedded server
// or pushes it to the nodes of the cluster. On a cluster, while any
// revocation is in force, it also pushes it at start and every refresh
// (WithRevocationRefresh, 0: never). It stops when stopWatch is closed.
func (s *Server) watchAuthority(every, refresh time.Duration) {
	defer close(s.watchDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stopWatch:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	type stamp struct {
		mod  time.Time
		size int64
	}
	var seen stamp // zero: the first check reads the file
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		reloaded := false
		if fi, err := os.Stat(s.auth.path); err != nil {
			if seen != (stamp{}) {
				s.log.Warn("feeds: authority.json unreadable, revocations not followed", "err", err)
			}
			seen = stamp{}
		} else if now := (stamp{fi.ModTime(), fi.Size()}); now != seen {
			// Read once per change: a file that cannot be applied is
			// reported once, and read again when it changes.
			seen = now
			if err := s.reloadAuthority(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("feeds: revocations of authority.json not applied", "err", err)
			}
			reloaded = true
		}
		// At start too: revocations written while no server ran, offline,
		// were told to no node. A push that failed is tried again at the
		// next checks, reported once.
		retry := s.pushFailed && !reloaded
		if s.srv == nil && (retry || first || (refresh > 0 && time.Since(s.pushedAt) >= refresh)) && s.auth.revoking() {
			why := "refresh"
			switch {
			case retry:
				why = "retry"
			case first:
				why = "start"
			}
			failedBefore := s.pushFailed
			if err := s.pushPartners(ctx, why); err != nil && ctx.Err() == nil && !failedBefore {
				s.log.Error("feeds: partner revocations not pushed to the NATS cluster, trying again", "err", err)
			}
		}
	}
}

// reloadAuthority reads authority.json and, if the PARTNERS account it
// describes changed, applies it to the embedded server or pushes it to the
// cluster's nodes.
func (s *Server) reloadAuthority(ctx context.Context) error {
	b, err := os.ReadFile(s.auth.path)
	if err != nil {
		return err
	}
	fresh, err := parseAuthority(s.auth.path, b)
	if err != nil {
		return err
	}
	if !fresh.sameKeys(s.auth) {
		return errors.New("its keys changed: restart the server to use them")
	}
	s.auth.setState(fresh.issued, fresh.revocations)
	claims := s.auth.partnersAccount()
	js, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	if bytes.Equal(js, s.partners) {
		return nil
	}
	if s.srv == nil {
		return s.pushPartners(ctx, "changed")
	}
	closed, err := s.applyPartners(claims)
	if err != nil {
		return err
	}
	s.partners = js
	s.log.Info("feeds: partner revocations applied", "revocations", len(claims.Revocations), "connections_closed", closed)
	return nil
}

// applyPartners gives the running server the PARTNERS account's new claims:
// stored in its resolver (what it would fetch again) and applied to the
// account in place (server.UpdateAccountClaims), which refuses revoked
// users from then on and closes the connections of those connected
// (reason Revocation). Connections of revoked users still open after it
// are closed here, so that none is left reading. It returns how many
// connections of revoked users there were.
func (s *Server) applyPartners(claims *jwt.AccountClaims) (int, error) {
	token, err := claims.Encode(s.auth.operator)
	if err != nil {
		return 0, err
	}
	ac, err := jwt.DecodeAccountClaims(token)
	if err != nil {
		return 0, err
	}
	acc, err := s.srv.LookupAccount(ac.Subject)
	if err != nil {
		return 0, err
	}
	revoked, err := s.revokedConns(ac)
	if err != nil {
		return 0, err
	}
	if err := s.resolver.Store(ac.Subject, token); err != nil {
		return 0, err
	}
	s.srv.UpdateAccountClaims(acc, ac)
	left, err := s.revokedConns(ac)
	if err != nil {
		return 0, err
	}
	for _, cid := range left {
		s.srv.DisconnectClientByID(cid) // gone meanwhile: nothing to do
	}
	if len(left) > 0 {
		s.log.Warn("feeds: connections of revoked partner users closed by maillage, not by the server", "connections", len(left))
	}
	return len(revoked), nil
}

// revokedConns lists the connections to the account of ac whose user JWT
// ac revokes.
func (s *Server) revokedConns(ac *jwt.AccountClaims) ([]uint64, error) {
	var out []uint64
	for offset := 0; ; {
		cz, err := s.srv.Connz(&server.ConnzOptions{Account: ac.Subject, Username: true, Offset: offset, Limit: 1024})
		if err != nil {
			return nil, err
		}
		for _, c := range cz.Conns {
			if c.JWT == "" {
				continue
			}
			if uc, err := jwt.DecodeUserClaims(c.JWT); err == nil && ac.IsClaimRevoked(uc) {
				out = append(out, c.Cid)
			}
		}
		offset += len(cz.Conns)
		if len(cz.Conns) == 0 || offset >= cz.Total {
			return out, nil
		}
	}
}
