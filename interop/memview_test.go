package interop

// The memory backend's out-of-band view. For a host-backed server the tests
// set up and check state by reading and writing the served host directory
// directly, behind the server's back. A MemoryBackend has no host
// directory, so node-serve.mjs offers the same access to its tree over a
// second socket (one JSON request per line, one JSON answer per line). The
// host-side helpers (writeHost, hostStat, readAllHost, hostXattr...) route a
// path under a memory-served e.dir to this view, so every scenario reads
// the same for every backend.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/lisafs"
)

// viewReq is one request to node-serve.mjs's view (see viewOp there).
type viewReq struct {
	Op     string `json:"op"`
	Path   string `json:"path"`
	Target string `json:"target,omitempty"`
	Name   string `json:"name,omitempty"`
	// Data and Value are base64 in JSON ([]byte's encoding).
	Data  []byte `json:"data,omitempty"`
	Value []byte `json:"value,omitempty"`
	Mode  uint32 `json:"mode,omitempty"`
}

type viewTime struct {
	Sec  int64 `json:"sec"`
	Nsec int64 `json:"nsec"`
}

type viewStat struct {
	Ino       uint64   `json:"ino"`
	Mode      uint32   `json:"mode"`
	Nlink     uint64   `json:"nlink"`
	UID       uint32   `json:"uid"`
	GID       uint32   `json:"gid"`
	Size      int64    `json:"size"`
	Blocks    int64    `json:"blocks"`
	DevMajor  uint32   `json:"devMajor"`
	DevMinor  uint32   `json:"devMinor"`
	RdevMajor uint32   `json:"rdevMajor"`
	RdevMinor uint32   `json:"rdevMinor"`
	Atime     viewTime `json:"atime"`
	Mtime     viewTime `json:"mtime"`
	Ctime     viewTime `json:"ctime"`
}

type viewResp struct {
	OK      bool               `json:"ok"`
	Code    string             `json:"code"`
	Message string             `json:"message"`
	Stat    *viewStat          `json:"stat"`
	Data    []byte             `json:"data"`
	StatFS  map[string]float64 `json:"statfs"`
}

// memView is the client end of the view socket.
type memView struct {
	mu   sync.Mutex
	f    *os.File
	r    *bufio.Reader
	once sync.Once
}

func newMemView(fd int) *memView {
	f := os.NewFile(uintptr(fd), "lisafs-view")
	return &memView{f: f, r: bufio.NewReader(f)}
}

func (v *memView) close() { v.once.Do(func() { v.f.Close() }) }

// call sends one request; a failed operation is its errno.
func (v *memView) call(req viewReq) (viewResp, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return viewResp{}, err
	}
	if _, err := v.f.Write(append(b, '\n')); err != nil {
		return viewResp{}, fmt.Errorf("view write: %w", err)
	}
	line, err := v.r.ReadBytes('\n')
	if err != nil {
		return viewResp{}, fmt.Errorf("view read: %w", err)
	}
	var resp viewResp
	if err := json.Unmarshal(line, &resp); err != nil {
		return viewResp{}, fmt.Errorf("view answer %q: %w", line, err)
	}
	if !resp.OK {
		if en := errnoByName(resp.Code); en != 0 {
			return resp, en
		}
		return resp, fmt.Errorf("view %s: %s (%s)", req.Op, resp.Code, resp.Message)
	}
	return resp, nil
}

func (v *memView) must(t *testing.T, what string, req viewReq) viewResp {
	t.Helper()
	resp, err := v.call(req)
	if err != nil {
		t.Fatalf("memory %s: %v", what, err)
	}
	return resp
}

// lstat returns the node at rel as a host stat would.
func (v *memView) lstat(rel string) (unix.Stat_t, error) {
	resp, err := v.call(viewReq{Op: "lstat", Path: rel})
	if err != nil {
		return unix.Stat_t{}, err
	}
	s := resp.Stat
	if s == nil {
		return unix.Stat_t{}, fmt.Errorf("view lstat %s: no stat in the answer", rel)
	}
	return unix.Stat_t{
		Ino:     s.Ino,
		Mode:    s.Mode,
		Nlink:   s.Nlink,
		Uid:     s.UID,
		Gid:     s.GID,
		Size:    s.Size,
		Blocks:  s.Blocks,
		Dev:     unix.Mkdev(s.DevMajor, s.DevMinor),
		Rdev:    unix.Mkdev(s.RdevMajor, s.RdevMinor),
		Blksize: 4096,
		Atim:    unix.Timespec{Sec: s.Atime.Sec, Nsec: s.Atime.Nsec},
		Mtim:    unix.Timespec{Sec: s.Mtime.Sec, Nsec: s.Mtime.Nsec},
		Ctim:    unix.Timespec{Sec: s.Ctime.Sec, Nsec: s.Ctime.Nsec},
	}, nil
}

func (v *memView) read(rel string) ([]byte, error) {
	resp, err := v.call(viewReq{Op: "read", Path: rel})
	return resp.Data, err
}

// ---- which paths the view serves ----

var (
	viewsMu sync.Mutex
	// views maps a memory-served e.dir to its view.
	views = map[string]*memView{}
)

func registerView(t *testing.T, dir string, v *memView) {
	viewsMu.Lock()
	views[dir] = v
	viewsMu.Unlock()
	t.Cleanup(func() {
		viewsMu.Lock()
		delete(views, dir)
		viewsMu.Unlock()
	})
}

