package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/lisafs"
)

const (
	memFilesPerDir = 1000
	// memFDMargin leaves room under RLIMIT_NOFILE for the server's own FDs
	// (root, /proc/self/fd, sockets, directories walked).
	memFDMargin = 512
	// memSettle lets the server finish freeing per-request buffers before
	// RSS is read.
	memSettle = 300 * time.Millisecond
)

// runMem measures, per server, the resident memory held per idle control
// FD: RSS after walking N files (keeping every control FD) minus RSS before.
//
// Every control FD holds a host FD on both servers, so N is capped by the
// server's RLIMIT_NOFILE (which a non-privileged process cannot raise).
func runMem(o *options, root, sockBase string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	bins := map[string]string{serverOurs: o.ours, serverGVisor: o.gofer}
	kinds := []string{serverOurs, serverGVisor}

	// Find the FD limit both servers run with, then size the tree.
	n := o.memFDs
	limits := map[string]uint64{}
	for _, k := range kinds {
		s, err := startServer(k, bins[k], root, sockBase+"-"+k)
		if err != nil {
			return err
		}
		lim, err := nofileLimit(s.pid())
		s.stop()
		if err != nil {
			return err
		}
		limits[k] = lim
		if capN := (int(lim) - memFDMargin) / memFilesPerDir * memFilesPerDir; capN < n {
			n = capN
		}
	}
	if n < memFilesPerDir {
		return fmt.Errorf("RLIMIT_NOFILE too low for the memory part: %v", limits)
	}
	dirs := n / memFilesPerDir
	progress("memory: creating %d files in %d directories (asked for %d; servers' RLIMIT_NOFILE %v)", n, dirs, o.memFDs, limits)
	for d := 0; d < dirs; d++ {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for i := 0; i < memFilesPerDir; i++ {
			fd, err := unix.Open(filepath.Join(dir, fmt.Sprintf("f%04d", i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return err
			}
			unix.Close(fd)
		}
	}

	for _, k := range kinds {
		progress("memory: %s, %d idle control FDs", k, n)
		if err := memOne(k, bins[k], root, sockBase+"-"+k, n, dirs, o.memFDs, limits[k]); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func memOne(kind, bin, root, sock string, n, dirs, asked int, limit uint64) error {
	s, err := startServer(kind, bin, root, sock)
	if err != nil {
		return err
	}
	defer s.stop()
	c, err := dial(s, false)
	if err != nil {
		return err
	}
	defer c.close()

	// The directories' FDs and one warm-up walk per directory (then closed)
	// are part of the baseline.
	dirFDs := make([]lisafs.ClientFD, dirs)
	for d := range dirFDs {
		fd, _, err := c.walk(c.root, fmt.Sprintf("d%03d", d))
		if err != nil {
			return err
		}
		dirFDs[d] = fd
		ino, err := fd.Walk(ctx, "f0000")
		if err != nil {
			return err
		}
		c.client.CloseFD(ctx, ino.ControlFD, true)
	}
	time.Sleep(memSettle)
	before, err := rssBytes(s.pid())
	if err != nil {
		return err
	}
	ids := make([]lisafs.FDID, 0, n)
	t0 := time.Now()
	for d := range dirFDs {
		for i := 0; i < memFilesPerDir; i++ {
			ino, err := dirFDs[d].Walk(ctx, fmt.Sprintf("f%04d", i))
			if err != nil {
				return fmt.Errorf("walk %d of %d: %w", len(ids)+1, n, err)
			}
			ids = append(ids, ino.ControlFD)
		}
	}
	walkTime := time.Since(t0)
	time.Sleep(memSettle)
	after, err := rssBytes(s.pid())
	if err != nil {
		return err
	}
	// Release them (batched, as the sentry does) and see what comes back.
	for _, id := range ids {
		c.client.CloseFD(ctx, id, false)
	}
	for _, fd := range dirFDs {
		fd.Close(ctx, true)
	}
	time.Sleep(memSettle)
	released, err := rssBytes(s.pid())
	if err != nil {
		return err
	}
	emit(map[string]any{
		"part":          "mem",
		"server":        kind,
		"fds":           n,
		"asked":         asked,
		"nofileLimit":   limit,
		"rssBefore":     before,
		"rssAfter":      after,
		"rssAfterClose": released,
		"bytesPerFd":    float64(after-before) / float64(n),
		"walkNsPerOp":   float64(walkTime.Nanoseconds()) / float64(n),
	})
	return nil
}
