package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsCluster is a real nats-server cluster with JetStream, in this process.
// Each node stores in its own directory and is reached only through TCP
// proxies: one for its clients, and one per other node for the routes that
// node opens to it (nodes advertise their client proxy to clients, and an
// address where nothing listens for routes, so that every route goes
// through a proxy). So a node can be stopped and started again with its
// data (stop, start: a clean shutdown, in which nats-server hands its
// leaderships over first), or cut off the network while it runs (cut: as a
// crashed machine or a partition, nothing is handed over and the others
// must elect new leaders).
type natsCluster struct {
	t       *testing.T
	base    func(i int) *natsserver.Options // node i's configuration, read again at every start
	ports   []int                           // client and route port of each node, then one where nothing listens
	stores  []string                        // JetStream storage of each node
	nodes   []*natsserver.Server            // nil while stopped
	clients []*proxy                        // clients to node i
	routes  [][]*proxy                      // routes[i][j]: node i to node j (nil for i == j)
}

// startNATSCluster starts n nodes routed to each other and waits until
// JetStream has a meta leader and every node is current. It shuts them
// down when the test ends.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	return startNATSClusterWith(t, n, func(int) *natsserver.Options { return &natsserver.Options{} })
}

// startNATSClusterWith starts n nodes as startNATSCluster does, node i from
// the options base(i) returns (its configuration file's, say, read again
// each time the node starts), completed with its name, ports, storage and
// routes.
func startNATSClusterWith(t *testing.T, n int, base func(i int) *natsserver.Options) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, base: base, nodes: make([]*natsserver.Server, n), ports: freePorts(t, 2*n+1)}
	t.Cleanup(c.shutdown)
	for i := range n {
		c.clients = append(c.clients, newProxy(t, fmt.Sprintf("127.0.0.1:%d", c.ports[2*i])))
		c.routes = append(c.routes, make([]*proxy, n))
		c.stores = append(c.stores, t.TempDir())
	}
	for i := range n {
		for j := range n {
			if j != i {
				c.routes[i][j] = newProxy(t, fmt.Sprintf("127.0.0.1:%d", c.ports[2*j+1]))
			}
		}
	}
	for i := range n {
		c.start(i)
	}
	c.waitCurrent()
	return c
}

// options returns node i's options: its configuration, with its name,
// ports, storage and routes (through the proxies).
func (c *natsCluster) options(i int) *natsserver.Options {
	o := c.base(i)
	var routes []*url.URL
	for j, p := range c.routes[i] {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats", Host: p.addr()})
		}
	}
	o.ServerName = fmt.Sprintf("nats-%d", i)
	o.Host, o.Port, o.ClientAdvertise = "127.0.0.1", c.ports[2*i], c.clients[i].addr()
	o.JetStream, o.StoreDir = true, c.stores[i]
	o.Cluster = natsserver.ClusterOpts{Name: "maillage-test", Host: "127.0.0.1", Port: c.ports[2*i+1],
		Advertise: fmt.Sprintf("127.0.0.1:%d", c.ports[len(c.ports)-1])}
	o.Routes = routes
	o.NoSigs, o.NoLog = true, true
	return o
}

// freePorts returns n ports of 127.0.0.1 that were free when asked, taken
// below the kernel's ephemeral range (32768 and up on Linux): the test
// process dials and redials these ports while nodes are down, and a port in
// that range can meanwhile become the local port of one of its outgoing
// connections (or a dial connect to itself), so that a node could not
// listen on it again ("address already in use" on a restart, seen).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 1000 {
			t.Fatalf("no %d free ports found below 32768", n)
		}
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken: another
		}
		defer l.Close()
		ports = append(ports, port)
	}
	return ports
}

// URLs is the comma-separated client URLs of every node, as --nats takes
// them.
func (c *natsCluster) URLs() string {
	var urls []string
	for _, p := range c.clients {
		urls = append(urls, "nats://"+p.addr())
	}
	return strings.Join(urls, ",")
}

