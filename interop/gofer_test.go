package interop

// Tests for cmd/gvisor-gofer, the wrapper that runs gVisor's own host-backed
// LISAFS server (runsc/fsgofer) on a directory: gVisor's client talks to
// gVisor's server through the program, over an inherited socketpair (--fd)
// and over a listening Unix socket (--socket).

import (
	"bufio"
	"bytes"
	gocontext "context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/unet"
)

const (
	// goferBuildBudget bounds `go build` of the program (a cold build
	// compiles a good part of gVisor).
	goferBuildBudget = 5 * time.Minute
	// goferRunBudget bounds one gofer process's whole life in a test; when
	// it runs out the process is killed and the client socket shut down,
	// so a stuck call fails instead of hanging.
	goferRunBudget = 30 * time.Second
	// goferExitBudget bounds the wait for a clean exit (after the client
	// disconnects or after SIGTERM).
	goferExitBudget = 10 * time.Second
	// goferChildUmask is the umask the program inherits. It sets umask 0
	// itself (like runsc), which the mode check on a created file proves.
	goferChildUmask = 0o022
)

// buildGofer builds ./cmd/gvisor-gofer into dir with the go tool running
// this test, so it uses this module's go.mod and go.sum.
func buildGofer(t *testing.T, dir string) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go tool to build cmd/gvisor-gofer: %v", err)
		}
	}
	bin := filepath.Join(dir, "gvisor-gofer")
	ctx, cancel := gocontext.WithTimeout(gocontext.Background(), goferBuildBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/gvisor-gofer")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/gvisor-gofer: %v\n%s", err, out)
	}
	return bin
}

// goferProc is one running gvisor-gofer process.
type goferProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	// done receives cmd.Wait's result once.
	done chan error
	// exited is set once cmd.Wait has returned (the pid is reaped).
	exited   atomic.Bool
	watchdog *time.Timer
	// wake, if set, is called by kill to unblock client calls; wakeMu is
	// held around the call so that a cleanup can unset it before closing
	// the descriptors it uses.
	wakeMu sync.Mutex
	wake   func()
}

// startGofer starts bin with args. extra becomes fd 3 onwards. If stdout is
// nil the program's stdout is captured and must stay empty.
func startGofer(t *testing.T, bin string, args []string, extra []*os.File, stdout io.Writer) *goferProc {
	t.Helper()
	p := &goferProc{t: t, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = extra
	cmd.Stdout = stdout
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	p.cmd = cmd
	// The umask is process-wide; tests in this package do not run in
	// parallel, so this only affects the child.
	old := unix.Umask(goferChildUmask)
	err := cmd.Start()
	unix.Umask(old)
	if err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		err := cmd.Wait()
		p.exited.Store(true)
		p.done <- err
	}()
	p.watchdog = time.AfterFunc(goferRunBudget, p.kill)
	t.Cleanup(func() {
		p.watchdog.Stop()
		p.kill()
	})
	return p
}

func (p *goferProc) setWake(fn func()) {
	p.wakeMu.Lock()
	p.wake = fn
	p.wakeMu.Unlock()
}

// kill ends the process group (if still running) and wakes the client.
func (p *goferProc) kill() {
	p.wakeMu.Lock()
	if p.wake != nil {
		p.wake()
	}
	p.wakeMu.Unlock()
	if !p.exited.Load() {
		_ = unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL)
	}
}

// waitExit0 waits (bounded) for the process and requires exit status 0.
func (p *goferProc) waitExit0(what string) {
	p.t.Helper()
	select {
	case err := <-p.done:
		p.watchdog.Stop()
		if err != nil {
			p.t.Fatalf("gvisor-gofer after %s: %v; stderr:\n%s", what, err, p.stderr)
		}
	case <-time.After(goferExitBudget):
		p.kill()
		<-p.done
		p.t.Fatalf("gvisor-gofer did not exit within %v after %s; killed; stderr:\n%s", goferExitBudget, what, p.stderr)
	}
}

// goferClient mounts over sock with gVisor's client and returns the client
// and the root inode. The mount must not donate a host FD (directfs off).
func goferClient(t *testing.T, sock *unet.Socket) (*lisafs.Client, lisafs.Inode) {
	t.Helper()
	client, root, hostFD, err := lisafs.NewClient(sock)
	if err != nil {
		t.Fatalf("lisafs.NewClient (Mount): %v", err)
	}
	if hostFD >= 0 {
		unix.Close(hostFD)
		t.Errorf("Mount donated host FD %d; directfs must be off", hostFD)
	}
	return client, root
}