// viewFor returns the view serving a path under a memory-served root and
// the path relative to that root, or nil for a real host path.
func viewFor(path string) (*memView, string) {
	viewsMu.Lock()
	defer viewsMu.Unlock()
	for dir, v := range views {
		if path == dir {
			return v, ""
		}
		if rel, ok := strings.CutPrefix(path, dir+string(filepath.Separator)); ok {
			return v, rel
		}
	}
	return nil, ""
}

// hostSetXattr sets an extended attribute behind the server's back.
func hostSetXattr(t *testing.T, path, name, value string) {
	t.Helper()
	if v, rel := viewFor(path); v != nil {
		if _, err := v.call(viewReq{Op: "setxattr", Path: rel, Name: name, Value: []byte(value)}); err != nil {
			t.Fatalf("memory setxattr %s %s: %v", rel, name, err)
		}
		return
	}
	if err := unix.Setxattr(path, name, []byte(value), 0); err != nil {
		t.Fatalf("host setxattr %s %s: %v", path, name, err)
	}
}

// hostStatfs returns the statfs of the filesystem holding path, as the
// server's FStatFS should report it.
func hostStatfs(t *testing.T, path string) unix.Statfs_t {
	t.Helper()
	var hs unix.Statfs_t
	if v, _ := viewFor(path); v != nil {
		resp, err := v.call(viewReq{Op: "statfs"})
		if err != nil {
			t.Fatalf("memory statfs: %v", err)
		}
		f := resp.StatFS
		hs.Type = int64(f["fsType"])
		hs.Bsize = int64(f["blockSize"])
		hs.Blocks = uint64(f["blocks"])
		hs.Bfree = uint64(f["blocksFree"])
		hs.Bavail = uint64(f["blocksAvailable"])
		hs.Files = uint64(f["files"])
		hs.Ffree = uint64(f["filesFree"])
		hs.Namelen = int64(f["nameLength"])
		return hs
	}
	if err := unix.Statfs(path, &hs); err != nil {
		t.Fatalf("host statfs %s: %v", path, err)
	}
	return hs
}

// hostReadlink reads a symlink behind the server's back.
func hostReadlink(path string) (string, error) {
	if v, rel := viewFor(path); v != nil {
		resp, err := v.call(viewReq{Op: "readlink", Path: rel})
		return string(resp.Data), err
	}
	return os.Readlink(path)
}

// errnoByName maps an errno name (as node-serve.mjs reports it) back to
// its number; 0 if unknown.
func errnoByName(name string) unix.Errno {
	for n := 1; n < 256; n++ {
		if unix.ErrnoName(unix.Errno(n)) == name {
			return unix.Errno(n)
		}
	}
	return 0
}

// ---- scenario helpers whose expectation depends on the backend ----

// donated checks the host FD an OpenAt/OpenCreateAt of a regular file
// donated, and reports whether there is one to use. Host backends must
// donate one; the memory backend has none and must donate nothing.
func (e *serverEnv) donated(t *testing.T, what string, hostFD int) bool {
	t.Helper()
	if testBackend(t) == backendMemory {
		if hostFD >= 0 {
			t.Errorf("%s: the memory backend donated host FD %d", what, hostFD)
		}
		return false
	}
	if hostFD < 0 {
		t.Fatalf("%s donated no host FD", what)
	}
	return true
}

// supportedMessages is the MID set Mount must advertise: the host gofer's,
// plus Flush for a JavaScript backend (its open FDs may implement flush).
func supportedMessages(t *testing.T) []lisafs.MID {
	want := slices.Clone(HostSupportedMessages())
	if testBackend(t) == backendMemory {
		want = append(want, lisafs.Flush)
		slices.Sort(want)
	}
	return want
}

// wantMknodRefused checks a MknodAt that the host gofer refuses with EPERM
// (FIFOs, devices other than 0:0, sockets). The memory backend stores such
// nodes by design (the sandbox's kernel implements them), so there the
// node must exist with the requested mode and device number.
func (e *serverEnv) wantMknodRefused(t *testing.T, what, name string, mode, major, minor uint32, ino lisafs.Inode, err error) {
	t.Helper()
	if testBackend(t) != backendMemory {
		if err == nil {
			e.closeFD(e.fd(ino.ControlFD))
		}
		wantErrno(t, what, err, unix.EPERM)
		hostMissing(t, e.path(name))
		return
	}
	mustOK(t, what+" on the memory backend", err)
	e.closeFD(e.fd(ino.ControlFD))
	hs := hostStat(t, e.path(name))
	sameFile(t, name, ino.Stat, hs)
	if hs.Mode != mode || hs.Rdev != unix.Mkdev(major, minor) {
		t.Errorf("%s: node mode %#o rdev %#x, want %#o rdev %d:%d", what, hs.Mode, hs.Rdev, mode, major, minor)
	}
}

// socketNode makes a socket file name in the served tree behind the
// server's back: a listening host socket, or a socket node in memory.
func (e *serverEnv) socketNode(name string) {
	e.t.Helper()
	if e.view != nil {
		e.view.must(e.t, "mknod socket "+name, viewReq{Op: "mksock", Path: name, Mode: 0o755})
		return
	}
	listenUnix(e.t, e.path(name))
}
