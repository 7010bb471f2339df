package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/unet"
)

// Server kinds, as they appear in the JSON output.
const (
	serverOurs   = "ours"
	serverGVisor = "gvisor"
)

// server is one running server process in --socket mode.
type server struct {
	kind   string
	sock   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// startServer starts bin serving root on the Unix socket sock and waits
// until it accepts connections.
func startServer(kind, bin, root, sock string) (*server, error) {
	return startCmd(kind, sock, exec.Command(bin, "--root", root, "--socket", sock))
}

// startCmd starts cmd, a server that listens on the Unix socket sock, and
// waits until it accepts connections.
func startCmd(kind, sock string, cmd *exec.Cmd) (*server, error) {
	bin := cmd.Path
	_ = os.Remove(sock)
	s := &server{kind: kind, sock: sock, done: make(chan error, 1)}
	s.cmd = cmd
	s.cmd.Stdout = &s.stderr // gvisor-gofer prints "listening PATH"
	s.cmd.Stderr = &s.stderr
	s.cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: sock})
			unix.Close(fd)
			if err == nil {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("%s server exited early (%v): %s", kind, err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s server did not accept connections on %s within 15s: %s", kind, sock, s.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop ends the server: SIGTERM, then SIGKILL after a grace period.
func (s *server) stop() {
	_ = unix.Kill(s.pid(), unix.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = unix.Kill(-s.pid(), unix.SIGKILL)
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	_ = os.Remove(s.sock)
}

// rssBytes returns the process's resident set size (VmRSS).
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// threadCount returns the number of threads of a process.
func threadCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// nofileLimit returns a process's soft RLIMIT_NOFILE.
func nofileLimit(pid int) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// conn is one gVisor lisafs.Client connected to a server, mounted.
type conn struct {
	client   *lisafs.Client
	root     lisafs.ClientFD
	channels bool
}

var ctx = context.Background()

// dial connects gVisor's client to the server, mounts, and starts flipcall
// channels if asked to (then every request goes over a channel, as in the
// sentry).
func dial(s *server, channels bool) (*conn, error) {
	sock, err := unet.Connect(s.sock, false)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", s.kind, err)
	}
	client, rootIno, hostFD, err := lisafs.NewClient(sock)
	if err != nil {
		return nil, fmt.Errorf("mounting %s: %w", s.kind, err)
	}
	if hostFD >= 0 {
		unix.Close(hostFD)
	}
	if channels {
		if err := client.StartChannels(); err != nil {
			client.Close()
			return nil, fmt.Errorf("StartChannels on %s: %w", s.kind, err)
		}
	}
	return &conn{client: client, root: client.NewFD(rootIno.ControlFD), channels: channels}, nil
}

func (c *conn) close() { c.client.Close() }

// walk walks names from dir and returns the last component's control FD,
// closing the intermediate ones.
func (c *conn) walk(dir lisafs.ClientFD, names ...string) (lisafs.ClientFD, lisafs.Inode, error) {
	status, inodes, err := dir.WalkMultiple(ctx, names)
	if err != nil {
		return lisafs.ClientFD{}, lisafs.Inode{}, err
	}
	for i := 0; i+1 < len(inodes); i++ {
		c.client.CloseFD(ctx, inodes[i].ControlFD, true)
	}
	if status != lisafs.WalkSuccess || len(inodes) != len(names) {
		if len(inodes) > 0 {
			c.client.CloseFD(ctx, inodes[len(inodes)-1].ControlFD, true)
		}
		return lisafs.ClientFD{}, lisafs.Inode{}, fmt.Errorf("walk %v: status %d", names, status)
	}
	last := inodes[len(inodes)-1]
	return c.client.NewFD(last.ControlFD), last, nil
}

// open walks names and opens the result with flags; it returns the control
// FD and the open FD. A donated host FD is closed at once: the benchmarks
// measure the RPCs.
func (c *conn) open(flags uint32, names ...string) (lisafs.ClientFD, lisafs.ClientFD, error) {
	ctl, _, err := c.walk(c.root, names...)
	if err != nil {
		return lisafs.ClientFD{}, lisafs.ClientFD{}, err
	}
	id, hostFD, err := ctl.OpenAt(ctx, flags)
	if err != nil {
		ctl.Close(ctx, true)
		return lisafs.ClientFD{}, lisafs.ClientFD{}, fmt.Errorf("OpenAt %v: %w", names, err)
	}
	if hostFD >= 0 {
		unix.Close(hostFD)
	}
	return ctl, c.client.NewFD(id), nil
}
