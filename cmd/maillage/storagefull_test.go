//go:build linux

package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallDisk mounts a tmpfs of size (e.g. "8m") on a new directory, or skips
// the test when it cannot (not root; CI runs the tests as root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk is tested on a small tmpfs, which only root may mount (CI runs the tests as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillDisk fills dir's disk to the last byte with a file, and returns it.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 16, 1 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Bavail != 0 {
		t.Fatalf("the disk is not full: %d blocks free (%v)", st.Bavail, err)
	}
	return path
}

// TestFullDiskNamedAndRecoveredWithoutRestart: on a disk filled to the last
// byte, writes and reads (which need an access record) answer 507
// storage_full, /readyz names it and the metric says it; once space is
// freed, writes are accepted again by the same process; a shutdown on a
// full disk is clean; nothing acknowledged is lost.
func TestFullDiskNamedAndRecoveredWithoutRestart(t *testing.T) {
	dir := smallDisk(t, "16m")
	s := mustServe(t, dir)
	waitReady(t, s)
	events := "/v1/cases/" + s.vars["CASE_LEO"] + "/events"
	observe := func(summary string) answer {
		return s.do("POST", events, "ASE", `{"type":"ObservationRecorded","payload":{"summary":"`+summary+`"}}`)
	}
	for _, x := range []string{"un", "deux", "trois"} {
		wantStatus(t, observe("avant "+x), http.StatusCreated)
	}
	acknowledged := len(s.timeline("CASE_LEO", "ASE"))

	filler := fillDisk(t, dir)
	// A write may still fit in a page a file already holds: it is
	// acknowledged then, and must be kept; the next ones find the disk full.
	for i := 0; ; i++ {
		a := observe("disque plein")
		if a.status == http.StatusCreated && i < 1000 {
			acknowledged++
			continue
		}
		if a.status != http.StatusInsufficientStorage || a.json(t)["rule"] != "storage_full" || !strings.Contains(string(a.body), "le disque du répertoire de données est plein") {
			t.Fatalf("a write on a full disk: %d %s, want 507 storage_full", a.status, a.body)
		}
		t.Logf("%d writes acknowledged on the full disk before the first 507", i)
		break
	}
	// Known full now: refused at once, reads too (they cannot be recorded).
	if a := observe("disque plein, encore"); a.status != http.StatusInsufficientStorage {
		t.Fatalf("second write: %d %s", a.status, a.body)
	}
	if a := s.do("GET", "/v1/cases/"+s.vars["CASE_LEO"]+"/timeline", "ASE", ""); a.status != http.StatusInsufficientStorage {
		t.Fatalf("a read on a full disk: %d %s, want 507", a.status, a.body)
	}
	if r := s.do("GET", "/readyz", "", ""); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "storage_full") {
		t.Fatalf("/readyz on a full disk: %d %s", r.status, r.body)
	}
	if m := s.do("GET", "/metrics", "", ""); !strings.Contains(string(m.body), "maillage_storage_full 1") {
		t.Error("maillage_storage_full is not 1 on a full disk")
	}

	// Space freed: the same process takes writes again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, s, func(a answer) bool { return !strings.Contains(string(a.body), "storage_full (") })
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := observe("après")
		if a.status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted after space was freed: %d %s", a.status, a.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	acknowledged++
	if m := s.do("GET", "/metrics", "", ""); !strings.Contains(string(m.body), "maillage_storage_full 0") {
		t.Error("maillage_storage_full is not back to 0")
	}
	if got := len(s.timeline("CASE_LEO", "ASE")); got != acknowledged {
		t.Fatalf("%d events after recovery, want the %d acknowledged", got, acknowledged)
	}

	// A shutdown (SIGTERM) on a full disk is clean.
	filler = fillDisk(t, dir)
	if err := s.main.Close(); err != nil {
		t.Fatalf("shutdown on a full disk: %v", err)
	}
	s.main = nil
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--data", dir, "--addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	again := &server{t: t, main: m, dir: dir, vars: s.vars}
	t.Cleanup(again.close)
	if got := len(again.timeline("CASE_LEO", "ASE")); got != acknowledged {
		t.Fatalf("%d events after a restart, want the %d acknowledged", got, acknowledged)
	}
}
