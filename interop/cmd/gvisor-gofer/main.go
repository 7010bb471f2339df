// Command gvisor-gofer serves a host directory with gVisor's own host-backed
// LISAFS server (gvisor.dev/gvisor/runsc/fsgofer on a gvisor.dev/gvisor/pkg/lisafs
// Server), so that other LISAFS clients and benchmarks can be measured against
// the real thing.
//
// Usage:
//
//	gvisor-gofer --root DIR (--fd N | --socket PATH) [--readonly] [--host-uds]
//
//	--fd N         serve one connection on the inherited, already connected
//	               AF_UNIX stream socket N (e.g. one end of a socketpair);
//	               exit 0 once the client disconnects.
//	--socket PATH  listen on the Unix socket PATH and serve every accepted
//	               connection (each its own lisafs.Connection on one shared
//	               lisafs.Server) until SIGINT/SIGTERM; then remove PATH and
//	               exit 0. Prints "listening PATH" on stdout once ready.
//	--readonly     every mutating request fails with EROFS.
//	--host-uds     allow connecting to and creating host Unix sockets
//	               (runsc's --host-uds=all); off by default.
//
// Nothing else is printed on stdout. Errors go to stderr with exit code 1.
// gVisor's own log output (warnings and worse) also goes to stderr.
//
// # Mount path
//
// runsc's gofer chroots into the container root and mounts it at "/", so a
// lisafs node's path (Node.FilePath) is also the file's host path. fsgofer
// relies on that: most operations go through host FDs, but a few are
// path-based syscalls on Node.FilePath() (the parent directory of a socket or
// symlink in SetStat, the parent in LinkAt, the socket path in Connect/BindAt,
// and the l*xattr calls). Tests cannot chroot, so this program keeps the
// server's root at the host "/" and uses the absolute, symlink-free host path
// of --root as the connection's mount path. Node paths then equal host paths
// without a chroot. The path has its symlinks resolved because fsgofer opens
// parents with RESOLVE_NO_SYMLINKS.
//
// Security caveat: this program is a test peer, not a sandbox boundary. It
// has no chroot, no seccomp filter, no capability dropping and no user
// namespace, which runsc's gofer all relies on. The path-based syscalls above
// resolve absolute host paths, so a concurrent host-side rename of a
// directory above or inside --root can make them act outside --root. Do not
// serve untrusted clients with it.
//
// As in runsc: umask 0 (the client applies its own umask), /proc/self/fd is
// opened through fsgofer.OpenProcSelfFD, fsgofer.ConnectionOpts gives the
// connection options, and the fsgofer.Config has host FIFOs and character
// devices off and directfs off (no mount point FD is donated on Mount).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/unet"
	"gvisor.dev/gvisor/runsc/config"
	"gvisor.dev/gvisor/runsc/fsgofer"
)

const (
	// procSelfFDPath is what runsc opens when it runs without its chroot.
	procSelfFDPath = "/proc/self/fd"

	// stopBudget bounds how long shutdown waits for the connections to
	// finish their in-flight requests after their sockets were shut down.
	stopBudget = 10 * time.Second

	// unixPathMax is sizeof(sockaddr_un.sun_path) on Linux.
	unixPathMax = 108
)

type options struct {
	root     string
	fd       int
	socket   string
	readonly bool
	hostUDS  bool
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "gvisor-gofer: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a command line error: it is reported with the usage text.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parseArgs(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("gvisor-gofer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.root, "root", "", "host directory to serve (required)")
	fs.IntVar(&o.fd, "fd", -1, "inherited connected AF_UNIX stream socket to serve one connection on")
	fs.StringVar(&o.socket, "socket", "", "Unix socket path to listen on")
	fs.BoolVar(&o.readonly, "readonly", false, "serve read-only (mutations fail with EROFS)")
	fs.BoolVar(&o.hostUDS, "host-uds", false, "allow opening and creating host Unix sockets")
	if err := fs.Parse(args); err != nil {
		return o, usageError{err.Error()}
	}
	switch {
	case fs.NArg() != 0:
		return o, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	case o.root == "":
		return o, usageError{"--root is required"}
	case o.fd >= 0 && o.socket != "":
		return o, usageError{"--fd and --socket are mutually exclusive"}
	case o.fd < 0 && o.socket == "":
		return o, usageError{"one of --fd N (N >= 0) or --socket PATH is required"}
	}
	return o, nil
}

