package interop

// Harness for the live-server interop tests: it runs our Rust server binary
// (lisafs-serve) on one end of a socketpair and gVisor's own lisafs.Client on
// the other, and on shutdown checks the server's end-of-connection counters
// so that every test also proves that nothing leaked.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/unet"
)

const (
	// serveBinEnv overrides the location of the lisafs-serve binary.
	serveBinEnv = "LISAFS_SERVE_BIN"
	// serveBinDefault is the cargo debug build output, relative to interop/.
	serveBinDefault = "../target/debug/lisafs-serve"

	// backendEnv selects the server under test: "host" (lisafs-serve, the
	// default), "memory" (a MemoryBackend served from Node) or
	// "policy-host" (a HostBackend under a policy, served from Node); the
	// Node ones run node-serve.mjs on the built dist/.
	backendEnv = "LISAFS_INTEROP_BACKEND"
	// nodeBinEnv overrides the node binary (default: node from PATH).
	nodeBinEnv = "LISAFS_NODE_BIN"
	// nodeServeScript is the Node server, relative to interop/.
	nodeServeScript = "node-serve.mjs"

	// serverTestBudget bounds one server's whole life inside a test. When it
	// runs out the server is killed, which makes every client call blocked on
	// the socket fail, so a misbehaving server can never hang the suite.
	serverTestBudget = 30 * time.Second
	// serverStopBudget bounds client shutdown and server exit.
	serverStopBudget = 10 * time.Second

	// childUmask is the umask the server process inherits. runsc's gofer
	// serves with umask 0 because the client sends modes with its own umask
	// already applied; a non-zero value here makes the mode checks prove
	// that the server does not apply the inherited umask a second time.
	childUmask = 0o022

	// badFDID is an FDID the server never handed out.
	badFDID lisafs.FDID = 0x7fff_0000_1234
)

// serverOpts selects the lisafs-serve flags.
type serverOpts struct {
	readonly bool
	hostUDS  bool
}

func (o serverOpts) args(root string) []string {
	args := []string{"--root", root, "--fd", "3"}
	if o.readonly {
		args = append(args, "--readonly")
	}
	if o.hostUDS {
		args = append(args, "--host-uds")
	}
	return args
}

// Backends LISAFS_INTEROP_BACKEND selects.
const (
	backendHost       = "host"
	backendMemory     = "memory"
	backendPolicyHost = "policy-host"
)

// testBackend returns the backend under test (LISAFS_INTEROP_BACKEND).
func testBackend(t *testing.T) string {
	t.Helper()
	switch b := os.Getenv(backendEnv); b {
	case "", backendHost:
		return backendHost
	case backendMemory, backendPolicyHost:
		return b
	default:
		t.Fatalf("%s=%q: want host, memory or policy-host", backendEnv, b)
		return ""
	}
}

// servedFromNode reports whether the server under test is node-serve.mjs.
func servedFromNode(t *testing.T) bool { return testBackend(t) != backendHost }

// skipOnMemory skips a scenario that needs what an in-memory filesystem
// does not have (host FDs to donate, host Unix sockets...).
func skipOnMemory(t *testing.T, why string) {
	t.Helper()
	if testBackend(t) == backendMemory {
		t.Skipf("not applicable to the memory backend: %s", why)
	}
}

// serverReport is the JSON line lisafs-serve prints when its connection ends.
type serverReport struct {
	End            string `json:"end"`
	Connections    int64  `json:"connections"`
	ControlFDs     int64  `json:"controlFds"`
	OpenFDs        int64  `json:"openFds"`
	BoundSocketFDs int64  `json:"boundSocketFds"`
	Nodes          int64  `json:"nodes"`
	// ChannelRequests counts requests served over flipcall channels.
	ChannelRequests int64 `json:"channelRequests"`
	HostFDsBefore   int64 `json:"hostFdsBefore"`
	HostFDsAfter    int64 `json:"hostFdsAfter"`

	// Only node-serve.mjs reports these (see its header).
	Backend       string `json:"backend"`
	Handles       int64  `json:"handles"`
	PendingCalls  int64  `json:"pendingCalls"`
	BackendErrors int64  `json:"backendErrors"`
	Events        int64  `json:"events"`
	DeniedEvents  int64  `json:"deniedEvents"`
}

