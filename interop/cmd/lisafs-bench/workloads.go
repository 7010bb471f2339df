package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/lisafs"
)

// The served tree (makeTree): both servers serve the same directory.
const (
	smallFiles   = 16      // file-00 .. file-15, 4 KiB each
	smallSize    = 4096    // bytes
	bigSize      = 1 << 20 // "big": 1 MiB
	dirEntries   = 10000   // dir10k/e-00000 .. e-09999 (empty files)
	getdentsSize = 65536   // bytes asked per Getdents64, as the sentry does
	maxConns     = 8
)

func smallName(idx int) string { return fmt.Sprintf("file-%02d", idx%smallFiles) }

// connTag names a connection's private file (pwrite) or directory (mkdir).
func connTag(kind, transport string, idx int) string {
	return fmt.Sprintf("%s-%s-%d", kind, transport, idx)
}

// makeTree creates the served tree under root.
func makeTree(root string) error {
	for _, d := range []string{root, filepath.Join(root, "dir10k"), filepath.Join(root, "w"), filepath.Join(root, "m")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	small := bytes.Repeat([]byte("lisafs-b"), smallSize/8)
	for i := 0; i < smallFiles; i++ {
		if err := os.WriteFile(filepath.Join(root, smallName(i)), small, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "big"), bytes.Repeat([]byte("0123456789abcdef"), bigSize/16), 0o644); err != nil {
		return err
	}
	for _, kind := range []string{serverOurs, serverGVisor} {
		for _, tr := range []string{"socket", "channel"} {
			for i := 0; i < maxConns; i++ {
				if err := os.WriteFile(filepath.Join(root, "w", connTag(kind, tr, i)), small, 0o644); err != nil {
					return err
				}
			}
		}
	}
	dir := filepath.Join(root, "dir10k")
	for i := 0; i < dirEntries; i++ {
		fd, err := unix.Open(filepath.Join(dir, fmt.Sprintf("e-%05d", i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	return nil
}

// workload is one RPC workload: prepare readies one connection and returns
// the operation to repeat and its cleanup.
type workload struct {
	name string
	// what one operation does, for the report.
	desc string
	// bytes moved per operation (for a GB/s figure), or 0.
	bytesPerOp int64
	// entries listed per operation, or 0.
	itemsPerOp int64
	prepare    func(c *conn, tag string, idx int) (op func() error, cleanup func(), err error)
}

var workloads = []workload{
	{
		name: "walk_stat",
		desc: "Walk(file) + FStat + Close (3 RPCs)",
		prepare: func(c *conn, tag string, idx int) (func() error, func(), error) {
			name := smallName(idx)
			var st lisafs.Statx
			return func() error {
				ino, err := c.root.Walk(ctx, name)
				if err != nil {
					return fmt.Errorf("Walk: %w", err)
				}
				fd := c.client.NewFD(ino.ControlFD)
				err = fd.StatTo(ctx, &st)
				fd.Close(ctx, true)
				if err == nil && st.Size != smallSize {
					err = fmt.Errorf("size %d, want %d", st.Size, smallSize)
				}
				return err
			}, func() {}, nil
		},
	},
	{
		name: "open_read_close",
		desc: "OpenAt(O_RDONLY) + PRead 4 KiB + Close, on a walked file (3 RPCs)",
		prepare: func(c *conn, tag string, idx int) (func() error, func(), error) {
			ctl, _, err := c.walk(c.root, smallName(idx))
			if err != nil {
				return nil, nil, err
			}
			buf := make([]byte, smallSize)
			return func() error {
					id, hostFD, err := ctl.OpenAt(ctx, unix.O_RDONLY)
					if err != nil {
						return fmt.Errorf("OpenAt: %w", err)
					}
					if hostFD >= 0 {
						unix.Close(hostFD)
					}
					ofd := c.client.NewFD(id)
					n, err := ofd.Read(ctx, buf, 0)
					ofd.Close(ctx, true)
					if err == nil && n != smallSize {
						err = fmt.Errorf("read %d bytes, want %d", n, smallSize)
					}
					return err
				}, func() {
					ctl.Close(ctx, true)
				}, nil
		},
	},
	{
		name:       "pwrite_4k",
		desc:       "PWrite 4 KiB at offset 0 of an open file, one file per connection (1 RPC)",
		bytesPerOp: smallSize,
		prepare: func(c *conn, tag string, idx int) (func() error, func(), error) {
			ctl, ofd, err := c.open(unix.O_WRONLY, "w", tag)
			if err != nil {
				return nil, nil, err
			}
			buf := bytes.Repeat([]byte{'w'}, smallSize)
			return func() error {
					n, err := ofd.Write(ctx, buf, 0)
					if err == nil && n != smallSize {
						err = fmt.Errorf("wrote %d bytes, want %d", n, smallSize)
					}
					return err
				}, func() {
					ofd.Close(ctx, true)
					ctl.Close(ctx, true)
				}, nil
		},
	},
	{
		name:       "getdents_10k",
		desc:       "list a 10,000-entry directory from offset 0: Getdents64 of 64 KiB until empty, on an open directory (~8 RPCs)",
		itemsPerOp: dirEntries,
		prepare: func(c *conn, tag string, idx int) (func() error, func(), error) {
			ctl, ofd, err := c.open(unix.O_RDONLY, "dir10k")
			if err != nil {
				return nil, nil, err
			}
			return func() error {
					count := int32(-getdentsSize) // negative: seek to 0 first
					total := 0
					for {
						ents, err := ofd.Getdents64(ctx, count)
						if err != nil {
							return fmt.Errorf("Getdents64: %w", err)
						}
						if len(ents) == 0 {
							break
						}
						total += len(ents)
						count = getdentsSize
					}
					if total < dirEntries {
						return fmt.Errorf("listed %d entries, want at least %d", total, dirEntries)
					}
					return nil
				}, func() {
					ofd.Close(ctx, true)
					ctl.Close(ctx, true)
				}, nil
		},
	},
	{
		name: "mkdir_unlink",
		desc: "MkdirAt + Close of its FD + UnlinkAt(AT_REMOVEDIR), one name per connection (3 RPCs)",
		prepare: func(c *conn, tag string, idx int) (func() error, func(), error) {
			dir, _, err := c.walk(c.root, "m")
			if err != nil {
				return nil, nil, err
			}
			return func() error {
					ino, err := dir.MkdirAt(ctx, tag, 0o755, 0, 0)
					if err != nil {
						return fmt.Errorf("MkdirAt: %w", err)
					}
					c.client.CloseFD(ctx, ino.ControlFD, true)
					if err := dir.UnlinkAt(ctx, tag, unix.AT_REMOVEDIR); err != nil {
						return fmt.Errorf("UnlinkAt: %w", err)
					}
					return nil
				}, func() {
					dir.Close(ctx, true)
				}, nil
		},
	},
	{
		name:       "pread_1m",
		desc:       "PRead 1 MiB at offset 0 of an open file (1 RPC)",
		bytesPerOp: bigSize,
		prepare: func(c *conn, tag string, idx int) (func() error, func(), error) {
			ctl, ofd, err := c.open(unix.O_RDONLY, "big")
			if err != nil {
				return nil, nil, err
			}
			buf := make([]byte, bigSize)
			return func() error {
					n, err := ofd.Read(ctx, buf, 0)
					if err == nil && n != bigSize {
						err = fmt.Errorf("read %d bytes, want %d", n, bigSize)
					}
					return err
				}, func() {
					ofd.Close(ctx, true)
					ctl.Close(ctx, true)
				}, nil
		},
	},
}

func workloadNames() []string {
	var names []string
	for _, w := range workloads {
		names = append(names, w.name)
	}
	return names
}

func findWorkload(name string) *workload {
	for i := range workloads {
		if workloads[i].name == name {
			return &workloads[i]
		}
	}
	return nil
}