// checkGoferRoot checks that the mounted root is the served directory.
func checkGoferRoot(t *testing.T, dir string, root lisafs.Inode) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if root.Stat.Mode&unix.S_IFMT != unix.S_IFDIR || root.Stat.Ino != st.Ino ||
		root.Stat.DevMajor != unix.Major(st.Dev) || root.Stat.DevMinor != unix.Minor(st.Dev) {
		t.Fatalf("mount root stat = mode %#o ino %d dev %d:%d; want the served directory %s (ino %d dev %d:%d)",
			root.Stat.Mode, root.Stat.Ino, root.Stat.DevMajor, root.Stat.DevMinor,
			dir, st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
}

func goferRequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the gvisor-gofer tests must run as root like runsc's gofer (euid %d)", os.Geteuid())
	}
}

// TestGVisorGofer builds cmd/gvisor-gofer once and runs it in both modes.
func TestGVisorGofer(t *testing.T) {
	goferRequireRoot(t)
	bin := buildGofer(t, t.TempDir())
	t.Run("fd", func(t *testing.T) { testGoferFD(t, bin) })
	t.Run("socket", func(t *testing.T) { testGoferSocket(t, bin) })
	t.Run("usage", func(t *testing.T) { testGoferUsage(t, bin) })
}

// testGoferFD serves a temporary directory on fd 3 and runs a short file
// scenario through gVisor's client (with flipcall channels, as the sentry
// uses them), checking each effect on the host.
func testGoferFD(t *testing.T, bin string) {
	ctx := context.Background()
	dir := t.TempDir()
	const content = "hello from the host\n"
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	serverEnd := os.NewFile(uintptr(fds[1]), "gofer-server-end")
	var stdout bytes.Buffer
	p := startGofer(t, bin, []string{"--root", dir, "--fd", "3"}, []*os.File{serverEnd}, &stdout)
	serverEnd.Close()
	// A dup of the client end, to shut the socket down on timeout even
	// while the client still owns it.
	wakeFD, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.setWake(func() { _ = unix.Shutdown(wakeFD, unix.SHUT_RDWR) })
	t.Cleanup(func() {
		p.setWake(nil)
		unix.Close(wakeFD)
	})

	sock, err := unet.NewSocket(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	client, rootInode := goferClient(t, sock)
	clientClosed := false
	defer func() {
		if !clientClosed {
			client.Close()
		}
	}()
	checkGoferRoot(t, dir, rootInode)
	if err := client.StartChannels(); err != nil {
		t.Fatalf("StartChannels: %v", err)
	}
	root := client.NewFD(rootInode.ControlFD)

	// closeDonated closes a host FD the server may donate on open.
	closeDonated := func(fd int) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}

	// Walk + stat a pre-created file.
	var hostSt unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "hello.txt"), &hostSt); err != nil {
		t.Fatal(err)
	}
	helloInode, err := root.Walk(ctx, "hello.txt")
	if err != nil {
		t.Fatalf("Walk hello.txt: %v", err)
	}
	hello := client.NewFD(helloInode.ControlFD)
	if helloInode.Stat.Ino != hostSt.Ino || helloInode.Stat.Size != uint64(len(content)) {
		t.Errorf("Walk hello.txt stat: ino %d size %d; want ino %d size %d", helloInode.Stat.Ino, helloInode.Stat.Size, hostSt.Ino, len(content))
	}
	var st lisafs.Statx
	if err := hello.StatTo(ctx, &st); err != nil {
		t.Fatalf("FStat hello.txt: %v", err)
	}
	if st.Mode != unix.S_IFREG|0o644 || st.Ino != hostSt.Ino || st.Size != uint64(len(content)) || st.Nlink != 1 {
		t.Errorf("FStat hello.txt = mode %#o ino %d size %d nlink %d; want mode %#o ino %d size %d nlink 1",
			st.Mode, st.Ino, st.Size, st.Nlink, unix.S_IFREG|0o644, hostSt.Ino, len(content))
	}

	// OpenAt + PRead.
	readID, donated, err := hello.OpenAt(ctx, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("OpenAt hello.txt: %v", err)
	}
	closeDonated(donated)
	readFD := client.NewFD(readID)
	buf := make([]byte, 64)
	n, err := readFD.Read(ctx, buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("PRead: %v", err)
	}
	if got := string(buf[:n]); got != content {
		t.Errorf("PRead = %q; want %q", got, content)
	}
	n, err = readFD.Read(ctx, buf[:4], 6)
	if err != nil || string(buf[:n]) != "from" {
		t.Errorf("PRead at 6 = %q, %v; want \"from\"", buf[:n], err)
	}
	readFD.Close(ctx, false)

	// OpenCreateAt + PWrite, seen on the host. Mode 0666 with the child
	// started under umask 022 shows that the server runs with umask 0.
	const written = "written through gVisor's fsgofer\n"
	newInode, writeID, donated, err := root.OpenCreateAt(ctx, "new.txt", unix.O_WRONLY, 0o666, lisafs.UID(os.Getuid()), lisafs.GID(os.Getgid()))
	if err != nil {
		t.Fatalf("OpenCreateAt new.txt: %v", err)
	}
	closeDonated(donated)
	newCtl := client.NewFD(newInode.ControlFD)
	if newInode.Stat.Mode != unix.S_IFREG|0o666 {
		t.Errorf("OpenCreateAt mode = %#o; want %#o (server must use umask 0)", newInode.Stat.Mode, unix.S_IFREG|0o666)
	}
	writeFD := client.NewFD(writeID)
	if n, err := writeFD.Write(ctx, []byte(written), 0); err != nil || n != uint64(len(written)) {
		t.Fatalf("PWrite = %d, %v; want %d", n, err, len(written))
	}
	writeFD.Close(ctx, false)
	if got, err := os.ReadFile(filepath.Join(dir, "new.txt")); err != nil || string(got) != written {
		t.Errorf("host new.txt = %q, %v; want %q", got, err, written)
	}
	if fi, err := os.Stat(filepath.Join(dir, "new.txt")); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("host new.txt mode = %v, %v; want 0666", fi.Mode(), err)
	}

	// Getdents64 lists both files.
	dirID, donated, err := root.OpenAt(ctx, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		t.Fatalf("OpenAt root: %v", err)
	}
	closeDonated(donated)
	dirFD := client.NewFD(dirID)
	var names []string
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatalf("Getdents64 does not reach the end: %v", names)
		}
		ents, err := dirFD.Getdents64(ctx, 4096)
		if err != nil {
			t.Fatalf("Getdents64: %v", err)
		}
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			names = append(names, string(e.Name))
		}
	}
	dirFD.Close(ctx, false)
	for _, want := range []string{"hello.txt", "new.txt"} {
		if !slices.Contains(names, want) {
			t.Errorf("Getdents64 names %v lack %q", names, want)
		}
	}

	// UnlinkAt removes the host file.
	if err := root.UnlinkAt(ctx, "hello.txt", 0); err != nil {
		t.Fatalf("UnlinkAt hello.txt: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "hello.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("host hello.txt after UnlinkAt: %v; want not-exist", err)
	}
	hello.Close(ctx, false)

	// RenameAt renames on the host.
	if err := root.RenameAt(ctx, "new.txt", root.ID(), "renamed.txt", 0); err != nil {
		t.Fatalf("RenameAt new.txt -> renamed.txt: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "new.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("host new.txt after RenameAt: %v; want not-exist", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "renamed.txt")); err != nil || string(got) != written {
		t.Errorf("host renamed.txt = %q, %v; want %q", got, err, written)
	}
	// The renamed node keeps working through its control FD.
	if err := newCtl.StatTo(ctx, &st); err != nil || st.Size != uint64(len(written)) {
		t.Errorf("FStat of the renamed file = size %d, %v; want %d", st.Size, err, len(written))
	}
	// LinkAt is one of fsgofer's path-based operations: it opens the
	// target's parent by the node's absolute path. It works only if node
	// paths are host paths, i.e. with the served directory as mount path,
	// and only if the rename above updated the node's name.
	linkInode, err := root.LinkAt(ctx, newCtl.ID(), "link.txt")
	if err != nil {
		t.Fatalf("LinkAt renamed.txt -> link.txt: %v", err)
	}
	linkCtl := client.NewFD(linkInode.ControlFD)
	linkCtl.Close(ctx, false)
	var linkSt unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "link.txt"), &linkSt); err != nil || linkSt.Nlink != 2 || linkSt.Ino != newInode.Stat.Ino {
		t.Errorf("host link.txt: nlink %d ino %d, %v; want a second link to ino %d", linkSt.Nlink, linkSt.Ino, err, newInode.Stat.Ino)
	}
	newCtl.Close(ctx, false)

	// StatFS matches the host's statfs of the directory.
	var fs lisafs.StatFS
	if err := root.StatFSTo(ctx, &fs); err != nil {
		t.Fatalf("FStatFS: %v", err)
	}
	var hostFS unix.Statfs_t
	if err := unix.Statfs(dir, &hostFS); err != nil {
		t.Fatal(err)
	}
	if fs.Type != uint64(hostFS.Type) || fs.BlockSize != hostFS.Bsize || fs.NameLength != uint64(hostFS.Namelen) {
		t.Errorf("FStatFS = type %#x bsize %d namelen %d; want %#x %d %d", fs.Type, fs.BlockSize, fs.NameLength, hostFS.Type, hostFS.Bsize, hostFS.Namelen)
	}

	// Disconnecting ends the program with status 0 and nothing on stdout.
	root.Close(ctx, true)
	client.Close()
	clientClosed = true
	p.waitExit0("the client disconnected")
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q; want nothing in --fd mode", stdout.String())
	}
}

