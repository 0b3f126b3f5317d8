package main

import (
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestBenchServeSmoke runs `maillage bench serve` for a second with a few
// readers and writers: the server starts as a process of its own, every
// request succeeds, and the table, the targets and the RSS samples print.
func TestBenchServeSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts a server")
	}
	bin := buildBinary(t)
	cmd := exec.Command(bin, "bench", "serve", "--duration", "1s", "--readers", "2", "--writers", "1", "--cases", "3", "--data", t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if runtime.GOOS == "linux" { // CPU, RSS and load are read from /proc
		for _, want := range []string{"all requests: server process CPU", "note: server RSS/Go heap in use over time", "note: load average before", "µs per request"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	}
	rows := parseTable(t, string(out))
	if len(rows) != 3 || !strings.HasPrefix(rows[0]["phase"], "GET timeline") || !strings.HasPrefix(rows[1]["phase"], "POST command") {
		t.Fatalf("rows %v\n%s", rows, out)
	}
	for _, row := range rows[:2] {
		if n, err := strconv.Atoi(row["ops"]); err != nil || n == 0 || row["errors"] != "0" {
			t.Errorf("%s: ops %q, errors %q\n%s", row["phase"], row["ops"], row["errors"], out)
		}
	}
	for _, want := range []string{`reads p99 ms = [0-9.e+-]+ \(target <= 10\): (met|NOT met)`, `reads/s = [0-9.e+-]+ \(target >= 5e\+03\): (met|NOT met)`,
		`bench append --peer postgres`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