// serverEnv is one running server and the gVisor client connected to it.
type serverEnv struct {
	// channels is set when the client talks over flipcall channels.
	channels bool
	t        *testing.T
	ctx      context.Context
	opts     serverOpts

	// dir is the host directory the server serves.
	dir string

	client      *lisafs.Client
	rootInode   lisafs.Inode
	root        lisafs.ClientFD
	mountHostFD int

	cmd      *exec.Cmd
	stdout   bytes.Buffer
	stderr   bytes.Buffer
	waitDone chan error
	killed   atomic.Bool
	watchdog *time.Timer
	stopOnce sync.Once
	// wakeFD is a dup of the client's socket end (see startServer).
	wakeFD int
	// view is the memory backend's out-of-band view (nil otherwise).
	view *memView
	// wantDenied is how many operations the policy-host policy must have
	// refused (0 unless a test goes into the protected subtrees).
	wantDenied int64
}

// kill ends the server's process group and wakes blocked client calls.
func (e *serverEnv) kill() {
	if e.wakeFD >= 0 {
		_ = unix.Shutdown(e.wakeFD, unix.SHUT_RDWR)
	}
	_ = unix.Kill(-e.cmd.Process.Pid, unix.SIGKILL)
	_ = e.cmd.Process.Kill()
}

// serveBinary returns the lisafs-serve path, failing the test if it is not
// built.
func serveBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(serveBinEnv)
	if bin == "" {
		bin = serveBinDefault
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("lisafs-serve path %q: %v", bin, err)
	}
	st, err := os.Stat(abs)
	if err != nil || !st.Mode().IsRegular() {
		t.Fatalf("lisafs-serve binary not found at %s (%v): run `cargo build -p lisafs-serve` in the repository root, or set %s", abs, err, serveBinEnv)
	}
	return abs
}

// spawnServer starts lisafs-serve on root and returns the process plus the
// client end of the socketpair. The process runs with childUmask.
func spawnServer(t *testing.T, root string, opts serverOpts, stdout, stderr *bytes.Buffer) (*exec.Cmd, int) {
	cmd, fd, _ := spawnServerView(t, root, opts, stdout, stderr)
	return cmd, fd
}

// spawnServerView is spawnServer that also returns, for the memory
// backend, the view of its tree (nil for host-backed servers).
func spawnServerView(t *testing.T, root string, opts serverOpts, stdout, stderr *bytes.Buffer) (*exec.Cmd, int, *memView) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	serverEnd := os.NewFile(uintptr(fds[1]), "lisafs-server-end")
	extra := []*os.File{serverEnd} // becomes fd 3 in the child
	var cmd *exec.Cmd
	var view *memView
	var viewEnd *os.File
	switch backend := testBackend(t); backend {
	case backendHost:
		cmd = exec.Command(serveBinary(t), opts.args(root)...)
	default:
		args := append([]string{nodeServeScriptPath(t), "--backend", backend}, opts.args(root)...)
		if backend == backendMemory {
			vfds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatalf("socketpair: %v", err)
			}
			viewEnd = os.NewFile(uintptr(vfds[1]), "lisafs-view-server-end")
			extra = append(extra, viewEnd) // fd 4
			args = append(args, "--view", "4")
			view = newMemView(vfds[0])
			t.Cleanup(view.close)
		}
		cmd = exec.Command(nodeBinary(), args...)
	}
	bin := cmd.Path
	cmd.ExtraFiles = extra
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	// Its own process group, so a timeout can kill anything it started.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}

	// The umask is process-wide; the server tests do not run in parallel,
	// so setting it around Start only affects the child.
	old := unix.Umask(childUmask)
	err = cmd.Start()
	unix.Umask(old)
	serverEnd.Close() // the child has its own copy now
	if viewEnd != nil {
		viewEnd.Close()
	}
	if err != nil {
		unix.Close(fds[0])
		t.Fatalf("starting %s: %v", bin, err)
	}
	return cmd, fds[0], view
}

// nodeBinary returns the node to run node-serve.mjs with.
func nodeBinary() string {
	if b := os.Getenv(nodeBinEnv); b != "" {
		return b
	}
	return "node"
}

// nodeServeScriptPath returns node-serve.mjs, failing the test if the
// package's dist/ it imports is not built.
func nodeServeScriptPath(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(nodeServeScript)
	if err != nil {
		t.Fatalf("node-serve path: %v", err)
	}
	dist := filepath.Join(filepath.Dir(abs), "..", "dist", "index.mjs")
	if _, err := os.Stat(dist); err != nil {
		t.Fatalf("%s needs the built package (%v): run `npm run build` in the repository root", nodeServeScript, err)
	}
	return abs
}

