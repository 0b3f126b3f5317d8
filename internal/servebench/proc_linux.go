//go:build linux

package servebench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ: 100 on
// every Linux architecture Go supports).
const userHZ = 100

// procStats reads a process's CPU time (user and system) and resident set
// from /proc: the server's alone, not the load generator's.
func procStats(pid int) (cpu time.Duration, rss uint64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may hold spaces: fields are
	// counted after the last ")".
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("servebench: /proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("servebench: /proc/%d/stat: %d fields", pid, len(f))
	}
	// Fields 14 and 15 of stat (utime, stime) are 12 and 13 here (state is 3).
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	pages, err3 := strconv.ParseUint(f[21], 10, 64) // field 24: rss in pages
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, fmt.Errorf("servebench: /proc/%d/stat: bad numbers", pid)
	}
	cpu = time.Duration(ut+st) * time.Second / userHZ
	return cpu, pages * uint64(os.Getpagesize()), nil
}

const procStatsMeasured = true
