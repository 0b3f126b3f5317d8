package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBenchAppendSmoke runs the append scenario for a second: the table
// parses, its figures are numbers, and the JSON report says the same.
func TestBenchAppendSmoke(t *testing.T) {
	jsonPath := filepath.Join(t.TempDir(), "append.json")
	var out, progress bytes.Buffer
	err := run(context.Background(), []string{"bench", "append", "--duration", "1s", "--writers", "4", "--cases", "8",
		"--data", t.TempDir(), "--json", jsonPath}, &out, &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	rows := parseTable(t, out.String())
	if len(rows) != 2 || rows[0]["phase"] != "raw durable publish" || rows[1]["phase"] != "append via domain/cases" {
		t.Fatalf("rows %v\n%s", rows, out.String())
	}
	for _, row := range rows {
		for _, col := range []string{"ops", "rate/s", "p50 ms", "p95 ms", "p99 ms", "errors", "heap MiB"} {
			if _, err := strconv.ParseFloat(row[col], 64); err != nil {
				t.Errorf("%s: %s is %q, not a number", row["phase"], col, row[col])
			}
		}
	}
	if !regexp.MustCompile(`append via domain / raw durable publish = [0-9.e+-]+ \(target >= 0\.8\): (met|NOT met)`).MatchString(out.String()) {
		t.Errorf("no ratio line:\n%s", out.String())
	}
	if !strings.Contains(progress.String(), "round 1/1") {
		t.Errorf("no progress on stderr: %q", progress.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Rows []struct {
			Phase string
			Ops   int64
		}
	}
	if err := json.Unmarshal(b, &report); err != nil || len(report.Rows) != 2 {
		t.Fatalf("JSON report: %v: %s", err, b)
	}
	for i, r := range report.Rows {
		if strconv.FormatInt(r.Ops, 10) != rows[i]["ops"] {
			t.Errorf("JSON says %d ops for %s, the table %s", r.Ops, r.Phase, rows[i]["ops"])
		}
	}
}

func TestBenchRefusesUnknownScenarios(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"bench", "nonsense"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "append, fanout, read, rebuild, verify") {
		t.Fatalf("unknown scenario: %v", err)
	}
	if err := run(context.Background(), []string{"bench"}, &out, &errOut); err == nil {
		t.Fatal("no scenario accepted")
	}
}

// parseTable reads a bench table: a title line, a header, rows, columns
// separated by at least two spaces.
func parseTable(t *testing.T, s string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "maillage bench ") {
		t.Fatalf("not a bench table:\n%s", s)
	}
	sep := regexp.MustCompile(`\s{2,}`)
	header := sep.Split(strings.TrimSpace(lines[1]), -1)
	var rows []map[string]string
	for _, line := range lines[2:] {
		cells := sep.Split(strings.TrimSpace(line), -1)
		if len(cells) != len(header) {
			break // the ratio and note lines
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = cells[i]
		}
		rows = append(rows, row)
	}
	return rows
}
