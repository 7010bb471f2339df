package main

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// floorOp is the raw host syscall sequence closest to one RPC workload (or
// one of the named floor measurements), run from Go on the served tree.
type floorOp struct {
	name string
	// workload is the RPC workload this is the floor of, if any.
	workload string
	desc     string
	prepare  func(root int) (op func() error, cleanup func(), err error)
}

var floorOps = []floorOp{
	{
		name: "fstatat", workload: "walk_stat",
		desc: "fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)",
		prepare: func(root int) (func() error, func(), error) {
			var st unix.Stat_t
			return func() error {
				return unix.Fstatat(root, smallName(0), &st, unix.AT_SYMLINK_NOFOLLOW)
			}, func() {}, nil
		},
	},
	{
		name: "openat_close",
		desc: "openat(dirfd, name, O_RDONLY) + close",
		prepare: func(root int) (func() error, func(), error) {
			return func() error {
				fd, err := unix.Openat(root, smallName(0), unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				return unix.Close(fd)
			}, func() {}, nil
		},
	},
	{
		name: "pread_4k",
		desc: "pread 4 KiB at offset 0",
		prepare: func(root int) (func() error, func(), error) {
			fd, err := unix.Openat(root, smallName(0), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, nil, err
			}
			buf := make([]byte, smallSize)
			return func() error {
				_, err := unix.Pread(fd, buf, 0)
				return err
			}, func() { unix.Close(fd) }, nil
		},
	},
	{
		name: "open_read_close", workload: "open_read_close",
		desc: "openat + pread 4 KiB + close",
		prepare: func(root int) (func() error, func(), error) {
			buf := make([]byte, smallSize)
			return func() error {
				fd, err := unix.Openat(root, smallName(0), unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				_, err = unix.Pread(fd, buf, 0)
				unix.Close(fd)
				return err
			}, func() {}, nil
		},
	},
	{
		name: "pwrite_4k", workload: "pwrite_4k",
		desc: "pwrite 4 KiB at offset 0",
		prepare: func(root int) (func() error, func(), error) {
			fd, err := unix.Openat(root, filepath.Join("w", connTag("floor", "host", 0)), unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return nil, nil, err
			}
			buf := make([]byte, smallSize)
			return func() error {
				_, err := unix.Pwrite(fd, buf, 0)
				return err
			}, func() { unix.Close(fd) }, nil
		},
	},
	{
		name: "getdents_10k", workload: "getdents_10k",
		desc: "lseek 0 + getdents64 of 64 KiB until empty, on an open directory",
		prepare: func(root int) (func() error, func(), error) {
			fd, err := unix.Openat(root, "dir10k", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, nil, err
			}
			buf := make([]byte, getdentsSize)
			return func() error {
				if _, err := unix.Seek(fd, 0, 0); err != nil {
					return err
				}
				for {
					n, err := unix.Getdents(fd, buf)
					if err != nil {
						return err
					}
					if n == 0 {
						return nil
					}
				}
			}, func() { unix.Close(fd) }, nil
		},
	},
	{
		name: "mkdir_unlink", workload: "mkdir_unlink",
		desc: "mkdirat + unlinkat(AT_REMOVEDIR)",
		prepare: func(root int) (func() error, func(), error) {
			name := filepath.Join("m", "floor")
			return func() error {
				if err := unix.Mkdirat(root, name, 0o755); err != nil {
					return err
				}
				return unix.Unlinkat(root, name, unix.AT_REMOVEDIR)
			}, func() {}, nil
		},
	},
	{
		name: "pread_1m", workload: "pread_1m",
		desc: "pread 1 MiB at offset 0",
		prepare: func(root int) (func() error, func(), error) {
			fd, err := unix.Openat(root, "big", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, nil, err
			}
			buf := make([]byte, bigSize)
			return func() error {
				n, err := unix.Pread(fd, buf, 0)
				if err == nil && n != bigSize {
					err = fmt.Errorf("short read %d", n)
				}
				return err
			}, func() { unix.Close(fd) }, nil
		},
	},
}

// runFloor measures the raw syscalls from one goroutine.
func runFloor(o *options, root string) error {
	dirfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	for _, f := range floorOps {
		progress("syscall floor: %s", f.name)
		op, cleanup, err := f.prepare(dirfd)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		ops := []func() error{op}
		if _, err := measure(ops, warmup, 16); err != nil {
			cleanup()
			return fmt.Errorf("%s: %w", f.name, err)
		}
		var rounds []float64
		for r := 0; r < o.rounds; r++ {
			v, err := measure(ops, o.floorRound, 16)
			if err != nil {
				cleanup()
				return fmt.Errorf("%s: %w", f.name, err)
			}
			rounds = append(rounds, v)
		}
		cleanup()
		m := median(rounds)
		emit(map[string]any{
			"part":     "floor",
			"op":       f.name,
			"workload": f.workload,
			"desc":     f.desc,
			"unit":     "ops/s",
			"rounds":   rounds,
			"median":   m,
			"nsPerOp":  1e9 / m,
		})
	}
	return nil
}