// startServer serves a fresh temporary directory with lisafs-serve, mounts
// it with gVisor's lisafs.NewClient and registers a cleanup that closes the
// client and checks the server's report for leaks.
func startServer(t *testing.T, opts serverOpts) *serverEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		// runsc's gofer runs with the privileges to chown, mknod and
		// switch credentials; the expectations here assume the same.
		t.Fatalf("the live-server interop tests must run as root (euid %d): they check ownership changes, ConnectWithCreds and device creation", os.Geteuid())
	}
	e := &serverEnv{
		t:        t,
		ctx:      context.Background(),
		opts:     opts,
		dir:      t.TempDir(),
		waitDone: make(chan error, 1),
		wakeFD:   -1,
	}
	cmd, clientEnd, view := spawnServerView(t, e.dir, opts, &e.stdout, &e.stderr)
	e.cmd = cmd
	if view != nil {
		// Host-side helpers on paths under e.dir now act on the
		// backend's tree instead (see memview_test.go).
		e.view = view
		registerView(t, e.dir, view)
	}
	// A second descriptor for the client's end of the socket: shutting it
	// down wakes any client call blocked on the socket even if something
	// else still holds the server's end. CLOEXEC keeps it out of later
	// servers.
	wakeFD, err := unix.FcntlInt(uintptr(clientEnd), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		e.wakeFD = wakeFD
	}
	go func() { e.waitDone <- cmd.Wait() }()
	e.watchdog = time.AfterFunc(serverTestBudget, func() {
		e.killed.Store(true)
		e.kill()
	})
	t.Cleanup(e.stop)
	if err != nil {
		unix.Close(clientEnd)
		t.Fatalf("dup of the client socket: %v", err)
	}

	sock, err := unet.NewSocket(clientEnd)
	if err != nil {
		unix.Close(clientEnd)
		t.Fatalf("unet.NewSocket: %v", err)
	}
	client, root, hostFD, err := lisafs.NewClient(sock)
	if err != nil {
		t.Fatalf("lisafs.NewClient (Mount) against lisafs-serve failed: %v", err)
	}
	e.client = client
	if os.Getenv("LISAFS_INTEROP_CHANNELS") == "1" {
		// The whole suite again, with requests over flipcall channels as
		// the gVisor sentry sends them.
		if err := client.StartChannels(); err != nil {
			t.Fatalf("StartChannels against lisafs-serve failed: %v", err)
		}
		e.channels = true
	}
	e.rootInode = root
	e.root = client.NewFD(root.ControlFD)
	e.mountHostFD = hostFD
	if hostFD >= 0 {
		t.Cleanup(func() { unix.Close(hostFD) })
	}
	return e
}

// stop closes the client, waits for the server to exit and checks its
// report. It runs once, as a test cleanup.
func (e *serverEnv) stop() {
	e.stopOnce.Do(func() {
		t := e.t
		// From here on the waits below are bounded on their own.
		e.watchdog.Stop()
		if e.client != nil {
			closed := make(chan struct{})
			go func() { e.client.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(serverStopBudget):
				t.Errorf("lisafs.Client.Close did not return within %v", serverStopBudget)
				e.kill()
			}
		}
		if e.wakeFD >= 0 {
			// After client.Close this was the last descriptor of the
			// client's end; closing it is what the server sees as EOF if
			// the client's shutdown did not already do it.
			unix.Close(e.wakeFD)
		}
		var waitErr error
		select {
		case waitErr = <-e.waitDone:
		case <-time.After(serverStopBudget):
			t.Errorf("lisafs-serve did not exit within %v of the client closing the socket; killing it", serverStopBudget)
			e.killed.Store(true)
			e.kill()
			waitErr = <-e.waitDone
		}
		if e.killed.Load() {
			t.Errorf("lisafs-serve was killed (test budget %v exceeded or shutdown hung)", serverTestBudget)
		}
		if waitErr != nil {
			t.Errorf("lisafs-serve exited with %v", waitErr)
		}
		e.checkReport()
		if t.Failed() && e.stderr.Len() > 0 {
			t.Logf("lisafs-serve stderr:\n%s", e.stderr.String())
		}
	})
}

