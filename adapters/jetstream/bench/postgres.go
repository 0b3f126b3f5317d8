package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PeerPostgres, as Options.Peer, runs the append scenario's Postgres peer.
const PeerPostgres = "postgres"

// ErrNoPostgres: the Postgres peer was asked for and no PostgreSQL server
// is installed (initdb and pg_ctl, as Debian's postgresql package installs
// them).
var ErrNoPostgres = errors.New("PostgreSQL n'est pas installé (initdb et pg_ctl introuvables, paquet Debian « postgresql ») : pair Postgres ignoré")

// pgPeer is a PostgreSQL server the bench started in a directory of its
// own, with an events table the way an event store on Postgres keeps one:
// unique (stream, version), one INSERT per command, synchronous commit (the
// default: a commit returns once its WAL is flushed, concurrent commits
// sharing one flush).
type pgPeer struct {
	dir, bin string
	runAs    []string // runuser -u postgres -- when root: postgres refuses to run as root
	pool     *pgxpool.Pool
	data     []byte
	cases    []string

	mu   sync.Mutex
	next []int64 // next version of each case
}

// pgBinDir finds initdb and pg_ctl: on PATH, else Debian's
// /usr/lib/postgresql/<major>/bin, highest major first.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// startPostgres initialises a cluster in a temporary directory, starts it on
// a unix socket there (no TCP port), creates the events table and connects
// writers connections.
func startPostgres(ctx context.Context, writers, cases int, data []byte) (*pgPeer, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "maillage-bench-pg-")
	if err != nil {
		return nil, err
	}
	p := &pgPeer{dir: dir, bin: bin, data: data, next: make([]int64, cases)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres peer: running as root, and no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	pgdata := filepath.Join(dir, "data")
	if out, err := p.cmd(ctx, "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		p.remove()
		return nil, fmt.Errorf("postgres peer: initdb: %w: %s", err, out)
	}
	// fsync and synchronous_commit stay on (their defaults): the peer is
	// as durable as the store it is compared with.
	conf := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories='%s' -c max_connections=%d -c shared_buffers=128MB -c fsync=on -c synchronous_commit=on", dir, writers+10)
	if out, err := p.cmd(ctx, "pg_ctl", "-D", pgdata, "-l", filepath.Join(dir, "log"), "-o", conf, "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		p.remove()
		return nil, fmt.Errorf("postgres peer: pg_ctl start: %w: %s", err, out)
	}
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf("host=%s user=postgres dbname=postgres sslmode=disable", dir))
	if err != nil {
		p.Close()
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = int32(writers), int32(writers)
	if p.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		p.Close()
		return nil, fmt.Errorf("postgres peer: connect: %w", err)
	}
	if _, err := p.pool.Exec(ctx, `CREATE TABLE events (
		position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		stream   uuid   NOT NULL,
		version  bigint NOT NULL,
		data     bytea  NOT NULL,
		UNIQUE (stream, version))`); err != nil {
		p.Close()
		return nil, fmt.Errorf("postgres peer: create table: %w", err)
	}
	for i := 0; i < cases; i++ {
		p.cases = append(p.cases, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	}
	return p, nil
}

func (p *pgPeer) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, p.runAs...), filepath.Join(p.bin, name)), args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// op returns the peer's command: one INSERT of the next version of a
// random case, in its own transaction. The version is reserved in memory
// first, so that concurrent writers of a case do not fail on the unique
// key (the store's writers reread the case on a conflict; a peer that
// retried would only be slower).
func (p *pgPeer) op(seed int64, writers int) func(context.Context, int, int) error {
	rnd := make([]*rand.Rand, writers)
	for w := range rnd {
		rnd[w] = rand.New(rand.NewPCG(uint64(seed)+2, uint64(w)))
	}
	return func(ctx context.Context, w, _ int) error {
		c := rnd[w].IntN(len(p.cases))
		p.mu.Lock()
		p.next[c]++
		v := p.next[c]
		p.mu.Unlock()
		_, err := p.pool.Exec(ctx, "INSERT INTO events (stream, version, data) VALUES ($1, $2, $3)", p.cases[c], v, p.data)
		return err
	}
}

// Close stops the server and removes its directory.
func (p *pgPeer) Close() {
	if p.pool != nil {
		p.pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p.cmd(ctx, "pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop").Run()
	p.remove()
}

func (p *pgPeer) remove() { os.RemoveAll(p.dir) }

// pgVersion is the server's version, for the report.
func (p *pgPeer) version(ctx context.Context) string {
	var v string
	if err := p.pool.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "?"
	}
	return strings.Fields(v)[0]
}