const usage = "usage: gvisor-gofer --root DIR (--fd N | --socket PATH) [--readonly] [--host-uds]"

func run(args []string, stdout io.Writer) error {
	o, err := parseArgs(args)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return fmt.Errorf("%v\n%s", err, usage)
		}
		return err
	}

	// Keep gVisor's own logging to warnings and worse (on stderr), so that
	// per-request debug/info output never skews measurements.
	log.SetLevel(log.Warning)

	mountPath, err := resolveRoot(o.root)
	if err != nil {
		return err
	}

	// Like runsc's gofer: modes arrive with the client's umask applied.
	unix.Umask(0)
	if err := fsgofer.OpenProcSelfFD(procSelfFDPath); err != nil {
		return err
	}

	hostUDS := config.HostUDSNone
	if o.hostUDS {
		hostUDS = config.HostUDSAll
	}
	// Zero values: no host FIFOs, emulated-only character devices, and
	// DonateMountPointFD false (directfs off).
	conf := &fsgofer.Config{
		HostUDS: hostUDS,
		RUID:    unix.Getuid(),
		EUID:    unix.Geteuid(),
		RGID:    unix.Getgid(),
		EGID:    unix.Getegid(),
	}
	g := &gofer{
		server:    lisafs.NewServer(),
		mountPath: mountPath,
		opts:      fsgofer.ConnectionOpts(o.readonly),
		conf:      conf,
		socks:     make(map[*unet.Socket]struct{}),
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	defer signal.Stop(sigs)

	if o.fd >= 0 {
		return g.serveFD(o.fd, sigs)
	}
	return g.serveSocket(o.socket, stdout, sigs)
}

// resolveRoot returns the absolute, symlink-free path of root, which must be
// a directory. It is used as the connection's mount path (see the package
// comment).
func resolveRoot(root string) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("--root %q: %w", root, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("--root %q: %w", root, err)
	}
	st, err := os.Stat(resolved)
	if err != nil {
		return "", fmt.Errorf("--root %q: %w", root, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("--root %q: not a directory", root)
	}
	return resolved, nil
}

// gofer is one lisafs.Server plus the sockets of the connections it serves.
type gofer struct {
	server    *lisafs.Server
	mountPath string
	opts      lisafs.ConnectionOpts
	conf      *fsgofer.Config

	mu sync.Mutex
	// socks holds the sockets of started connections, so that shutdown can
	// end them. A connection closes its socket when it ends; such entries
	// (FD() < 0) are pruned when new connections arrive.
	socks map[*unet.Socket]struct{}
}

// start creates and starts a connection on sock. It takes ownership of sock.
func (g *gofer) start(sock *unet.Socket) error {
	conn, err := g.server.CreateConnection(sock, g.mountPath, g.opts, fsgofer.NewConnectionImpl(g.conf))
	if err != nil {
		sock.Close()
		return fmt.Errorf("creating connection for %q: %w", g.mountPath, err)
	}
	g.mu.Lock()
	for s := range g.socks {
		if s.FD() < 0 {
			delete(g.socks, s)
		}
	}
	g.socks[sock] = struct{}{}
	g.mu.Unlock()
	g.server.StartConnection(conn)
	return nil
}

// shutdownAll shuts down every connection's socket, which makes its
// connection end once in-flight requests finish.
func (g *gofer) shutdownAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for s := range g.socks {
		// EBADF for connections that already closed their socket.
		_ = s.Shutdown()
	}
}