func (e *serverEnv) checkReport() {
	t := e.t
	out := strings.TrimSpace(e.stdout.String())
	lines := strings.Split(out, "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	if line == "" {
		t.Errorf("lisafs-serve printed no report line")
		return
	}
	var r serverReport
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Errorf("lisafs-serve report %q does not parse: %v", line, err)
		return
	}
	if r.End != "closed" {
		t.Errorf("server report: end = %q, want \"closed\" (report %s)", r.End, line)
	}
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"connections", r.Connections},
		{"controlFds", r.ControlFDs},
		{"openFds", r.OpenFDs},
		{"boundSocketFds", r.BoundSocketFDs},
		{"nodes", r.Nodes},
	} {
		if c.v != 0 {
			t.Errorf("server leaked after connection close: %s = %d, want 0 (report %s)", c.name, c.v, line)
		}
	}
	if e.channels && r.ChannelRequests == 0 {
		t.Errorf("channels were started but no request travelled over them (report %s)", line)
	}
	if r.HostFDsAfter != r.HostFDsBefore {
		t.Errorf("server leaked host FDs: hostFdsAfter = %d, hostFdsBefore = %d (report %s)", r.HostFDsAfter, r.HostFDsBefore, line)
	}
	if backend := testBackend(t); backend != backendHost {
		if r.Backend != backend {
			t.Errorf("server report: backend = %q, want %q (report %s)", r.Backend, backend, line)
		}
		// Every JavaScript FD object was released and every call settled.
		if r.Handles != 0 || r.PendingCalls != 0 {
			t.Errorf("server leaked backend objects: handles = %d, pendingCalls = %d, want 0 (report %s)", r.Handles, r.PendingCalls, line)
		}
		// A non-errno throw is a backend bug the client only saw as EIO.
		if r.BackendErrors != 0 {
			t.Errorf("the backend threw %d non-errno errors (report %s; see stderr)", r.BackendErrors, line)
		}
		// The observer saw operations: the policy layer ran on them.
		if backend == backendPolicyHost && r.Events == 0 {
			t.Errorf("policy-host: the observer saw no operation (report %s)", line)
		}
		if backend == backendPolicyHost && r.DeniedEvents != e.wantDenied {
			t.Errorf("policy-host: the policy refused %d operations, want %d (report %s)", r.DeniedEvents, e.wantDenied, line)
		}
	}
}

// ---- client-side helpers ----

// fd wraps an FDID of this connection.
func (e *serverEnv) fd(id lisafs.FDID) lisafs.ClientFD {
	return e.client.NewFD(id)
}

// bad returns a ClientFD whose FDID the server never issued.
func (e *serverEnv) bad() *lisafs.ClientFD {
	fd := e.client.NewFD(badFDID)
	return &fd
}

// closeFD closes fd on the server right away.
func (e *serverEnv) closeFD(fd lisafs.ClientFD) {
	if fd.Ok() {
		fd.Close(e.ctx, true /* flush */)
	}
}

// path returns the host path of a name relative to the served root.
func (e *serverEnv) path(rel ...string) string {
	return filepath.Join(append([]string{e.dir}, rel...)...)
}

// writeHost creates a host file under the served root.
func (e *serverEnv) writeHost(rel string, data string) {
	e.t.Helper()
	if e.view != nil {
		e.view.must(e.t, "write "+rel, viewReq{Op: "write", Path: rel, Data: []byte(data), Mode: 0o644})
		return
	}
	if err := os.WriteFile(e.path(rel), []byte(data), 0o644); err != nil {
		e.t.Fatalf("host write %s: %v", rel, err)
	}
}

// mkdirHost creates host directories under the served root.
func (e *serverEnv) mkdirHost(rel string) {
	e.t.Helper()
	if e.view != nil {
		e.view.must(e.t, "mkdir "+rel, viewReq{Op: "mkdirp", Path: rel, Mode: 0o755})
		return
	}
	if err := os.MkdirAll(e.path(rel), 0o755); err != nil {
		e.t.Fatalf("host mkdir %s: %v", rel, err)
	}
}

// symlinkHost creates a host symlink under the served root.
func (e *serverEnv) symlinkHost(target, rel string) {
	e.t.Helper()
	if e.view != nil {
		e.view.must(e.t, "symlink "+rel, viewReq{Op: "symlink", Path: rel, Target: target})
		return
	}
	if err := os.Symlink(target, e.path(rel)); err != nil {
		e.t.Fatalf("host symlink %s: %v", rel, err)
	}
}

