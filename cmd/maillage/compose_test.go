package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of a compose file the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       string            `yaml:"build"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"` // a list or a map
	Environment map[string]string `yaml:"environment"`
}

// dependencies returns the services a service depends on, in either form.
func (s composeService) dependencies(t *testing.T) []string {
	t.Helper()
	switch s.DependsOn.Kind {
	case 0:
		return nil
	case yaml.SequenceNode:
		var names []string
		if err := s.DependsOn.Decode(&names); err != nil {
			t.Fatal(err)
		}
		return names
	case yaml.MappingNode:
		var m map[string]any
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatal(err)
		}
		var names []string
		for n := range m {
			names = append(names, n)
		}
		return names
	}
	t.Fatalf("depends_on: neither a list nor a map")
	return nil
}

// serveFlags returns the flags of maillage serve and the environment
// variables they read, from the help of the FlagSet serve parses.
func serveFlags(t *testing.T) (map[string]bool, map[string]bool) {
	t.Helper()
	var help bytes.Buffer
	if err := NewMain(io.Discard, &help).ParseFlags([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v", err)
	}
	flags, envs := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(help.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			flags[strings.Fields(rest)[0]] = true
		}
		for _, e := range regexp.MustCompile(`MAILLAGE_[A-Z_]+`).FindAllString(line, -1) {
			envs[e] = true
		}
	}
	if !flags["store"] || !flags["nats"] || !envs["MAILLAGE_NATS"] {
		t.Fatalf("could not read serve's flags from its help:\n%s", help.String())
	}
	return flags, envs
}

// TestComposeIsConsistent checks compose.yaml, which cannot run here: every
// service it refers to exists (dependencies, URLs in maillage's flags,
// NATS routes, Prometheus targets), host ports do not clash, volumes are
// declared or exist, the maillage replicas are built by the Dockerfile and
// their flags and environment are serve's, with values serve accepts.
func TestComposeIsConsistent(t *testing.T) {
	root := filepath.Join("..", "..")
	raw, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	flags, envs := serveFlags(t)
	exists := func(host, where string) {
		t.Helper()
		if _, ok := c.Services[host]; !ok {
			t.Errorf("%s refers to %q, which is not a service", where, host)
		}
	}

	published := map[string]string{} // host port -> service
	var maillages, natsNodes []string
	for name, s := range c.Services {
		for _, d := range s.dependencies(t) {
			exists(d, name+" depends_on")
		}
		for _, p := range s.Ports {
			host := hostPort(t, p)
			if other, ok := published[host]; ok {
				t.Errorf("host port %s published by %s and %s", host, other, name)
			}
			published[host] = name
		}
		for _, v := range s.Volumes {
			source, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(source, ".") || strings.HasPrefix(source, "/") {
				if _, err := os.Stat(filepath.Join(root, source)); err != nil {
					t.Errorf("%s mounts %s: %v", name, source, err)
				}
			} else if _, ok := c.Volumes[source]; !ok {
				t.Errorf("%s uses volume %s, not declared under volumes", name, source)
			}
		}
		switch {
		case len(s.Command) > 0 && s.Command[0] == "serve":
			maillages = append(maillages, name)
		case strings.HasPrefix(s.Image, "nats:"):
			natsNodes = append(natsNodes, name)
		}
	}
	if len(maillages) < 2 || len(natsNodes) < 3 {
		t.Fatalf("%d maillage replicas and %d NATS nodes, want at least 2 and 3", len(maillages), len(natsNodes))
	}

	for _, name := range natsNodes {
		for _, arg := range c.Services[name].Command {
			if routes, ok := strings.CutPrefix(arg, "--routes="); ok {
				for _, u := range strings.Split(routes, ",") {
					exists(urlHost(t, u), name+" --routes")
				}
			}
		}
	}

	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil || !strings.Contains(string(dockerfile), "go build") || !strings.Contains(string(dockerfile), "./cmd/maillage") {
		t.Fatalf("the Dockerfile does not build ./cmd/maillage: %v", err)
	}
	scraped := prometheusTargets(t, root, c)
	for _, name := range maillages {
		s := c.Services[name]
		if s.Build != "." {
			t.Errorf("%s is not built from the Dockerfile (build: %q)", name, s.Build)
		}
		args := s.Command[1:]
		for _, a := range args {
			f, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !strings.HasPrefix(a, "-") || !flags[f] {
				t.Errorf("%s: %q is not a flag of maillage serve", name, a)
			}
		}
		for k, v := range s.Environment {
			if !envs[k] {
				t.Errorf("%s: environment variable %s is not read by maillage serve", name, k)
			}
			t.Setenv(k, v)
		}
		m := NewMain(io.Discard, io.Discard)
		if err := m.ParseFlags(args); err != nil {
			t.Errorf("%s: maillage serve %s: %v", name, strings.Join(args, " "), err)
			continue
		}
		for _, u := range strings.Split(m.NatsURL, ",") {
			if h := urlHost(t, u); !slices.Contains(natsNodes, h) {
				t.Errorf("%s: --nats names %s, not a NATS node", name, h)
			}
		}
		if m.natsReplicas() > len(natsNodes) {
			t.Errorf("%s: %d NATS replicas on %d nodes", name, m.natsReplicas(), len(natsNodes))
		}
		if m.Store == storeKurrentDB {
			exists(urlHost(t, m.KurrentDBURL), name+" --kurrentdb")
		}
		_, port, err := net.SplitHostPort(m.Addr)
		if err != nil {
			t.Fatalf("%s: --addr %s: %v", name, m.Addr, err)
		}
		if !scraped[name+":"+port] {
			t.Errorf("%s: Prometheus does not scrape %s:%s", name, name, port)
		}
	}
}

// hostPort returns the host side of a port mapping ([ip:]host:container
// [/protocol]), with its address and protocol.
func hostPort(t *testing.T, mapping string) string {
	t.Helper()
	spec, proto, _ := strings.Cut(mapping, "/")
	parts := strings.Split(spec, ":")
	if len(parts) < 2 {
		t.Errorf("port %q publishes no host port", mapping)
		return mapping
	}
	host := strings.Join(parts[:len(parts)-1], ":")
	if !strings.Contains(host, ":") {
		host = "0.0.0.0:" + host
	}
	return host + "/" + cmpOr(proto, "tcp")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func urlHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("URL %q: %v", raw, err)
	}
	return u.Hostname()
}

// prometheusTargets reads the Prometheus configuration compose.yaml mounts
// and returns its scrape targets, each of them checked to be a service.
func prometheusTargets(t *testing.T, root string, c composeFile) map[string]bool {
	t.Helper()
	var config string
	for _, s := range c.Services {
		for _, v := range s.Volumes {
			if source, target, _ := strings.Cut(v, ":"); strings.HasPrefix(target, "/etc/prometheus/prometheus.yml") {
				config = source
			}
		}
	}
	if config == "" {
		t.Fatal("no service mounts a Prometheus configuration")
	}
	raw, err := os.ReadFile(filepath.Join(root, config))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &p); err != nil {
		t.Fatalf("%s: %v", config, err)
	}
	targets := map[string]bool{}
	for _, sc := range p.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, _, err := net.SplitHostPort(target)
				if err != nil {
					t.Fatalf("%s: target %s: %v", config, target, err)
				}
				if _, ok := c.Services[host]; !ok {
					t.Errorf("%s scrapes %s, which is not a service", config, target)
				}
				targets[target] = true
			}
		}
	}
	return targets
}