// wait waits for all connections to end, at most budget, then releases the
// server.
func (g *gofer) wait(budget time.Duration) error {
	done := make(chan struct{})
	go func() {
		g.server.Wait()
		close(done)
	}()
	if budget > 0 {
		select {
		case <-done:
		case <-time.After(budget):
			return fmt.Errorf("connections did not finish within %v of shutdown", budget)
		}
	} else {
		<-done
	}
	g.server.Destroy()
	return nil
}

// serveFD serves one connection on the inherited socket fd until the client
// disconnects (or a signal arrives, which shuts the socket down).
func (g *gofer) serveFD(fd int, sigs <-chan os.Signal) error {
	if err := checkStreamSocket(fd); err != nil {
		return fmt.Errorf("--fd %d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	sock, err := unet.NewSocket(fd)
	if err != nil {
		return fmt.Errorf("--fd %d: %w", fd, err)
	}
	if err := g.start(sock); err != nil {
		return err
	}

	done := make(chan struct{})
	go func() {
		g.server.Wait()
		close(done)
	}()
	select {
	case <-done:
		g.server.Destroy()
		return nil
	case <-sigs:
		g.shutdownAll()
		return g.wait(stopBudget)
	}
}

// checkStreamSocket checks that fd is an AF_UNIX SOCK_STREAM socket.
func checkStreamSocket(fd int) error {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("not a socket: %w", err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("not a socket: %w", err)
	}
	if domain != unix.AF_UNIX || typ != unix.SOCK_STREAM {
		return fmt.Errorf("want an AF_UNIX SOCK_STREAM socket, got domain %d type %d", domain, typ)
	}
	return nil
}

// serveSocket listens on path and serves every accepted connection until a
// signal arrives; then it stops accepting, ends all connections and removes
// path.
func (g *gofer) serveSocket(path string, stdout io.Writer, sigs <-chan os.Signal) error {
	if len(path) >= unixPathMax {
		return fmt.Errorf("--socket %q: path is %d bytes, the limit is %d", path, len(path), unixPathMax-1)
	}
	ln, err := unet.BindAndListen(path, false /* packet */)
	if err != nil {
		return fmt.Errorf("--socket %q: %w", path, err)
	}
	removed := false
	removeSocket := func() error {
		if removed {
			return nil
		}
		removed = true
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %q: %w", path, err)
		}
		return nil
	}
	defer removeSocket()

	var stopping sync.Once
	stop := make(chan struct{})
	acceptErr := make(chan error, 1)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		acceptErr <- g.acceptLoop(ln, stop)
	}()

	if _, err := fmt.Fprintf(stdout, "listening %s\n", path); err != nil {
		stopping.Do(func() { close(stop) })
		ln.Close()
		<-acceptDone
		return err
	}

	var runErr error
	select {
	case <-sigs:
	case runErr = <-acceptErr:
	}
	stopping.Do(func() { close(stop) })
	ln.Close() // wakes Accept
	<-acceptDone

	g.shutdownAll()
	if err := g.wait(stopBudget); err != nil && runErr == nil {
		runErr = err
	}
	if err := removeSocket(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// acceptLoop accepts connections until stop is closed (and the listener
// closed) or accepting fails for good.
func (g *gofer) acceptLoop(ln *unet.ServerSocket, stop <-chan struct{}) error {
	for {
		sock, err := ln.Accept()
		select {
		case <-stop:
			if sock != nil {
				sock.Close()
			}
			return nil
		default:
		}
		if err != nil {
			switch {
			case errors.Is(err, unix.ECONNABORTED), errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE),
				errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.ENOMEM):
				fmt.Fprintf(os.Stderr, "gvisor-gofer: accept: %v (retrying)\n", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		if err := g.start(sock); err != nil {
			// Only this connection is lost; keep serving the others.
			fmt.Fprintf(os.Stderr, "gvisor-gofer: %v\n", err)
		}
	}
}