// testGoferSocket runs the --socket mode: wait for the "listening" line, mount
// twice over two connections, stat the root, then SIGTERM with a client still
// connected; the program must exit 0 and remove its socket.
func testGoferSocket(t *testing.T, bin string) {
	ctx := context.Background()
	dir := t.TempDir()
	sockDir := t.TempDir()
	sockPath := filepath.Join(sockDir, "gofer.sock")

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startGofer(t, bin, []string{"--root", dir, "--socket", sockPath}, nil, pw)
	pw.Close()
	t.Cleanup(func() { pr.Close() })

	// Wait for exactly "listening PATH", bounded.
	lines := make(chan string, 1)
	rest := make(chan string, 1)
	go func() {
		r := bufio.NewReader(pr)
		line, _ := r.ReadString('\n')
		lines <- line
		b, _ := io.ReadAll(r)
		rest <- string(b)
	}()
	select {
	case line := <-lines:
		if line != "listening "+sockPath+"\n" {
			t.Fatalf("first stdout line = %q; want %q; stderr:\n%s", line, "listening "+sockPath+"\n", p.stderr)
		}
	case <-time.After(goferExitBudget):
		p.kill()
		t.Fatalf("no listening line within %v", goferExitBudget)
	}

	var clients []*lisafs.Client
	var wakeFDs []int
	p.setWake(func() {
		for _, fd := range wakeFDs {
			_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		}
	})
	t.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
		p.setWake(nil)
		for _, fd := range wakeFDs {
			unix.Close(fd)
		}
	})
	for i := 0; i < 2; i++ {
		sock, err := unet.Connect(sockPath, false)
		if err != nil {
			t.Fatalf("connect %s: %v", sockPath, err)
		}
		wakeFD, err := unix.FcntlInt(uintptr(sock.FD()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		wakeFDs = append(wakeFDs, wakeFD)
		client, rootInode := goferClient(t, sock)
		clients = append(clients, client)
		checkGoferRoot(t, dir, rootInode)
		root := client.NewFD(rootInode.ControlFD)
		var st lisafs.Statx
		if err := root.StatTo(ctx, &st); err != nil {
			t.Fatalf("connection %d: FStat root: %v", i, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != rootInode.Stat.Ino {
			t.Errorf("connection %d: FStat root = mode %#o ino %d; want a directory with ino %d", i, st.Mode, st.Ino, rootInode.Stat.Ino)
		}
	}
	// The first client leaves; the server keeps serving the second.
	clients[0].Close()
	clients = clients[1:]

	if err := p.cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	p.waitExit0("SIGTERM")
	if _, err := os.Lstat(sockPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after exit: %v; want removed", err)
	}
	select {
	case s := <-rest:
		if s != "" {
			t.Errorf("stdout after the listening line = %q; want nothing", s)
		}
	case <-time.After(goferExitBudget):
		t.Errorf("stdout not closed after exit")
	}
}

// testGoferUsage checks that bad command lines fail with status 1, a message
// on stderr and nothing on stdout.
func testGoferUsage(t *testing.T, bin string) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{},
		{"--root", dir},
		{"--fd", "3"},
		{"--root", dir, "--fd", "3", "--socket", filepath.Join(dir, "s")},
		{"--root", file, "--socket", filepath.Join(dir, "s")},
		{"--root", dir, "--fd", "0"}, // stdin is /dev/null, not a socket
		{"--root", dir, "--socket", filepath.Join(dir, strings.Repeat("x", 120))},
	} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(goferExitBudget):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%q did not exit within %v", args, goferExitBudget)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%q: %v; want exit status 1", args, err)
		}
		if stdout.Len() != 0 || stderr.Len() == 0 {
			t.Errorf("%q: stdout %q, stderr %q; want only stderr", args, stdout.String(), stderr.String())
		}
	}
}
