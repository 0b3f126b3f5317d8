package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// process is the real maillage binary running serve.
type process struct {
	cmd    *exec.Cmd
	url    string
	stdout string // path of its standard output
	stderr string // path of its (JSON) log
	done   chan error
}

// buildBinary builds cmd/maillage into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "maillage")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary runs `maillage serve` on data and waits until it listens.
func startBinary(t *testing.T, bin, data string, args ...string) *process {
	t.Helper()
	logs := t.TempDir()
	p := &process{stdout: filepath.Join(logs, "stdout"), stderr: filepath.Join(logs, "stderr"), done: make(chan error, 1)}
	stdout, err := os.Create(p.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	p.cmd = exec.Command(bin, append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for p.url == "" {
		select {
		case err := <-p.done:
			t.Fatalf("maillage serve exited: %v\n%s", err, p.logs(t))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("maillage serve did not listen within a minute:\n%s", p.logs(t))
		}
		for _, line := range p.logLines(t) {
			if line["msg"] == "maillage serving" {
				p.url = "http://" + line["addr"].(string)
			}
		}
	}
	return p
}

func (p *process) logs(t *testing.T) string {
	b, err := os.ReadFile(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (p *process) logLines(t *testing.T) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.logs(t)))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			out = append(out, line)
		}
	}
	return out
}

// vars reads the demo's exports from the process's standard output.
func (p *process) vars(t *testing.T) map[string]string {
	b, err := os.ReadFile(p.stdout)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(strings.Fields(rest)[0], "=")
			vars[k] = v
		}
	}
	return vars
}

// stop sends SIGTERM and waits for the process to exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("maillage serve exited with %v after SIGTERM:\n%s", err, p.logs(t))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("maillage serve still running a minute after SIGTERM:\n%s", p.logs(t))
	}
}

// acked is a command the server acknowledged with 201.
type acked struct {
	caseVar, summary string
	id               string
	sequence         int
}

// TestSIGTERMUnderLoadLosesNoAcknowledgedCommand runs the real binary,
// records commands from concurrent clients, sends SIGTERM in the middle,
// restarts on the same data and finds every acknowledged command recorded
// exactly once, at the sequence it was acknowledged with.
func TestSIGTERMUnderLoadLosesNoAcknowledgedCommand(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	p := startBinary(t, bin, data, "--demo")
	vars := p.vars(t)
	writers := []struct{ caseVar, who string }{{"CASE_INES", "AED"}, {"CASE_LEO", "MECS"}, {"CASE_NOAH", "FOSTER"}, {"CASE_LEO", "DITEP"}}

	var (
		mu         sync.Mutex
		acks       []acked
		unexpected []string
		count      atomic.Int64
		signalled  atomic.Bool
		afterSig   atomic.Int64 // requests sent before SIGTERM and acknowledged after it
	)
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for g := range 16 {
		w := writers[g%len(writers)]
		wg.Go(func() {
			for i := 0; ; i++ {
				summary := fmt.Sprintf("charge %d-%d", g, i)
				body := `{"type":"ObservationRecorded","payload":{"summary":"` + summary + `"}}`
				req, _ := http.NewRequest("POST", p.url+"/v1/cases/"+vars[w.caseVar]+"/events", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+vars[w.who])
				req.Header.Set("Content-Type", "application/json")
				sentBefore := !signalled.Load()
				resp, err := client.Do(req)
				if err != nil {
					return // the server stopped accepting
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					mu.Lock()
					unexpected = append(unexpected, fmt.Sprintf("%d %s", resp.StatusCode, b))
					mu.Unlock()
					return
				}
				var ans struct {
					Events []struct {
						ID       string `json:"id"`
						Sequence int    `json:"sequence"`
					} `json:"events"`
				}
				if err := json.Unmarshal(b, &ans); err != nil || len(ans.Events) != 1 {
					mu.Lock()
					unexpected = append(unexpected, fmt.Sprintf("201 with %s", b))
					mu.Unlock()
					return
				}
				if sentBefore && signalled.Load() {
					afterSig.Add(1)
				}
				mu.Lock()
				acks = append(acks, acked{w.caseVar, summary, ans.Events[0].ID, ans.Events[0].Sequence})
				mu.Unlock()
				count.Add(1)
			}
		})
	}
	for count.Load() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	signalled.Store(true)
	p.stop(t)
	wg.Wait()
	for _, u := range unexpected {
		t.Errorf("answer during shutdown: %s", u)
	}
	t.Logf("%d commands acknowledged, %d of them sent before SIGTERM and answered after it", len(acks), afterSig.Load())
	if !strings.Contains(p.logs(t), "shutting down") {
		t.Errorf("no shutdown line in the log")
	}

	// Restart on the same data and read every case as the auditor.
	p2 := startBinary(t, bin, data)
	defer p2.stop(t)
	recorded := map[string]map[string][]int{} // case var -> event id -> sequences
	summaries := map[string]int{}
	for _, c := range []string{"CASE_INES", "CASE_LEO", "CASE_NOAH"} {
		recorded[c] = map[string][]int{}
		for _, e := range readTimeline(t, p2.url, vars[c], vars["AUDITOR"]) {
			recorded[c][e.ID] = append(recorded[c][e.ID], e.Sequence)
			if strings.HasPrefix(e.Payload.Summary, "charge ") {
				summaries[e.Payload.Summary]++
			}
		}
	}
	for _, a := range acks {
		if seqs := recorded[a.caseVar][a.id]; len(seqs) != 1 || seqs[0] != a.sequence {
			t.Errorf("acknowledged event %s (%s, sequence %d) found at sequences %v after restart", a.id, a.caseVar, a.sequence, seqs)
		}
		if n := summaries[a.summary]; n != 1 {
			t.Errorf("acknowledged command %q recorded %d times", a.summary, n)
		}
	}
}

type timelineEvent struct {
	ID       string `json:"id"`
	Sequence int    `json:"sequence"`
	Payload  struct {
		Summary string `json:"summary"`
	} `json:"payload"`
}

// readTimeline reads a whole timeline, page by page.
func readTimeline(t *testing.T, url, caseID, token string) []timelineEvent {
	t.Helper()
	var all []timelineEvent
	after := 0
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/cases/%s/timeline?limit=1000&after=%d", url, caseID, after), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("timeline: %d %s", resp.StatusCode, b)
		}
		var page struct {
			Events []timelineEvent `json:"events"`
			Next   *int            `json:"next"`
		}
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Events...)
		if page.Next == nil {
			return all
		}
		after = *page.Next
	}
}