// walk walks names from the root and requires every component to exist.
func (e *serverEnv) walk(names ...string) lisafs.ClientFD {
	e.t.Helper()
	return e.walkFrom(e.root, names...)
}

// walkFrom walks names from dir; it returns the control FD of the last one
// and closes the intermediate ones.
func (e *serverEnv) walkFrom(dir lisafs.ClientFD, names ...string) lisafs.ClientFD {
	e.t.Helper()
	status, inodes, err := dir.WalkMultiple(e.ctx, names)
	if err != nil {
		e.t.Fatalf("Walk %q: %v", names, err)
	}
	for i := 0; i+1 < len(inodes); i++ {
		e.closeFD(e.fd(inodes[i].ControlFD))
	}
	if status != lisafs.WalkSuccess || len(inodes) != len(names) {
		if len(inodes) > 0 {
			e.closeFD(e.fd(inodes[len(inodes)-1].ControlFD))
		}
		e.t.Fatalf("Walk %q: status %d with %d inodes, want success with %d", names, status, len(inodes), len(names))
	}
	return e.fd(inodes[len(inodes)-1].ControlFD)
}

// open makes OpenAt on a control FD and returns the open FD and donated
// host FD (closed at test end).
func (e *serverEnv) open(ctl lisafs.ClientFD, flags uint32) (lisafs.ClientFD, int) {
	e.t.Helper()
	id, hostFD, err := ctl.OpenAt(e.ctx, flags)
	if err != nil {
		e.t.Fatalf("OpenAt(flags %#x): %v", flags, err)
	}
	e.ownHostFD(hostFD)
	return e.fd(id), hostFD
}

// ownHostFD closes a donated host FD when the test ends.
func (e *serverEnv) ownHostFD(fd int) {
	if fd >= 0 {
		e.t.Cleanup(func() { unix.Close(fd) })
	}
}

// create makes OpenCreateAt (O_RDWR) and returns control FD, open FD and
// its inode.
func (e *serverEnv) create(dir lisafs.ClientFD, name string, mode linux.FileMode) (lisafs.ClientFD, lisafs.ClientFD, lisafs.Inode) {
	e.t.Helper()
	ino, openID, hostFD, err := dir.OpenCreateAt(e.ctx, name, unix.O_RDWR, mode, 0, 0)
	if err != nil {
		e.t.Fatalf("OpenCreateAt %q: %v", name, err)
	}
	e.ownHostFD(hostFD)
	return e.fd(ino.ControlFD), e.fd(openID), ino
}

// stat makes FStat.
func (e *serverEnv) stat(fd lisafs.ClientFD) lisafs.Statx {
	e.t.Helper()
	var st lisafs.Statx
	if err := fd.StatTo(e.ctx, &st); err != nil {
		e.t.Fatalf("FStat: %v", err)
	}
	return st
}

// ---- raw RPCs, for requests the client API cannot express ----

type rawRequest interface {
	SizeBytes() int
	MarshalBytes(dst []byte) []byte
	String() string
}

type rawResponse interface {
	CheckedUnmarshal(src []byte) ([]byte, bool)
	String() string
}

// raw sends req as message mid through the client's own socket machinery
// and decodes the reply into resp. fds receives donated host FDs.
func (e *serverEnv) raw(mid lisafs.MID, req rawRequest, resp rawResponse, fds []int) error {
	return e.client.SndRcvMessage(mid, uint32(req.SizeBytes()), req.MarshalBytes, resp.CheckedUnmarshal, fds, req.String, resp.String)
}

// rawBytes is a request payload given byte for byte (to send malformed
// requests).
type rawBytes []byte

func (b rawBytes) SizeBytes() int                 { return len(b) }
func (b rawBytes) MarshalBytes(dst []byte) []byte { return dst[copy(dst, b):] }
func (b rawBytes) String() string                 { return fmt.Sprintf("rawBytes(%x)", []byte(b)) }

// ignoreResp accepts any response payload.
type ignoreResp struct{}

func (ignoreResp) CheckedUnmarshal(src []byte) ([]byte, bool) { return nil, true }
func (ignoreResp) String() string                             { return "ignoreResp" }

// ---- assertions ----