// start starts node i (again), on its ports and storage. Its ports were
// free when chosen, but an outgoing connection of the test process can be
// given one of them meanwhile, and the node then never listens: it is
// started again, a few times.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := natsserver.NewServer(c.options(i))
		if err != nil {
			c.t.Fatalf("node %d: %v", i, err)
		}
		log := &nodeLog{}
		s.SetLoggerV2(log, false, false, false)
		go s.Start()
		if s.ReadyForConnections(20 * time.Second) {
			c.nodes[i] = s
			return
		}
		why := fmt.Sprintf("client listener %v, route listener %v, running %v; warnings and errors: %s",
			s.Addr(), s.ClusterAddr(), s.Running(), log.String())
		s.Shutdown()
		s.WaitForShutdown()
		if attempt == 3 {
			c.t.Fatalf("node %d not ready for connections after %d attempts: %s", i, attempt, why)
		}
		c.t.Logf("node %d not ready for connections: starting it again (%s)", i, why)
	}
}

// nodeLog keeps a test node's warnings and errors, to say why it did not
// start.
type nodeLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *nodeLog) add(level, format string, v []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < 20 {
		l.lines = append(l.lines, level+" "+fmt.Sprintf(format, v...))
	}
}

func (l *nodeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, " | ")
}

func (l *nodeLog) Noticef(string, ...any)         {}
func (l *nodeLog) Debugf(string, ...any)          {}
func (l *nodeLog) Tracef(string, ...any)          {}
func (l *nodeLog) Warnf(format string, v ...any)  { l.add("WRN", format, v) }
func (l *nodeLog) Errorf(format string, v ...any) { l.add("ERR", format, v) }
func (l *nodeLog) Fatalf(format string, v ...any) { l.add("FTL", format, v) }

// stop shuts node i down cleanly.
func (c *natsCluster) stop(i int) {
	s := c.nodes[i]
	c.nodes[i] = nil
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// cut cuts node i off: its connections to clients and to the other nodes
// close and new ones are refused, while it runs on. It stays cut.
func (c *natsCluster) cut(i int) {
	c.clients[i].cut()
	for j := range c.nodes {
		if j != i {
			c.routes[i][j].cut()
			c.routes[j][i].cut()
		}
	}
}

func (c *natsCluster) shutdown() {
	for i := range c.nodes {
		c.cut(i)
		c.stop(i)
	}
}

// streamLeader returns the index of the node leading a stream of the
// default account, or -1. A cut node may still believe it leads: it is
// not asked.
func (c *natsCluster) streamLeader(stream string) int {
	for i, s := range c.nodes {
		if s != nil && !c.clients[i].isCut() && s.JetStreamIsStreamLeader(natsserver.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// waitCurrent waits (a bounded number of times) until a meta leader is
// elected and every running node is current with it.
func (c *natsCluster) waitCurrent() {
	c.t.Helper()
	for range 600 {
		leader, current := false, true
		for i, s := range c.nodes {
			if s == nil || c.clients[i].isCut() {
				continue
			}
			leader = leader || s.JetStreamIsLeader()
			current = current && s.JetStreamIsCurrent()
		}
		if leader && current {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("the NATS cluster has no JetStream meta leader, or nodes are not current")
}

// proxy forwards the TCP connections it accepts to a target, until cut.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	isOff bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(in)
	}
}

func (p *proxy) forward(in net.Conn) {
	out, err := net.Dial("tcp", p.target)
	if err == nil && out.LocalAddr().String() == out.RemoteAddr().String() {
		// While the node is down, a dial to its port from an ephemeral port
		// that happens to be the same connects the socket to itself (TCP
		// simultaneous open) and holds the port: the node could not listen
		// on it again. Seen as "address already in use" on a restart.
		out.Close()
		err = errors.New("connected to itself")
	}
	if err != nil {
		in.Close() // the node is down: as a refused connection
		return
	}
	if !p.track(in, out) {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src) //nolint:errcheck // either side closing ends both
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}

// track registers a forwarded pair, or closes it when the proxy is cut.
func (p *proxy) track(in, out net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isOff {
		in.Close()
		out.Close()
		return false
	}
	p.conns[in], p.conns[out] = struct{}{}, struct{}{}
	return true
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isOff = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
}

func (p *proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.isOff
}
