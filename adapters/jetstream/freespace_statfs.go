//go:build linux || darwin

package jetstream

import "syscall"

// freeSpace returns the bytes an unprivileged process may still write on
// the disk holding dir.
func freeSpace(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