// wantErrno checks that err is exactly the errno want.
func wantErrno(t *testing.T, what string, err error, want unix.Errno) {
	t.Helper()
	var got unix.Errno
	if err == nil {
		t.Errorf("%s: succeeded, want %s (%d)", what, errnoName(want), int(want))
		return
	}
	if !errors.As(err, &got) {
		t.Errorf("%s: got non-errno error %v, want %s (%d)", what, err, errnoName(want), int(want))
		return
	}
	if got != want {
		t.Errorf("%s: got %s (%d), want %s (%d)", what, errnoName(got), int(got), errnoName(want), int(want))
	}
}

// mustOK fails the test if err is non-nil.
func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		var en unix.Errno
		if errors.As(err, &en) {
			t.Fatalf("%s: got %s (%d), want success", what, errnoName(en), int(en))
		}
		t.Fatalf("%s: %v", what, err)
	}
}

func errnoName(e unix.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// hostStat lstat()s a host path.
func hostStat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	if v, rel := viewFor(path); v != nil {
		st, err := v.lstat(rel)
		if err != nil {
			t.Fatalf("memory lstat %s: %v", rel, err)
		}
		return st
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("host lstat %s: %v", path, err)
	}
	return st
}

// hostMissing checks that a host path does not exist.
func hostMissing(t *testing.T, path string) {
	t.Helper()
	if v, rel := viewFor(path); v != nil {
		if _, err := v.lstat(rel); err != unix.ENOENT {
			t.Errorf("memory path %s: lstat returned %v, want ENOENT", rel, err)
		}
		return
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != unix.ENOENT {
		t.Errorf("host path %s: lstat returned %v, want ENOENT", path, err)
	}
}

// sameFile checks a wire Statx against a host stat of the same object.
func sameFile(t *testing.T, what string, got lisafs.Statx, want unix.Stat_t) {
	t.Helper()
	if got.Ino != want.Ino || uint32(got.Mode) != want.Mode || got.DevMajor != unix.Major(want.Dev) || got.DevMinor != unix.Minor(want.Dev) {
		t.Errorf("%s: wire stat ino %d mode %#o dev %d:%d, host ino %d mode %#o dev %d:%d", what,
			got.Ino, got.Mode, got.DevMajor, got.DevMinor, want.Ino, want.Mode, unix.Major(want.Dev), unix.Minor(want.Dev))
	}
}

// fileType returns the S_IFMT bits of a wire mode.
func fileType(mode uint16) uint32 { return uint32(mode) & unix.S_IFMT }

// readAllHost reads a host file.
func readAllHost(t *testing.T, path string) string {
	t.Helper()
	if v, rel := viewFor(path); v != nil {
		b, err := v.read(rel)
		if err != nil {
			t.Fatalf("memory read %s: %v", rel, err)
		}
		return string(b)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("host read %s: %v", path, err)
	}
	return string(b)
}

// pollIn waits (bounded) until fd is readable.
func pollIn(t *testing.T, fd int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("fd %d did not become readable in time", fd)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll fd %d: %v", fd, err)
		}
		if n > 0 {
			return
		}
	}
}

// readSome reads at least one byte from a (possibly non-blocking) socket FD.
func readSome(t *testing.T, fd int) string {
	t.Helper()
	buf := make([]byte, 256)
	for {
		pollIn(t, fd)
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("read fd %d: %v", fd, err)
		}
		return string(buf[:n])
	}
}

// writeAll writes all of s to a socket FD.
func writeAll(t *testing.T, fd int, s string) {
	t.Helper()
	b := []byte(s)
	deadline := time.Now().Add(5 * time.Second)
	for len(b) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("write to fd %d did not finish in time", fd)
		}
		n, err := unix.Write(fd, b)
		if err == unix.EAGAIN || err == unix.EINTR {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("write fd %d: %v", fd, err)
		}
		b = b[n:]
	}
}

// mountOver runs lisafs.NewClient on a raw client socket FD and closes the
// client again if it succeeds.
func mountOver(fd int) (lisafs.Inode, error) {
	sock, err := unet.NewSocket(fd)
	if err != nil {
		unix.Close(fd)
		return lisafs.Inode{}, err
	}
	client, root, hostFD, err := lisafs.NewClient(sock)
	if err != nil {
		return lisafs.Inode{}, err
	}
	if hostFD >= 0 {
		unix.Close(hostFD)
	}
	client.Close()
	return root, nil
}
