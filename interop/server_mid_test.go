package interop

// Per-MID coverage: for every MID lisafs-serve advertises, at least one
// success and one error scenario, driven through gVisor's own client.
// Subtests are named MIDnn-Name/ok/... and MIDnn-Name/err/ERRNO-...

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/lisafs"
)

type midCase struct {
	mid lisafs.MID
	run func(t *testing.T)
}

func midCases() []midCase {
	return []midCase{
		{lisafs.Mount, midMount},
		{lisafs.Channel, midChannel},
		{lisafs.FStat, midFStat},
		{lisafs.SetStat, midSetStat},
		{lisafs.Walk, midWalk},
		{lisafs.WalkStat, midWalkStat},
		{lisafs.OpenAt, midOpenAt},
		{lisafs.OpenCreateAt, midOpenCreateAt},
		{lisafs.Close, midClose},
		{lisafs.FSync, midFSync},
		{lisafs.PWrite, midPWrite},
		{lisafs.PRead, midPRead},
		{lisafs.MkdirAt, midMkdirAt},
		{lisafs.MknodAt, midMknodAt},
		{lisafs.SymlinkAt, midSymlinkAt},
		{lisafs.LinkAt, midLinkAt},
		{lisafs.FStatFS, midFStatFS},
		{lisafs.FAllocate, midFAllocate},
		{lisafs.ReadLinkAt, midReadLinkAt},
		{lisafs.Connect, midConnect},
		{lisafs.UnlinkAt, midUnlinkAt},
		{lisafs.RenameAt, midRenameAt},
		{lisafs.Getdents64, midGetdents64},
		{lisafs.FGetXattr, midFGetXattr},
		{lisafs.FSetXattr, midFSetXattr},
		{lisafs.FListXattr, midFListXattr},
		{lisafs.FRemoveXattr, midFRemoveXattr},
		{lisafs.BindAt, midBindAt},
		{lisafs.Listen, midListen},
		{lisafs.Accept, midAccept},
		{lisafs.ConnectWithCreds, midConnectWithCreds},
		{lisafs.RenameAt2, midRenameAt2},
	}
}

var midNames = map[lisafs.MID]string{
	lisafs.Mount: "Mount", lisafs.Channel: "Channel", lisafs.FStat: "FStat",
	lisafs.SetStat: "SetStat", lisafs.Walk: "Walk", lisafs.WalkStat: "WalkStat",
	lisafs.OpenAt: "OpenAt", lisafs.OpenCreateAt: "OpenCreateAt", lisafs.Close: "Close",
	lisafs.FSync: "FSync", lisafs.PWrite: "PWrite", lisafs.PRead: "PRead",
	lisafs.MkdirAt: "MkdirAt", lisafs.MknodAt: "MknodAt", lisafs.SymlinkAt: "SymlinkAt",
	lisafs.LinkAt: "LinkAt", lisafs.FStatFS: "FStatFS", lisafs.FAllocate: "FAllocate",
	lisafs.ReadLinkAt: "ReadLinkAt", lisafs.Flush: "Flush", lisafs.Connect: "Connect",
	lisafs.UnlinkAt: "UnlinkAt", lisafs.RenameAt: "RenameAt", lisafs.Getdents64: "Getdents64",
	lisafs.FGetXattr: "FGetXattr", lisafs.FSetXattr: "FSetXattr", lisafs.FListXattr: "FListXattr",
	lisafs.FRemoveXattr: "FRemoveXattr", lisafs.BindAt: "BindAt", lisafs.Listen: "Listen",
	lisafs.Accept: "Accept", lisafs.ConnectWithCreds: "ConnectWithCreds", lisafs.RenameAt2: "RenameAt2",
}

// TestServerMIDs runs the per-MID success and error scenarios. The table
// must cover exactly the MIDs the host server advertises.
func TestServerMIDs(t *testing.T) {
	cases := midCases()
	var covered []lisafs.MID
	for _, c := range cases {
		covered = append(covered, c.mid)
	}
	if !slices.Equal(covered, HostSupportedMessages()) {
		t.Fatalf("per-MID table covers %v, want every advertised MID %v", covered, HostSupportedMessages())
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("MID%02d-%s", c.mid, midNames[c.mid]), c.run)
	}
}

// ---- MID 1: Mount ----

func midMount(t *testing.T) {
	t.Run("ok/NewClient", func(t *testing.T) {
		e := startServer(t, serverOpts{})
		if !e.rootInode.ControlFD.Ok() {
			t.Fatalf("root control FD is invalid")
		}
		sameFile(t, "root inode", e.rootInode.Stat, hostStat(t, e.dir))
		if e.mountHostFD != -1 {
			t.Errorf("Mount donated host FD %d; lisafs-serve does not enable mount-FD donation", e.mountHostFD)
		}
		for _, m := range HostSupportedMessages() {
			if !e.client.IsSupported(m) {
				t.Errorf("MID %d (%s) not advertised", m, midNames[m])
			}
		}
		// A JavaScript backend's open FDs may implement flush, so its
		// server advertises Flush; host backends are like the host gofer.
		if got, want := e.client.IsSupported(lisafs.Flush), testBackend(t) == backendMemory; got != want {
			t.Errorf("Flush advertised = %v, want %v for the %s backend", got, want, testBackend(t))
		}
		if e.client.IsSupported(lisafs.RenameAt2 + 1) {
			t.Errorf("MID %d is advertised", lisafs.RenameAt2+1)
		}
		// The root works.
		if st := e.stat(e.root); fileType(st.Mode) != unix.S_IFDIR {
			t.Errorf("root mode %#o is not a directory", st.Mode)
		}
	})
	t.Run("ok/second-Mount", func(t *testing.T) {
		e := startServer(t, serverOpts{})
		var resp lisafs.MountResp
		fds := []int{-1}
		mustOK(t, "raw Mount", e.raw(lisafs.Mount, &lisafs.MountReq{}, &resp, fds))
		e.ownHostFD(fds[0])
		if fds[0] != -1 {
			t.Errorf("second Mount donated host FD %d", fds[0])
		}
		if uint32(resp.MaxMessageSize) != lisafs.MaxMessageSize() {
			t.Errorf("MaxMessageSize = %d, want %d", resp.MaxMessageSize, lisafs.MaxMessageSize())
		}
		got := slices.Clone(resp.SupportedMs)
		slices.Sort(got)
		if want := supportedMessages(t); !slices.Equal(got, want) {
			t.Errorf("SupportedMs = %v, want %v", resp.SupportedMs, want)
		}
		if resp.Root.ControlFD == e.rootInode.ControlFD || !resp.Root.ControlFD.Ok() {
			t.Errorf("second Mount root FDID %d, want a new valid FDID (first was %d)", resp.Root.ControlFD, e.rootInode.ControlFD)
		}
		sameFile(t, "second root", resp.Root.Stat, hostStat(t, e.dir))
		e.closeFD(e.fd(resp.Root.ControlFD))
	})
	t.Run("err/EIO-root-missing", func(t *testing.T) {
		skipOnMemory(t, "it serves no host directory, so there is no root to be missing")
		// A server that cannot serve its root refuses the connection; the
		// client's Mount fails (transport errors are EIO) without hanging.
		var stdout, stderr bytes.Buffer
		missing := filepath.Join(t.TempDir(), "does-not-exist")
		cmd, clientEnd := spawnServer(t, missing, serverOpts{}, &stdout, &stderr)
		waitDone := make(chan error, 1)
		go func() { waitDone <- cmd.Wait() }()
		killer := time.AfterFunc(serverTestBudget, func() { _ = cmd.Process.Kill() })
		defer killer.Stop()
		_, err := mountOver(clientEnd)
		wantErrno(t, "Mount on a server whose root is missing", err, unix.EIO)
		select {
		case err := <-waitDone:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("lisafs-serve exited with %v, want exit status 1", err)
			}
		case <-time.After(serverStopBudget):
			_ = cmd.Process.Kill()
			<-waitDone
			t.Errorf("lisafs-serve did not exit after failing to serve a missing root")
		}
	})
}

// ---- MID 2: Channel ----

func midChannel(t *testing.T) {
	e := startServer(t, serverOpts{})
	t.Run("ok/StartChannels", func(t *testing.T) {
		if !e.channels {
			if err := e.client.StartChannels(); err != nil {
				t.Fatalf("StartChannels: %v", err)
			}
		}
		// Requests now travel over the channels.
		e.writeHost("over-channel", "flipcall")
		f := e.walk("over-channel")
		defer e.closeFD(f)
		of, _ := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		buf := make([]byte, 8)
		n, err := of.Read(e.ctx, buf, 0)
		if err != nil || string(buf[:n]) != "flipcall" {
			t.Fatalf("read over channels: %q, %v", buf[:n], err)
		}
	})
	t.Run("err/ENOMEM-beyond-max-channels", func(t *testing.T) {
		// The client created as many channels as the server allows
		// (GOMAXPROCS and the server's CPU count, clamped to [2, 4]).
		var resp lisafs.ChannelResp
		fds := []int{-1, -1}
		err := e.raw(lisafs.Channel, &lisafs.ChannelReq{}, &resp, fds)
		wantErrno(t, "Channel", err, unix.ENOMEM)
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
				t.Errorf("failed Channel donated FD %d", fd)
			}
		}
	})
	t.Run("ok/socket-still-works", func(t *testing.T) {
		sameFile(t, "root after channel requests", e.stat(e.root), hostStat(t, e.dir))
		e.writeHost("f", "data")
		f := e.walk("f")
		defer e.closeFD(f)
		of, _ := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		buf := make([]byte, 4)
		n, err := of.Read(e.ctx, buf, 0)
		mustOK(t, "PRead after failed channels", err)
		if string(buf[:n]) != "data" {
			t.Errorf("PRead = %q, want %q", buf[:n], "data")
		}
	})
}

// ---- MID 3: FStat ----

func midFStat(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "hello")
	t.Run("ok/root", func(t *testing.T) {
		st := e.stat(e.root)
		sameFile(t, "root", st, hostStat(t, e.dir))
		if st.Mask&unix.STATX_BASIC_STATS != unix.STATX_BASIC_STATS {
			t.Errorf("root stat mask %#x lacks basic stats", st.Mask)
		}
	})
	t.Run("ok/file-control-and-open-FD", func(t *testing.T) {
		f := e.walk("f")
		defer e.closeFD(f)
		st := e.stat(f)
		hs := hostStat(t, e.path("f"))
		sameFile(t, "file", st, hs)
		if st.Size != 5 || st.Nlink != 1 || st.UID != hs.Uid || st.GID != hs.Gid {
			t.Errorf("file stat size %d nlink %d uid %d gid %d, want 5 1 %d %d", st.Size, st.Nlink, st.UID, st.GID, hs.Uid, hs.Gid)
		}
		if st.Mtime.Sec != hs.Mtim.Sec || int64(st.Mtime.Nsec) != hs.Mtim.Nsec {
			t.Errorf("mtime %d.%09d, host %d.%09d", st.Mtime.Sec, st.Mtime.Nsec, hs.Mtim.Sec, hs.Mtim.Nsec)
		}
		of, _ := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		if ost := e.stat(of); ost.Ino != st.Ino || ost.Size != 5 {
			t.Errorf("FStat on open FD: ino %d size %d, want %d 5", ost.Ino, ost.Size, st.Ino)
		}
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		var st lisafs.Statx
		wantErrno(t, "FStat(unknown FDID)", e.bad().StatTo(e.ctx, &st), unix.EBADF)
	})
	t.Run("err/EBADF-closed-FD", func(t *testing.T) {
		f := e.walk("f")
		id := f.ID()
		e.closeFD(f)
		var st lisafs.Statx
		g := e.fd(id)
		wantErrno(t, "FStat(closed FDID)", g.StatTo(e.ctx, &st), unix.EBADF)
	})
}

// ---- MID 4: SetStat ----

func midSetStat(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "hello")
	f := e.walk("f")
	defer e.closeFD(f)
	t.Run("ok/mode", func(t *testing.T) {
		mask, ferr, err := f.SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_MODE, Mode: 0o600})
		mustOK(t, "SetStat(mode)", err)
		if mask != 0 {
			t.Fatalf("SetStat(mode) failure mask %#x (%v)", mask, ferr)
		}
		if hs := hostStat(t, e.path("f")); hs.Mode != unix.S_IFREG|0o600 {
			t.Errorf("host mode %#o, want %#o", hs.Mode, unix.S_IFREG|0o600)
		}
		if st := e.stat(f); uint32(st.Mode) != unix.S_IFREG|0o600 {
			t.Errorf("wire mode %#o, want %#o", st.Mode, unix.S_IFREG|0o600)
		}
	})
	t.Run("err/EPERM-unsettable-mask-bit", func(t *testing.T) {
		_, _, err := f.SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_MODE | unix.STATX_INO, Mode: 0o644})
		wantErrno(t, "SetStat(mask with STATX_INO)", err, unix.EPERM)
		if hs := hostStat(t, e.path("f")); hs.Mode&0o7777 != 0o600 {
			t.Errorf("refused SetStat changed the mode to %#o", hs.Mode)
		}
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, _, err := e.bad().SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_MODE, Mode: 0o644})
		wantErrno(t, "SetStat(unknown FDID)", err, unix.EBADF)
	})
	t.Run("err/EINVAL-open-FD", func(t *testing.T) {
		of, _ := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		_, _, err := of.SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_MODE, Mode: 0o644})
		wantErrno(t, "SetStat(open FD)", err, unix.EINVAL)
	})
}

// ---- MID 5: Walk ----

func midWalk(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.mkdirHost("d")
	e.writeHost("d/f", "x")
	e.symlinkHost("d", "l")
	t.Run("ok/two-components", func(t *testing.T) {
		status, inodes, err := e.root.WalkMultiple(e.ctx, []string{"d", "f"})
		mustOK(t, "Walk d/f", err)
		defer func() {
			for _, in := range inodes {
				e.closeFD(e.fd(in.ControlFD))
			}
		}()
		if status != lisafs.WalkSuccess || len(inodes) != 2 {
			t.Fatalf("Walk d/f: status %d, %d inodes; want success, 2", status, len(inodes))
		}
		sameFile(t, "d", inodes[0].Stat, hostStat(t, e.path("d")))
		sameFile(t, "d/f", inodes[1].Stat, hostStat(t, e.path("d/f")))
		if inodes[0].ControlFD == inodes[1].ControlFD || !inodes[0].ControlFD.Ok() || !inodes[1].ControlFD.Ok() {
			t.Errorf("Walk returned FDIDs %d, %d", inodes[0].ControlFD, inodes[1].ControlFD)
		}
	})
	t.Run("ok/empty-path", func(t *testing.T) {
		status, inodes, err := e.root.WalkMultiple(e.ctx, nil)
		mustOK(t, "Walk []", err)
		if status != lisafs.WalkSuccess || len(inodes) != 0 {
			t.Errorf("Walk []: status %d, %d inodes; want success, 0", status, len(inodes))
		}
	})
	t.Run("err/status-ENOENT-missing-component", func(t *testing.T) {
		status, inodes, err := e.root.WalkMultiple(e.ctx, []string{"d", "missing", "x"})
		mustOK(t, "Walk d/missing/x", err)
		for _, in := range inodes {
			e.closeFD(e.fd(in.ControlFD))
		}
		if status != lisafs.WalkComponentDoesNotExist || len(inodes) != 1 {
			t.Errorf("Walk d/missing/x: status %d with %d inodes, want %d with 1", status, len(inodes), lisafs.WalkComponentDoesNotExist)
		}
		_, err = e.root.Walk(e.ctx, "missing")
		wantErrno(t, "client Walk(missing)", err, unix.ENOENT)
	})
	t.Run("err/status-symlink", func(t *testing.T) {
		status, inodes, err := e.root.WalkMultiple(e.ctx, []string{"l", "f"})
		mustOK(t, "Walk l/f", err)
		for _, in := range inodes {
			e.closeFD(e.fd(in.ControlFD))
		}
		if status != lisafs.WalkComponentSymlink || len(inodes) != 1 || fileType(inodes[0].Stat.Mode) != unix.S_IFLNK {
			t.Errorf("Walk l/f: status %d with %d inodes, want %d with the symlink's inode", status, len(inodes), lisafs.WalkComponentSymlink)
		}
	})
	t.Run("err/ENOTDIR-from-file-FD", func(t *testing.T) {
		f := e.walk("d", "f")
		defer e.closeFD(f)
		_, _, err := f.WalkMultiple(e.ctx, []string{"x"})
		wantErrno(t, "Walk from a file FD", err, unix.ENOTDIR)
	})
	for _, bad := range []struct{ label, name string }{{"dotdot", ".."}, {"dot", "."}, {"empty", ""}, {"slash", "d/f"}} {
		t.Run("err/EINVAL-name-"+bad.label, func(t *testing.T) {
			_, _, err := e.root.WalkMultiple(e.ctx, []string{bad.name})
			wantErrno(t, fmt.Sprintf("Walk [%q]", bad.name), err, unix.EINVAL)
		})
	}
	t.Run("err/EINVAL-dotdot-after-valid-component", func(t *testing.T) {
		_, _, err := e.root.WalkMultiple(e.ctx, []string{"d", ".."})
		wantErrno(t, `Walk ["d", ".."]`, err, unix.EINVAL)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, _, err := e.bad().WalkMultiple(e.ctx, []string{"d"})
		wantErrno(t, "Walk(unknown FDID)", err, unix.EBADF)
	})
}

// ---- MID 6: WalkStat ----

func midWalkStat(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.mkdirHost("d")
	e.writeHost("d/f", "x")
	t.Run("ok/self-and-two-components", func(t *testing.T) {
		stats, err := e.root.WalkStat(e.ctx, []string{"", "d", "f"})
		mustOK(t, `WalkStat ["", d, f]`, err)
		if len(stats) != 3 {
			t.Fatalf("WalkStat returned %d stats, want 3", len(stats))
		}
		sameFile(t, "self", stats[0], hostStat(t, e.dir))
		sameFile(t, "d", stats[1], hostStat(t, e.path("d")))
		sameFile(t, "d/f", stats[2], hostStat(t, e.path("d/f")))
	})
	t.Run("ok/file-FD-self-only", func(t *testing.T) {
		f := e.walk("d", "f")
		defer e.closeFD(f)
		stats, err := f.WalkStat(e.ctx, []string{""})
		mustOK(t, `WalkStat [""] on a file`, err)
		if len(stats) != 1 {
			t.Fatalf("got %d stats, want 1", len(stats))
		}
		sameFile(t, "file self", stats[0], hostStat(t, e.path("d/f")))
	})
	t.Run("ok/stops-at-missing", func(t *testing.T) {
		stats, err := e.root.WalkStat(e.ctx, []string{"d", "missing", "x"})
		mustOK(t, "WalkStat d/missing/x", err)
		if len(stats) != 1 {
			t.Errorf("WalkStat d/missing/x returned %d stats, want 1", len(stats))
		}
	})
	t.Run("err/ENOTDIR-from-file-FD", func(t *testing.T) {
		f := e.walk("d", "f")
		defer e.closeFD(f)
		_, err := f.WalkStat(e.ctx, []string{"x"})
		wantErrno(t, "WalkStat from a file FD", err, unix.ENOTDIR)
	})
	t.Run("err/EINVAL-name-dotdot", func(t *testing.T) {
		_, err := e.root.WalkStat(e.ctx, []string{"d", ".."})
		wantErrno(t, `WalkStat ["d", ".."]`, err, unix.EINVAL)
	})
	t.Run("err/EINVAL-empty-name-not-first", func(t *testing.T) {
		_, err := e.root.WalkStat(e.ctx, []string{"d", ""})
		wantErrno(t, `WalkStat ["d", ""]`, err, unix.EINVAL)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().WalkStat(e.ctx, []string{"d"})
		wantErrno(t, "WalkStat(unknown FDID)", err, unix.EBADF)
	})
}

// ---- MID 7: OpenAt ----

func midOpenAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.mkdirHost("d")
	e.writeHost("f", "contents")
	e.symlinkHost("f", "l")
	f := e.walk("f")
	defer e.closeFD(f)
	d := e.walk("d")
	defer e.closeFD(d)
	t.Run("ok/file-read-only-donates-host-FD", func(t *testing.T) {
		of, hostFD := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		buf := make([]byte, 16)
		if e.donated(t, "OpenAt of a regular file", hostFD) {
			n, err := unix.Pread(hostFD, buf, 0)
			if err != nil || string(buf[:n]) != "contents" {
				t.Errorf("pread on donated FD: %q, %v", buf[:n], err)
			}
		}
		n2, err := of.Read(e.ctx, buf, 0)
		if err != nil || string(buf[:n2]) != "contents" {
			t.Errorf("PRead on open FD: %q, %v", buf[:n2], err)
		}
	})
	t.Run("ok/flags-masked-to-accmode-and-trunc", func(t *testing.T) {
		e.writeHost("m", "0123456789")
		m := e.walk("m")
		defer e.closeFD(m)
		// O_APPEND is not one of the flags the protocol passes on, so a
		// PWrite at offset 0 lands at offset 0.
		of, hostFD := e.open(m, unix.O_WRONLY|unix.O_APPEND)
		defer e.closeFD(of)
		_, err := of.Write(e.ctx, []byte("AB"), 0)
		mustOK(t, "PWrite on O_WRONLY|O_APPEND", err)
		if got := readAllHost(t, e.path("m")); got != "AB23456789" {
			t.Errorf("content %q, want AB23456789 (O_APPEND must be dropped)", got)
		}
		if hostFD >= 0 {
			if fl, err := unix.FcntlInt(uintptr(hostFD), unix.F_GETFL, 0); err != nil || fl&unix.O_APPEND != 0 || fl&unix.O_ACCMODE != unix.O_WRONLY {
				t.Errorf("donated FD flags %#x (%v): want O_WRONLY without O_APPEND", fl, err)
			}
		}
		tr, _ := e.open(m, unix.O_WRONLY|unix.O_TRUNC)
		defer e.closeFD(tr)
		if hs := hostStat(t, e.path("m")); hs.Size != 0 {
			t.Errorf("O_TRUNC left size %d", hs.Size)
		}
	})
	t.Run("ok/directory-no-host-FD", func(t *testing.T) {
		od, hostFD := e.open(d, unix.O_RDONLY)
		defer e.closeFD(od)
		if hostFD != -1 {
			t.Errorf("OpenAt of a directory donated host FD %d; the host gofer donates only for regular files, FIFOs, char devices and the mount point when enabled", hostFD)
		}
	})
	t.Run("err/EISDIR-directory-for-write", func(t *testing.T) {
		_, _, err := d.OpenAt(e.ctx, unix.O_WRONLY)
		wantErrno(t, "OpenAt(dir, O_WRONLY)", err, unix.EISDIR)
	})
	t.Run("err/EISDIR-directory-with-O_TRUNC", func(t *testing.T) {
		_, _, err := d.OpenAt(e.ctx, unix.O_RDONLY|unix.O_TRUNC)
		wantErrno(t, "OpenAt(dir, O_TRUNC)", err, unix.EISDIR)
	})
	t.Run("err/EINVAL-symlink", func(t *testing.T) {
		l := e.walk("l")
		defer e.closeFD(l)
		_, _, err := l.OpenAt(e.ctx, unix.O_RDONLY)
		wantErrno(t, "OpenAt(symlink)", err, unix.EINVAL)
	})
	t.Run("err/EINVAL-open-FD-as-control-FD", func(t *testing.T) {
		of, _ := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		_, _, err := of.OpenAt(e.ctx, unix.O_RDONLY)
		wantErrno(t, "OpenAt(open FD)", err, unix.EINVAL)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, _, err := e.bad().OpenAt(e.ctx, unix.O_RDONLY)
		wantErrno(t, "OpenAt(unknown FDID)", err, unix.EBADF)
	})
}

// ---- MID 8: OpenCreateAt ----

func midOpenCreateAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	t.Run("ok/create-with-mode-and-owner", func(t *testing.T) {
		ino, openID, hostFD, err := e.root.OpenCreateAt(e.ctx, "new", unix.O_RDWR, 0o640, 1234, 5678)
		mustOK(t, "OpenCreateAt new", err)
		e.ownHostFD(hostFD)
		defer e.closeFD(e.fd(ino.ControlFD))
		defer e.closeFD(e.fd(openID))
		if !ino.ControlFD.Ok() || !openID.Ok() || ino.ControlFD == openID {
			t.Errorf("OpenCreateAt FDIDs control %d open %d", ino.ControlFD, openID)
		}
		if uint32(ino.Stat.Mode) != unix.S_IFREG|0o640 || ino.Stat.UID != 1234 || ino.Stat.GID != 5678 {
			t.Errorf("new file: mode %#o uid %d gid %d, want %#o 1234 5678", ino.Stat.Mode, ino.Stat.UID, ino.Stat.GID, unix.S_IFREG|0o640)
		}
		hs := hostStat(t, e.path("new"))
		sameFile(t, "new", ino.Stat, hs)
		if hs.Uid != 1234 || hs.Gid != 5678 {
			t.Errorf("host owner %d:%d, want 1234:5678", hs.Uid, hs.Gid)
		}
		of := e.fd(openID)
		if e.donated(t, "OpenCreateAt", hostFD) {
			if _, err := unix.Pwrite(hostFD, []byte("via-host"), 0); err != nil {
				t.Errorf("pwrite on donated O_RDWR FD: %v", err)
			}
		} else {
			// The same data, through the server.
			if _, err := of.Write(e.ctx, []byte("via-host"), 0); err != nil {
				t.Errorf("PWrite on the new O_RDWR FD: %v", err)
			}
		}
		buf := make([]byte, 8)
		n, err := of.Read(e.ctx, buf, 0)
		if err != nil || string(buf[:n]) != "via-host" {
			t.Errorf("PRead after host write: %q, %v", buf[:n], err)
		}
	})
	t.Run("err/EEXIST-existing-name", func(t *testing.T) {
		_, _, _, err := e.root.OpenCreateAt(e.ctx, "f", unix.O_RDWR, 0o644, 0, 0)
		wantErrno(t, "OpenCreateAt(existing)", err, unix.EEXIST)
		if got := readAllHost(t, e.path("f")); got != "x" {
			t.Errorf("existing file content changed to %q", got)
		}
	})
	t.Run("err/ENOTDIR-file-as-directory", func(t *testing.T) {
		f := e.walk("f")
		defer e.closeFD(f)
		_, _, _, err := f.OpenCreateAt(e.ctx, "x", unix.O_RDWR, 0o644, 0, 0)
		wantErrno(t, "OpenCreateAt in a file", err, unix.ENOTDIR)
	})
	for _, bad := range []struct{ label, name string }{{"dotdot", ".."}, {"slash", "a/b"}, {"empty", ""}} {
		t.Run("err/EINVAL-name-"+bad.label, func(t *testing.T) {
			_, _, _, err := e.root.OpenCreateAt(e.ctx, bad.name, unix.O_RDWR, 0o644, 0, 0)
			wantErrno(t, fmt.Sprintf("OpenCreateAt(%q)", bad.name), err, unix.EINVAL)
		})
	}
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, _, _, err := e.bad().OpenCreateAt(e.ctx, "y", unix.O_RDWR, 0o644, 0, 0)
		wantErrno(t, "OpenCreateAt(unknown FDID)", err, unix.EBADF)
		hostMissing(t, e.path("y"))
	})
}

// ---- MID 9: Close ----

func midClose(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	t.Run("ok/closed-FD-is-gone", func(t *testing.T) {
		f := e.walk("f")
		id := f.ID()
		e.closeFD(f)
		var st lisafs.Statx
		g := e.fd(id)
		wantErrno(t, "FStat after Close", g.StatTo(e.ctx, &st), unix.EBADF)
	})
	t.Run("ok/FDIDs-never-reused", func(t *testing.T) {
		seen := map[lisafs.FDID]bool{e.root.ID(): true}
		for i := 0; i < 20; i++ {
			f := e.walk("f")
			if seen[f.ID()] || !f.Ok() {
				t.Errorf("Walk returned FDID %d, already issued on this connection", f.ID())
			}
			seen[f.ID()] = true
			e.closeFD(f)
		}
	})
	t.Run("ok/open-FD-outlives-its-control-FD", func(t *testing.T) {
		f := e.walk("f")
		of, _ := e.open(f, unix.O_RDONLY)
		fid := f.ID()
		e.closeFD(f)
		var st lisafs.Statx
		g := e.fd(fid)
		wantErrno(t, "FStat of the closed control FD", g.StatTo(e.ctx, &st), unix.EBADF)
		buf := make([]byte, 1)
		if n, err := of.Read(e.ctx, buf, 0); err != nil || string(buf[:n]) != "x" {
			t.Errorf("PRead on an open FD whose control FD was closed: %q, %v", buf[:n], err)
		}
		oid := of.ID()
		e.closeFD(of)
		h := e.fd(oid)
		_, err := h.Read(e.ctx, buf, 0)
		wantErrno(t, "PRead on a closed open FD", err, unix.EBADF)
	})
	t.Run("ok/unknown-FDIDs-ignored", func(t *testing.T) {
		req := lisafs.CloseReq{FDs: []lisafs.FDID{badFDID, lisafs.InvalidFDID}}
		mustOK(t, "Close(unknown FDIDs)", e.raw(lisafs.Close, &req, &lisafs.CloseResp{}, nil))
	})
	t.Run("ok/client-batch-of-100", func(t *testing.T) {
		var ids []lisafs.FDID
		for i := 0; i < 150; i++ {
			f := e.walk("f")
			ids = append(ids, f.ID())
			// Not flushed: the client sends one Close RPC per 100 FDIDs.
			e.client.CloseFD(e.ctx, f.ID(), false)
		}
		var st lisafs.Statx
		first := e.fd(ids[0])
		wantErrno(t, "FStat of an FD closed by a batched Close", first.StatTo(e.ctx, &st), unix.EBADF)
		e.client.CloseFD(e.ctx, badFDID, true) // flush the remaining 50
		last := e.fd(ids[len(ids)-1])
		wantErrno(t, "FStat of an FD closed by the flushed Close", last.StatTo(e.ctx, &st), unix.EBADF)
	})
	t.Run("err/EIO-truncated-FdArray", func(t *testing.T) {
		// Count 3, no FDIDs follow.
		err := e.raw(lisafs.Close, rawBytes{3, 0}, ignoreResp{}, nil)
		wantErrno(t, "Close(truncated)", err, unix.EIO)
		e.stat(e.root) // the connection survives
	})
}

// ---- MID 10: FSync ----

func midFSync(t *testing.T) {
	e := startServer(t, serverOpts{})
	_, of, _ := e.create(e.root, "f", 0o644)
	defer e.closeFD(of)
	_, of2, _ := e.create(e.root, "g", 0o644)
	defer e.closeFD(of2)
	t.Run("ok/one-FD", func(t *testing.T) {
		_, err := of.Write(e.ctx, []byte("data"), 0)
		mustOK(t, "PWrite", err)
		mustOK(t, "FSync", of.Sync(e.ctx))
	})
	t.Run("ok/two-FDs", func(t *testing.T) {
		mustOK(t, "FSync([f, g])", e.client.SyncFDs(e.ctx, []lisafs.FDID{of.ID(), of2.ID()}))
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		wantErrno(t, "FSync(unknown FDID)", e.bad().Sync(e.ctx), unix.EBADF)
	})
	t.Run("err/EINVAL-control-FD", func(t *testing.T) {
		wantErrno(t, "FSync(control FD)", e.root.Sync(e.ctx), unix.EINVAL)
	})
	t.Run("err/EBADF-one-bad-FD-among-good", func(t *testing.T) {
		wantErrno(t, "FSync([f, unknown, g])", e.client.SyncFDs(e.ctx, []lisafs.FDID{of.ID(), badFDID, of2.ID()}), unix.EBADF)
	})
}

// ---- MID 11: PWrite ----

func midPWrite(t *testing.T) {
	e := startServer(t, serverOpts{})
	ctl, of, _ := e.create(e.root, "f", 0o644)
	defer e.closeFD(ctl)
	defer e.closeFD(of)
	t.Run("ok/write-and-hole", func(t *testing.T) {
		n, err := of.Write(e.ctx, []byte("hello world"), 0)
		mustOK(t, "PWrite@0", err)
		if n != 11 {
			t.Errorf("PWrite@0 wrote %d, want 11", n)
		}
		n, err = of.Write(e.ctx, []byte("XY"), 20)
		mustOK(t, "PWrite@20", err)
		if n != 2 {
			t.Errorf("PWrite@20 wrote %d, want 2", n)
		}
		if got, want := readAllHost(t, e.path("f")), "hello world"+string(make([]byte, 9))+"XY"; got != want {
			t.Errorf("host content %q, want %q", got, want)
		}
	})
	t.Run("err/EBADF-read-only-open-FD", func(t *testing.T) {
		ro, _ := e.open(ctl, unix.O_RDONLY)
		defer e.closeFD(ro)
		_, err := ro.Write(e.ctx, []byte{1, 2, 3}, 0)
		wantErrno(t, "PWrite on an O_RDONLY FD", err, unix.EBADF)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().Write(e.ctx, []byte{1}, 0)
		wantErrno(t, "PWrite(unknown FDID)", err, unix.EBADF)
	})
	t.Run("err/EINVAL-control-FD", func(t *testing.T) {
		_, err := ctl.Write(e.ctx, []byte{1}, 0)
		wantErrno(t, "PWrite(control FD)", err, unix.EINVAL)
	})
	t.Run("err/EIO-num-bytes-beyond-payload", func(t *testing.T) {
		before := readAllHost(t, e.path("f"))
		req := make([]byte, 0, 24)
		req = appendU64(req, 0)
		req = appendU64(req, uint64(of.ID()))
		req = appendU32(req, 100) // claims 100 bytes
		req = append(req, "abcd"...)
		err := e.raw(lisafs.PWrite, rawBytes(req), &lisafs.PWriteResp{}, nil)
		wantErrno(t, "PWrite(num_bytes 100, 4 data bytes)", err, unix.EIO)
		if got := readAllHost(t, e.path("f")); got != before {
			t.Errorf("malformed PWrite changed the file to %q", got)
		}
	})
}

// ---- MID 12: PRead ----

func midPRead(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "hello world")
	f := e.walk("f")
	defer e.closeFD(f)
	of, _ := e.open(f, unix.O_RDONLY)
	defer e.closeFD(of)
	t.Run("ok/read-at-offset", func(t *testing.T) {
		buf := make([]byte, 5)
		n, err := of.Read(e.ctx, buf, 6)
		mustOK(t, "PRead@6", err)
		if string(buf[:n]) != "world" {
			t.Errorf("PRead@6 = %q, want %q", buf[:n], "world")
		}
	})
	t.Run("ok/short-read-at-end", func(t *testing.T) {
		buf := make([]byte, 64)
		n, err := of.Read(e.ctx, buf, 0)
		mustOK(t, "PRead 64@0", err)
		if string(buf[:n]) != "hello world" {
			t.Errorf("PRead 64@0 = %q", buf[:n])
		}
	})
	t.Run("ok/EOF-is-zero-bytes", func(t *testing.T) {
		buf := make([]byte, 8)
		_, err := of.Read(e.ctx, buf, 100)
		if err != io.EOF {
			t.Errorf("PRead past EOF: %v, want io.EOF (zero-byte success)", err)
		}
	})
	t.Run("err/EBADF-write-only-open-FD", func(t *testing.T) {
		wo, _ := e.open(f, unix.O_WRONLY)
		defer e.closeFD(wo)
		_, err := wo.Read(e.ctx, make([]byte, 4), 0)
		wantErrno(t, "PRead on an O_WRONLY FD", err, unix.EBADF)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().Read(e.ctx, make([]byte, 4), 0)
		wantErrno(t, "PRead(unknown FDID)", err, unix.EBADF)
	})
	t.Run("err/EINVAL-control-FD", func(t *testing.T) {
		_, err := f.Read(e.ctx, make([]byte, 4), 0)
		wantErrno(t, "PRead(control FD)", err, unix.EINVAL)
	})
	t.Run("err/ENOBUFS-count-over-max-message", func(t *testing.T) {
		req := lisafs.PReadReq{FD: of.ID(), Count: lisafs.MaxMessageSize() - 7}
		err := e.raw(lisafs.PRead, &req, ignoreResp{}, nil)
		wantErrno(t, "PRead(count = max - 7)", err, unix.ENOBUFS)
	})
}

// ---- MID 13: MkdirAt ----

func midMkdirAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	t.Run("ok/mkdir-exact-mode", func(t *testing.T) {
		ino, err := e.root.MkdirAt(e.ctx, "nd", 0o777, 0, 0)
		mustOK(t, "MkdirAt nd 0777", err)
		defer e.closeFD(e.fd(ino.ControlFD))
		hs := hostStat(t, e.path("nd"))
		sameFile(t, "nd", ino.Stat, hs)
		if hs.Mode != unix.S_IFDIR|0o777 {
			t.Errorf("host mode %#o, want %#o (the client already applied its umask; the server must not apply its own)", hs.Mode, unix.S_IFDIR|0o777)
		}
	})
	t.Run("ok/mkdir-in-subdir-with-owner", func(t *testing.T) {
		nd := e.walk("nd")
		defer e.closeFD(nd)
		ino, err := nd.MkdirAt(e.ctx, "sub", 0o750, 1234, 5678)
		mustOK(t, "MkdirAt nd/sub", err)
		defer e.closeFD(e.fd(ino.ControlFD))
		hs := hostStat(t, e.path("nd/sub"))
		if hs.Mode != unix.S_IFDIR|0o750 || hs.Uid != 1234 || hs.Gid != 5678 {
			t.Errorf("host nd/sub mode %#o owner %d:%d, want %#o 1234:5678", hs.Mode, hs.Uid, hs.Gid, unix.S_IFDIR|0o750)
		}
	})
	t.Run("err/EEXIST", func(t *testing.T) {
		_, err := e.root.MkdirAt(e.ctx, "f", 0o755, 0, 0)
		wantErrno(t, "MkdirAt(existing)", err, unix.EEXIST)
	})
	t.Run("err/EINVAL-name-dotdot", func(t *testing.T) {
		_, err := e.root.MkdirAt(e.ctx, "..", 0o755, 0, 0)
		wantErrno(t, "MkdirAt(..)", err, unix.EINVAL)
	})
	t.Run("err/ENOTDIR-file-as-directory", func(t *testing.T) {
		f := e.walk("f")
		defer e.closeFD(f)
		_, err := f.MkdirAt(e.ctx, "x", 0o755, 0, 0)
		wantErrno(t, "MkdirAt in a file", err, unix.ENOTDIR)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().MkdirAt(e.ctx, "x", 0o755, 0, 0)
		wantErrno(t, "MkdirAt(unknown FDID)", err, unix.EBADF)
	})
}

// ---- MID 14: MknodAt ----

func midMknodAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	t.Run("ok/regular-file", func(t *testing.T) {
		ino, err := e.root.MknodAt(e.ctx, "node", unix.S_IFREG|0o640, 0, 0, 0, 0)
		mustOK(t, "MknodAt S_IFREG", err)
		defer e.closeFD(e.fd(ino.ControlFD))
		hs := hostStat(t, e.path("node"))
		sameFile(t, "node", ino.Stat, hs)
		if hs.Mode != unix.S_IFREG|0o640 {
			t.Errorf("host mode %#o, want %#o", hs.Mode, unix.S_IFREG|0o640)
		}
	})
	t.Run("ok/whiteout-char-device-0-0", func(t *testing.T) {
		// The host gofer allows a 0:0 character device (overlay whiteout).
		// Creating one needs CAP_MKNOD; without it the host's own error is
		// what the server must report.
		probe := filepath.Join(t.TempDir(), "probe")
		hostErr := unix.Mknod(probe, unix.S_IFCHR|0o600, 0)
		ino, err := e.root.MknodAt(e.ctx, "wh", unix.S_IFCHR|0o600, 0, 0, 0, 0)
		if hostErr != nil {
			wantErrno(t, "MknodAt 0:0 char device without CAP_MKNOD", err, hostErr.(unix.Errno))
			return
		}
		mustOK(t, "MknodAt 0:0 char device", err)
		defer e.closeFD(e.fd(ino.ControlFD))
		hs := hostStat(t, e.path("wh"))
		if hs.Mode&unix.S_IFMT != unix.S_IFCHR || hs.Rdev != 0 {
			t.Errorf("host wh mode %#o rdev %#x, want char device 0:0", hs.Mode, hs.Rdev)
		}
	})
	t.Run("err/EPERM-FIFO", func(t *testing.T) {
		ino, err := e.root.MknodAt(e.ctx, "fifo", unix.S_IFIFO|0o644, 0, 0, 0, 0)
		e.wantMknodRefused(t, "MknodAt S_IFIFO", "fifo", unix.S_IFIFO|0o644, 0, 0, ino, err)
	})
	t.Run("err/EPERM-char-device-1-3", func(t *testing.T) {
		ino, err := e.root.MknodAt(e.ctx, "null", unix.S_IFCHR|0o666, 0, 0, 3, 1)
		e.wantMknodRefused(t, "MknodAt S_IFCHR 1:3", "null", unix.S_IFCHR|0o666, 1, 3, ino, err)
	})
	t.Run("err/EPERM-socket", func(t *testing.T) {
		ino, err := e.root.MknodAt(e.ctx, "sock", unix.S_IFSOCK|0o644, 0, 0, 0, 0)
		e.wantMknodRefused(t, "MknodAt S_IFSOCK", "sock", unix.S_IFSOCK|0o644, 0, 0, ino, err)
	})
	t.Run("err/EEXIST", func(t *testing.T) {
		_, err := e.root.MknodAt(e.ctx, "f", unix.S_IFREG|0o644, 0, 0, 0, 0)
		wantErrno(t, "MknodAt(existing)", err, unix.EEXIST)
	})
	t.Run("err/EINVAL-name-dot", func(t *testing.T) {
		_, err := e.root.MknodAt(e.ctx, ".", unix.S_IFREG|0o644, 0, 0, 0, 0)
		wantErrno(t, "MknodAt(.)", err, unix.EINVAL)
	})
}

// ---- MID 15: SymlinkAt ----

func midSymlinkAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	const target = "some/../odd//target"
	t.Run("ok/symlink", func(t *testing.T) {
		ino, err := e.root.SymlinkAt(e.ctx, "sl", target, 1234, 5678)
		mustOK(t, "SymlinkAt", err)
		defer e.closeFD(e.fd(ino.ControlFD))
		hs := hostStat(t, e.path("sl"))
		sameFile(t, "sl", ino.Stat, hs)
		if fileType(ino.Stat.Mode) != unix.S_IFLNK {
			t.Errorf("symlink mode %#o", ino.Stat.Mode)
		}
		if hs.Uid != 1234 || hs.Gid != 5678 {
			t.Errorf("host symlink owner %d:%d, want 1234:5678", hs.Uid, hs.Gid)
		}
		if got, err := hostReadlink(e.path("sl")); err != nil || got != target {
			t.Errorf("host readlink = %q, %v; want %q", got, err, target)
		}
	})
	t.Run("err/EEXIST", func(t *testing.T) {
		_, err := e.root.SymlinkAt(e.ctx, "f", target, 0, 0)
		wantErrno(t, "SymlinkAt(existing)", err, unix.EEXIST)
	})
	t.Run("err/EINVAL-name-dot", func(t *testing.T) {
		_, err := e.root.SymlinkAt(e.ctx, ".", target, 0, 0)
		wantErrno(t, "SymlinkAt(.)", err, unix.EINVAL)
	})
	t.Run("err/ENOTDIR-file-as-directory", func(t *testing.T) {
		f := e.walk("f")
		defer e.closeFD(f)
		_, err := f.SymlinkAt(e.ctx, "x", target, 0, 0)
		wantErrno(t, "SymlinkAt in a file", err, unix.ENOTDIR)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().SymlinkAt(e.ctx, "x", target, 0, 0)
		wantErrno(t, "SymlinkAt(unknown FDID)", err, unix.EBADF)
	})
}

// ---- MID 16: LinkAt ----

func midLinkAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	e.writeHost("g", "y")
	e.mkdirHost("d")
	f := e.walk("f")
	defer e.closeFD(f)
	t.Run("ok/hard-link", func(t *testing.T) {
		ino, err := e.root.LinkAt(e.ctx, f.ID(), "hl")
		mustOK(t, "LinkAt", err)
		defer e.closeFD(e.fd(ino.ControlFD))
		if ino.Stat.Nlink != 2 {
			t.Errorf("link nlink %d, want 2", ino.Stat.Nlink)
		}
		if st := e.stat(f); st.Nlink != 2 || st.Ino != ino.Stat.Ino {
			t.Errorf("target nlink %d ino %d, want 2 %d", st.Nlink, st.Ino, ino.Stat.Ino)
		}
		sameFile(t, "hl", ino.Stat, hostStat(t, e.path("hl")))
	})
	t.Run("err/EPERM-directory-target", func(t *testing.T) {
		d := e.walk("d")
		defer e.closeFD(d)
		_, err := e.root.LinkAt(e.ctx, d.ID(), "dl")
		wantErrno(t, "LinkAt(directory)", err, unix.EPERM)
	})
	t.Run("err/EEXIST", func(t *testing.T) {
		_, err := e.root.LinkAt(e.ctx, f.ID(), "g")
		wantErrno(t, "LinkAt onto an existing name", err, unix.EEXIST)
	})
	t.Run("err/ENOTDIR-file-as-directory", func(t *testing.T) {
		_, err := f.LinkAt(e.ctx, f.ID(), "x")
		wantErrno(t, "LinkAt in a file", err, unix.ENOTDIR)
	})
	t.Run("err/EINVAL-name-dotdot", func(t *testing.T) {
		_, err := e.root.LinkAt(e.ctx, f.ID(), "..")
		wantErrno(t, "LinkAt(..)", err, unix.EINVAL)
	})
	t.Run("err/EBADF-unknown-target", func(t *testing.T) {
		_, err := e.root.LinkAt(e.ctx, badFDID, "x")
		wantErrno(t, "LinkAt(unknown target FDID)", err, unix.EBADF)
	})
}

// ---- MID 17: FStatFS ----

func midFStatFS(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	t.Run("ok/matches-host-statfs", func(t *testing.T) {
		var sfs lisafs.StatFS
		mustOK(t, "FStatFS", e.root.StatFSTo(e.ctx, &sfs))
		hs := hostStatfs(t, e.dir)
		if sfs.Type != uint64(hs.Type) || sfs.BlockSize != hs.Bsize || sfs.NameLength != uint64(hs.Namelen) || sfs.Blocks != hs.Blocks || sfs.Files != hs.Files {
			t.Errorf("FStatFS %+v disagrees with host statfs type %#x bsize %d namelen %d blocks %d files %d",
				sfs, hs.Type, hs.Bsize, hs.Namelen, hs.Blocks, hs.Files)
		}
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		var sfs lisafs.StatFS
		wantErrno(t, "FStatFS(unknown FDID)", e.bad().StatFSTo(e.ctx, &sfs), unix.EBADF)
	})
	t.Run("err/EINVAL-open-FD", func(t *testing.T) {
		f := e.walk("f")
		defer e.closeFD(f)
		of, _ := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		var sfs lisafs.StatFS
		wantErrno(t, "FStatFS(open FD)", of.StatFSTo(e.ctx, &sfs), unix.EINVAL)
	})
}

// ---- MID 18: FAllocate ----

func midFAllocate(t *testing.T) {
	e := startServer(t, serverOpts{})
	ctl, of, _ := e.create(e.root, "f", 0o644)
	defer e.closeFD(ctl)
	defer e.closeFD(of)
	t.Run("ok/extends-size", func(t *testing.T) {
		mustOK(t, "FAllocate(0, 0, 40)", of.Allocate(e.ctx, 0, 0, 40))
		if st := e.stat(of); st.Size != 40 {
			t.Errorf("size after allocate 0+40 = %d, want 40", st.Size)
		}
		mustOK(t, "FAllocate(0, 20, 100)", of.Allocate(e.ctx, 0, 20, 100))
		if st := e.stat(of); st.Size != 120 {
			t.Errorf("size after allocate 20+100 = %d, want 120", st.Size)
		}
		mustOK(t, "FAllocate(KEEP_SIZE, 1000, 100)", of.Allocate(e.ctx, unix.FALLOC_FL_KEEP_SIZE, 1000, 100))
		if hs := hostStat(t, e.path("f")); hs.Size != 120 {
			t.Errorf("host size %d, want 120", hs.Size)
		}
	})
	t.Run("err/EBADF-read-only-open-FD", func(t *testing.T) {
		ro, _ := e.open(ctl, unix.O_RDONLY)
		defer e.closeFD(ro)
		wantErrno(t, "FAllocate on an O_RDONLY FD", ro.Allocate(e.ctx, 0, 0, 4096), unix.EBADF)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		wantErrno(t, "FAllocate(unknown FDID)", e.bad().Allocate(e.ctx, 0, 0, 10), unix.EBADF)
	})
	t.Run("err/EINVAL-control-FD", func(t *testing.T) {
		wantErrno(t, "FAllocate(control FD)", ctl.Allocate(e.ctx, 0, 0, 10), unix.EINVAL)
	})
}

// ---- MID 19: ReadLinkAt ----

func midReadLinkAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	const target = "../outside/../the/target"
	e.symlinkHost(target, "l")
	t.Run("ok/readlink", func(t *testing.T) {
		l := e.walk("l")
		defer e.closeFD(l)
		got, err := l.ReadLinkAt(e.ctx)
		mustOK(t, "ReadLinkAt", err)
		if got != target {
			t.Errorf("ReadLinkAt = %q, want %q", got, target)
		}
	})
	t.Run("err/EINVAL-regular-file", func(t *testing.T) {
		f := e.walk("f")
		defer e.closeFD(f)
		_, err := f.ReadLinkAt(e.ctx)
		wantErrno(t, "ReadLinkAt(file)", err, unix.EINVAL)
	})
	t.Run("err/EINVAL-directory", func(t *testing.T) {
		_, err := e.root.ReadLinkAt(e.ctx)
		wantErrno(t, "ReadLinkAt(dir)", err, unix.EINVAL)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().ReadLinkAt(e.ctx)
		wantErrno(t, "ReadLinkAt(unknown FDID)", err, unix.EBADF)
	})
}

// ---- MID 21: Connect ----

func midConnect(t *testing.T) {
	t.Run("ok/connect-to-Go-listener", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{hostUDS: true})
		l := listenUnix(t, e.path("gsock"))
		s := e.walk("gsock")
		defer e.closeFD(s)
		if st := e.stat(s); fileType(st.Mode) != unix.S_IFSOCK {
			t.Fatalf("gsock mode %#o is not a socket", st.Mode)
		}
		// NoUID/NoGID: the client uses plain Connect (MID 21).
		hostFD, err := s.Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		mustOK(t, "Connect", err)
		e.ownHostFD(hostFD)
		conn := acceptUnix(t, l)
		exchangeBytes(t, hostFD, conn)
	})
	t.Run("err/ECONNREFUSED-no-listener", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{hostUDS: true})
		l := listenUnix(t, e.path("stale"))
		l.SetUnlinkOnClose(false)
		l.Close()
		s := e.walk("stale")
		defer e.closeFD(s)
		_, err := s.Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		wantErrno(t, "Connect(stale socket file)", err, unix.ECONNREFUSED)
	})
	t.Run("err/ENOTSOCK-regular-file", func(t *testing.T) {
		e := startServer(t, serverOpts{hostUDS: true})
		e.writeHost("f", "x")
		f := e.walk("f")
		defer e.closeFD(f)
		_, err := f.Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		wantErrno(t, "Connect(regular file)", err, unix.ENOTSOCK)
	})
	t.Run("err/ENXIO-bad-socket-type", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{hostUDS: true})
		listenUnix(t, e.path("gsock"))
		s := e.walk("gsock")
		defer e.closeFD(s)
		_, err := s.Connect(e.ctx, linux.SOCK_RAW, lisafs.NoUID, lisafs.NoGID)
		wantErrno(t, "Connect(SOCK_RAW)", err, unix.ENXIO)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		e := startServer(t, serverOpts{hostUDS: true})
		_, err := e.bad().Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		wantErrno(t, "Connect(unknown FDID)", err, unix.EBADF)
	})
	t.Run("err/EPERM-host-uds-disabled", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{})
		listenUnix(t, e.path("gsock"))
		s := e.walk("gsock")
		defer e.closeFD(s)
		_, err := s.Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		wantErrno(t, "Connect without --host-uds", err, unix.EPERM)
	})
}

// ---- MID 22: UnlinkAt ----

func midUnlinkAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	e.mkdirHost("d")
	e.mkdirHost("full/sub")
	e.writeHost("g", "x")
	t.Run("ok/file", func(t *testing.T) {
		mustOK(t, "UnlinkAt f", e.root.UnlinkAt(e.ctx, "f", 0))
		hostMissing(t, e.path("f"))
		_, err := e.root.Walk(e.ctx, "f")
		wantErrno(t, "Walk after unlink", err, unix.ENOENT)
	})
	t.Run("ok/directory-AT_REMOVEDIR", func(t *testing.T) {
		mustOK(t, "UnlinkAt d AT_REMOVEDIR", e.root.UnlinkAt(e.ctx, "d", unix.AT_REMOVEDIR))
		hostMissing(t, e.path("d"))
	})
	t.Run("err/ENOENT-missing", func(t *testing.T) {
		wantErrno(t, "UnlinkAt(missing)", e.root.UnlinkAt(e.ctx, "missing", 0), unix.ENOENT)
	})
	t.Run("err/ENOTEMPTY", func(t *testing.T) {
		wantErrno(t, "UnlinkAt(non-empty dir, AT_REMOVEDIR)", e.root.UnlinkAt(e.ctx, "full", unix.AT_REMOVEDIR), unix.ENOTEMPTY)
		hostStat(t, e.path("full/sub"))
	})
	t.Run("err/EISDIR-directory-without-AT_REMOVEDIR", func(t *testing.T) {
		wantErrno(t, "UnlinkAt(dir, 0)", e.root.UnlinkAt(e.ctx, "full", 0), unix.EISDIR)
	})
	t.Run("err/ENOTDIR-file-with-AT_REMOVEDIR", func(t *testing.T) {
		wantErrno(t, "UnlinkAt(file, AT_REMOVEDIR)", e.root.UnlinkAt(e.ctx, "g", unix.AT_REMOVEDIR), unix.ENOTDIR)
		hostStat(t, e.path("g"))
	})
	t.Run("err/EINVAL-name-dotdot", func(t *testing.T) {
		full := e.walk("full")
		defer e.closeFD(full)
		wantErrno(t, "UnlinkAt(..)", full.UnlinkAt(e.ctx, "..", unix.AT_REMOVEDIR), unix.EINVAL)
	})
	t.Run("err/ENOTDIR-file-as-directory", func(t *testing.T) {
		g := e.walk("g")
		defer e.closeFD(g)
		wantErrno(t, "UnlinkAt in a file", g.UnlinkAt(e.ctx, "x", 0), unix.ENOTDIR)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		wantErrno(t, "UnlinkAt(unknown FDID)", e.bad().UnlinkAt(e.ctx, "g", 0), unix.EBADF)
	})
}

// ---- MID 23: RenameAt ----

func midRenameAt(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "content")
	e.mkdirHost("d")
	e.writeHost("file", "x")
	d := e.walk("d")
	defer e.closeFD(d)
	t.Run("ok/across-directories", func(t *testing.T) {
		mustOK(t, "RenameAt f -> d/g", e.root.RenameAt(e.ctx, "f", d.ID(), "g", 0))
		hostMissing(t, e.path("f"))
		if got := readAllHost(t, e.path("d/g")); got != "content" {
			t.Errorf("d/g content %q", got)
		}
		g := e.walk("d", "g")
		e.closeFD(g)
		_, err := e.root.Walk(e.ctx, "f")
		wantErrno(t, "Walk old name", err, unix.ENOENT)
	})
	t.Run("err/ENOENT-missing-source", func(t *testing.T) {
		wantErrno(t, "RenameAt(missing)", e.root.RenameAt(e.ctx, "missing", d.ID(), "x", 0), unix.ENOENT)
	})
	t.Run("err/EINVAL-new-name-dotdot", func(t *testing.T) {
		wantErrno(t, "RenameAt(-> ..)", d.RenameAt(e.ctx, "g", e.root.ID(), "..", 0), unix.EINVAL)
	})
	t.Run("err/EINVAL-old-name-empty", func(t *testing.T) {
		wantErrno(t, `RenameAt("" -> x)`, e.root.RenameAt(e.ctx, "", d.ID(), "x", 0), unix.EINVAL)
	})
	t.Run("err/ENOTDIR-new-dir-is-file", func(t *testing.T) {
		file := e.walk("file")
		defer e.closeFD(file)
		wantErrno(t, "RenameAt(new dir = file)", d.RenameAt(e.ctx, "g", file.ID(), "x", 0), unix.ENOTDIR)
	})
	t.Run("err/EBADF-unknown-new-dir", func(t *testing.T) {
		wantErrno(t, "RenameAt(unknown new dir)", d.RenameAt(e.ctx, "g", badFDID, "x", 0), unix.EBADF)
		hostStat(t, e.path("d/g"))
	})
}

// ---- MID 24: Getdents64 ----

func midGetdents64(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.mkdirHost("d")
	for _, n := range []string{"a", "b", "c"} {
		e.writeHost("d/"+n, n)
	}
	t.Run("ok/list-then-end", func(t *testing.T) {
		d := e.walk("d")
		defer e.closeFD(d)
		od, _ := e.open(d, unix.O_RDONLY)
		defer e.closeFD(od)
		ents, err := od.Getdents64(e.ctx, 65536)
		mustOK(t, "Getdents64", err)
		var names []string
		for _, de := range ents {
			names = append(names, string(de.Name))
			if de.Type != unix.DT_REG {
				t.Errorf("entry %q type %d, want DT_REG", de.Name, de.Type)
			}
			if hs := hostStat(t, e.path("d", string(de.Name))); uint64(de.Ino) != hs.Ino ||
				uint32(de.DevMajor) != unix.Major(hs.Dev) || uint32(de.DevMinor) != unix.Minor(hs.Dev) {
				t.Errorf("entry %q ino %d dev %d:%d, host %d %d:%d", de.Name, de.Ino, de.DevMajor, de.DevMinor, hs.Ino, unix.Major(hs.Dev), unix.Minor(hs.Dev))
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"a", "b", "c"}) {
			t.Errorf("entries %q, want [a b c] (no . or ..)", names)
		}
		more, err := od.Getdents64(e.ctx, 65536)
		mustOK(t, "Getdents64 at end", err)
		if len(more) != 0 {
			t.Errorf("Getdents64 at end returned %d entries", len(more))
		}
	})
	t.Run("err/ENOTDIR-file-open-FD", func(t *testing.T) {
		f := e.walk("d", "a")
		defer e.closeFD(f)
		of, _ := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		_, err := of.Getdents64(e.ctx, 65536)
		wantErrno(t, "Getdents64(file)", err, unix.ENOTDIR)
	})
	t.Run("err/EINVAL-control-FD", func(t *testing.T) {
		_, err := e.root.Getdents64(e.ctx, 65536)
		wantErrno(t, "Getdents64(control FD)", err, unix.EINVAL)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().Getdents64(e.ctx, 65536)
		wantErrno(t, "Getdents64(unknown FDID)", err, unix.EBADF)
	})
}

// ---- MIDs 25-28: extended attributes ----

func xattrEnv(t *testing.T) (*serverEnv, lisafs.ClientFD) {
	e := startServer(t, serverOpts{})
	e.writeHost("f", "x")
	hostSetXattr(t, e.path("f"), "user.k", "v1")
	f := e.walk("f")
	t.Cleanup(func() { e.closeFD(f) })
	return e, f
}

func hostXattr(t *testing.T, path, name string) (string, error) {
	t.Helper()
	if v, rel := viewFor(path); v != nil {
		resp, err := v.call(viewReq{Op: "getxattr", Path: rel, Name: name})
		return string(resp.Data), err
	}
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func midFGetXattr(t *testing.T) {
	e, f := xattrEnv(t)
	t.Run("ok/size-0-whole-value", func(t *testing.T) {
		v, err := f.GetXattr(e.ctx, "user.k", 0)
		mustOK(t, "FGetXattr(user.k, 0)", err)
		if v != "v1" {
			t.Errorf("FGetXattr = %q, want v1", v)
		}
	})
	t.Run("ok/sized", func(t *testing.T) {
		v, err := f.GetXattr(e.ctx, "user.k", 64)
		mustOK(t, "FGetXattr(user.k, 64)", err)
		if v != "v1" {
			t.Errorf("FGetXattr = %q, want v1", v)
		}
	})
	t.Run("ok/directory", func(t *testing.T) {
		hostSetXattr(t, e.dir, "user.dk", "dv")
		v, err := e.root.GetXattr(e.ctx, "user.dk", 0)
		mustOK(t, "FGetXattr(root, user.dk)", err)
		if v != "dv" {
			t.Errorf("FGetXattr(root) = %q, want dv", v)
		}
	})
	t.Run("err/ENODATA-missing", func(t *testing.T) {
		_, err := f.GetXattr(e.ctx, "user.missing", 0)
		wantErrno(t, "FGetXattr(missing)", err, unix.ENODATA)
	})
	t.Run("err/ERANGE-small-buffer", func(t *testing.T) {
		_, err := f.GetXattr(e.ctx, "user.k", 1)
		wantErrno(t, "FGetXattr(user.k, 1)", err, unix.ERANGE)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().GetXattr(e.ctx, "user.k", 0)
		wantErrno(t, "FGetXattr(unknown FDID)", err, unix.EBADF)
	})
}

func midFSetXattr(t *testing.T) {
	e, f := xattrEnv(t)
	t.Run("ok/create-and-replace", func(t *testing.T) {
		mustOK(t, "FSetXattr(user.a=b)", f.SetXattr(e.ctx, "user.a", "b", 0))
		if v, err := hostXattr(t, e.path("f"), "user.a"); err != nil || v != "b" {
			t.Errorf("host user.a = %q, %v", v, err)
		}
		mustOK(t, "FSetXattr(user.a=c, XATTR_REPLACE)", f.SetXattr(e.ctx, "user.a", "c\x00d", unix.XATTR_REPLACE))
		if v, err := hostXattr(t, e.path("f"), "user.a"); err != nil || v != "c\x00d" {
			t.Errorf("host user.a = %q, %v", v, err)
		}
	})
	t.Run("err/EEXIST-XATTR_CREATE-existing", func(t *testing.T) {
		wantErrno(t, "FSetXattr(XATTR_CREATE existing)", f.SetXattr(e.ctx, "user.k", "z", unix.XATTR_CREATE), unix.EEXIST)
	})
	t.Run("err/ENODATA-XATTR_REPLACE-missing", func(t *testing.T) {
		wantErrno(t, "FSetXattr(XATTR_REPLACE missing)", f.SetXattr(e.ctx, "user.nope", "z", unix.XATTR_REPLACE), unix.ENODATA)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		wantErrno(t, "FSetXattr(unknown FDID)", e.bad().SetXattr(e.ctx, "user.a", "b", 0), unix.EBADF)
	})
}

func midFListXattr(t *testing.T) {
	e, f := xattrEnv(t)
	hostSetXattr(t, e.path("f"), "user.second", "2")
	t.Run("ok/list", func(t *testing.T) {
		names, err := f.ListXattr(e.ctx, 0)
		mustOK(t, "FListXattr", err)
		slices.Sort(names)
		if !slices.Equal(names, []string{"user.k", "user.second"}) {
			t.Errorf("FListXattr = %q, want [user.k user.second]", names)
		}
	})
	t.Run("err/ERANGE-small-size", func(t *testing.T) {
		_, err := f.ListXattr(e.ctx, 1)
		wantErrno(t, "FListXattr(size 1)", err, unix.ERANGE)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		_, err := e.bad().ListXattr(e.ctx, 0)
		wantErrno(t, "FListXattr(unknown FDID)", err, unix.EBADF)
	})
}

func midFRemoveXattr(t *testing.T) {
	e, f := xattrEnv(t)
	t.Run("ok/remove", func(t *testing.T) {
		mustOK(t, "FRemoveXattr(user.k)", f.RemoveXattr(e.ctx, "user.k"))
		if _, err := hostXattr(t, e.path("f"), "user.k"); err != unix.ENODATA {
			t.Errorf("host user.k after remove: %v, want ENODATA", err)
		}
	})
	t.Run("err/ENODATA-missing", func(t *testing.T) {
		wantErrno(t, "FRemoveXattr(missing)", f.RemoveXattr(e.ctx, "user.k"), unix.ENODATA)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		wantErrno(t, "FRemoveXattr(unknown FDID)", e.bad().RemoveXattr(e.ctx, "user.k"), unix.EBADF)
	})
}

// ---- MID 29: BindAt ----

func midBindAt(t *testing.T) {
	t.Run("ok/bind", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{hostUDS: true})
		ino, bsock, err := e.root.BindAt(e.ctx, linux.SOCK_STREAM, "bsock", 0o777, 1234, 5678)
		mustOK(t, "BindAt", err)
		defer e.closeFD(e.fd(ino.ControlFD))
		defer bsock.Close(e.ctx)
		if uint32(ino.Stat.Mode) != unix.S_IFSOCK|0o777 || ino.Stat.UID != 1234 || ino.Stat.GID != 5678 {
			t.Errorf("bound socket inode mode %#o owner %d:%d, want %#o 1234:5678", ino.Stat.Mode, ino.Stat.UID, ino.Stat.GID, unix.S_IFSOCK|0o777)
		}
		hs := hostStat(t, e.path("bsock"))
		sameFile(t, "bsock", ino.Stat, hs)
		if bsock.NotificationFD() < 0 {
			t.Errorf("BindAt donated no socket FD")
		}
	})
	t.Run("err/EADDRINUSE-existing-name", func(t *testing.T) {
		skipOnMemory(t, "a MemoryBackend has no bindAt (ENOSYS); these errors are the host backend's")
		e := startServer(t, serverOpts{hostUDS: true})
		e.writeHost("f", "x")
		_, _, err := e.root.BindAt(e.ctx, linux.SOCK_STREAM, "f", 0o777, 0, 0)
		wantErrno(t, "BindAt(existing)", err, unix.EADDRINUSE)
		if got := readAllHost(t, e.path("f")); got != "x" {
			t.Errorf("existing file changed to %q", got)
		}
	})
	t.Run("err/EINVAL-name-slash", func(t *testing.T) {
		e := startServer(t, serverOpts{hostUDS: true})
		_, _, err := e.root.BindAt(e.ctx, linux.SOCK_STREAM, "a/b", 0o777, 0, 0)
		wantErrno(t, "BindAt(a/b)", err, unix.EINVAL)
	})
	t.Run("err/ENXIO-bad-socket-type", func(t *testing.T) {
		skipOnMemory(t, "a MemoryBackend has no bindAt (ENOSYS); these errors are the host backend's")
		e := startServer(t, serverOpts{hostUDS: true})
		_, _, err := e.root.BindAt(e.ctx, linux.SOCK_RAW, "raw", 0o777, 0, 0)
		wantErrno(t, "BindAt(SOCK_RAW)", err, unix.ENXIO)
		hostMissing(t, e.path("raw"))
	})
	t.Run("err/ENOTDIR-file-as-directory", func(t *testing.T) {
		e := startServer(t, serverOpts{hostUDS: true})
		e.writeHost("f", "x")
		f := e.walk("f")
		defer e.closeFD(f)
		_, _, err := f.BindAt(e.ctx, linux.SOCK_STREAM, "s", 0o777, 0, 0)
		wantErrno(t, "BindAt in a file", err, unix.ENOTDIR)
	})
	t.Run("err/EPERM-host-uds-disabled", func(t *testing.T) {
		skipOnMemory(t, "a MemoryBackend has no bindAt (ENOSYS); these errors are the host backend's")
		e := startServer(t, serverOpts{})
		_, _, err := e.root.BindAt(e.ctx, linux.SOCK_STREAM, "s", 0o777, 0, 0)
		wantErrno(t, "BindAt without --host-uds", err, unix.EPERM)
		hostMissing(t, e.path("s"))
	})
}

// ---- MID 30: Listen ----

func midListen(t *testing.T) {
	skipOnMemory(t, "it has no host Unix sockets (BindAt and Connect answer ENOSYS)")
	e := startServer(t, serverOpts{hostUDS: true})
	ino, bsock, err := e.root.BindAt(e.ctx, linux.SOCK_STREAM, "lsock", 0o777, 0, 0)
	mustOK(t, "BindAt", err)
	defer e.closeFD(e.fd(ino.ControlFD))
	defer bsock.Close(e.ctx)
	t.Run("ok/listen", func(t *testing.T) {
		mustOK(t, "Listen", bsock.Listen(e.ctx, 8))
		// A Go client can now connect.
		c, err := net.DialTimeout("unix", e.path("lsock"), 5*time.Second)
		if err != nil {
			t.Fatalf("dial the listening socket: %v", err)
		}
		c.Close()
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		err := e.raw(lisafs.Listen, &lisafs.ListenReq{FD: badFDID, Backlog: 8}, &lisafs.ListenResp{}, nil)
		wantErrno(t, "Listen(unknown FDID)", err, unix.EBADF)
	})
	t.Run("err/EINVAL-control-FD", func(t *testing.T) {
		err := e.raw(lisafs.Listen, &lisafs.ListenReq{FD: ino.ControlFD, Backlog: 8}, &lisafs.ListenResp{}, nil)
		wantErrno(t, "Listen(control FD)", err, unix.EINVAL)
	})
}

// ---- MID 31: Accept ----

func midAccept(t *testing.T) {
	skipOnMemory(t, "it has no host Unix sockets (BindAt and Connect answer ENOSYS)")
	e := startServer(t, serverOpts{hostUDS: true})
	ino, bsock, err := e.root.BindAt(e.ctx, linux.SOCK_STREAM, "asock", 0o777, 0, 0)
	mustOK(t, "BindAt", err)
	defer e.closeFD(e.fd(ino.ControlFD))
	defer bsock.Close(e.ctx)
	mustOK(t, "Listen", bsock.Listen(e.ctx, 8))
	t.Run("err/EAGAIN-nothing-pending", func(t *testing.T) {
		_, err := bsock.Accept(e.ctx)
		wantErrno(t, "Accept with no pending connection", err, unix.EAGAIN)
	})
	t.Run("ok/accept-carries-bytes", func(t *testing.T) {
		c, err := net.DialTimeout("unix", e.path("asock"), 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		pollIn(t, int(bsock.NotificationFD()))
		fd, err := bsock.Accept(e.ctx)
		mustOK(t, "Accept", err)
		e.ownHostFD(fd)
		exchangeBytes(t, fd, c)
	})
	t.Run("err/EBADF-unknown-FD", func(t *testing.T) {
		fds := []int{-1}
		err := e.raw(lisafs.Accept, &lisafs.AcceptReq{FD: badFDID}, &lisafs.AcceptResp{}, fds)
		wantErrno(t, "Accept(unknown FDID)", err, unix.EBADF)
	})
	t.Run("err/EINVAL-control-FD", func(t *testing.T) {
		fds := []int{-1}
		err := e.raw(lisafs.Accept, &lisafs.AcceptReq{FD: ino.ControlFD}, &lisafs.AcceptResp{}, fds)
		wantErrno(t, "Accept(control FD)", err, unix.EINVAL)
	})
}

// ---- MID 32: ConnectWithCreds ----

func midConnectWithCreds(t *testing.T) {
	t.Run("ok/as-root", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{hostUDS: true})
		l := listenUnix(t, e.path("gsock"))
		s := e.walk("gsock")
		defer e.closeFD(s)
		// Valid creds and ConnectWithCreds advertised: the client sends MID 32.
		hostFD, err := s.Connect(e.ctx, linux.SOCK_STREAM, 0, 0)
		mustOK(t, "ConnectWithCreds(0, 0)", err)
		e.ownHostFD(hostFD)
		conn := acceptUnix(t, l)
		if cred := peerCred(t, conn); cred.Uid != 0 || cred.Gid != 0 {
			t.Errorf("peer creds %d:%d, want 0:0", cred.Uid, cred.Gid)
		}
		exchangeBytes(t, hostFD, conn)
	})
	t.Run("ok/as-nobody-peer-creds", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{hostUDS: true})
		openUpForOthers(t, e.dir)
		l := listenUnix(t, e.path("gsock"))
		if err := os.Chmod(e.path("gsock"), 0o777); err != nil {
			t.Fatal(err)
		}
		s := e.walk("gsock")
		defer e.closeFD(s)
		hostFD, err := s.Connect(e.ctx, linux.SOCK_STREAM, 65534, 65534)
		mustOK(t, "ConnectWithCreds(65534, 65534)", err)
		e.ownHostFD(hostFD)
		conn := acceptUnix(t, l)
		if cred := peerCred(t, conn); cred.Uid != 65534 || cred.Gid != 65534 {
			t.Errorf("peer creds %d:%d, want 65534:65534 (the connect must run with the requested euid/egid)", cred.Uid, cred.Gid)
		}
		exchangeBytes(t, hostFD, conn)
		// The server's own credentials are restored: a root-only socket is
		// still reachable with root creds.
		if err := os.Chmod(e.path("gsock"), 0o700); err != nil {
			t.Fatal(err)
		}
		fd2, err := s.Connect(e.ctx, linux.SOCK_STREAM, 0, 0)
		mustOK(t, "ConnectWithCreds(0, 0) afterwards", err)
		e.ownHostFD(fd2)
		acceptUnix(t, l)
	})
	t.Run("err/EACCES-as-nobody-on-root-only-socket", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{hostUDS: true})
		openUpForOthers(t, e.dir)
		listenUnix(t, e.path("gsock"))
		if err := os.Chmod(e.path("gsock"), 0o700); err != nil {
			t.Fatal(err)
		}
		s := e.walk("gsock")
		defer e.closeFD(s)
		_, err := s.Connect(e.ctx, linux.SOCK_STREAM, 65534, 65534)
		wantErrno(t, "ConnectWithCreds(65534) to a 0700 root socket", err, unix.EACCES)
	})
	t.Run("err/ENOTSOCK-regular-file", func(t *testing.T) {
		e := startServer(t, serverOpts{hostUDS: true})
		e.writeHost("f", "x")
		f := e.walk("f")
		defer e.closeFD(f)
		_, err := f.Connect(e.ctx, linux.SOCK_STREAM, 0, 0)
		wantErrno(t, "ConnectWithCreds(regular file)", err, unix.ENOTSOCK)
	})
	t.Run("err/EPERM-host-uds-disabled", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets")
		e := startServer(t, serverOpts{})
		listenUnix(t, e.path("gsock"))
		s := e.walk("gsock")
		defer e.closeFD(s)
		_, err := s.Connect(e.ctx, linux.SOCK_STREAM, 0, 0)
		wantErrno(t, "ConnectWithCreds without --host-uds", err, unix.EPERM)
	})
}

// ---- MID 33: RenameAt2 ----

func midRenameAt2(t *testing.T) {
	e := startServer(t, serverOpts{})
	e.writeHost("a", "A")
	e.writeHost("b", "B")
	t.Run("ok/RENAME_EXCHANGE", func(t *testing.T) {
		mustOK(t, "RenameAt2(a <-> b, EXCHANGE)", e.root.RenameAt(e.ctx, "a", e.root.ID(), "b", unix.RENAME_EXCHANGE))
		if a, b := readAllHost(t, e.path("a")), readAllHost(t, e.path("b")); a != "B" || b != "A" {
			t.Errorf("after exchange a=%q b=%q, want B A", a, b)
		}
	})
	t.Run("ok/RENAME_NOREPLACE-fresh-name", func(t *testing.T) {
		mustOK(t, "RenameAt2(a -> c, NOREPLACE)", e.root.RenameAt(e.ctx, "a", e.root.ID(), "c", unix.RENAME_NOREPLACE))
		hostMissing(t, e.path("a"))
		if c := readAllHost(t, e.path("c")); c != "B" {
			t.Errorf("c = %q, want B", c)
		}
	})
	t.Run("err/EEXIST-RENAME_NOREPLACE", func(t *testing.T) {
		wantErrno(t, "RenameAt2(c -> b, NOREPLACE)", e.root.RenameAt(e.ctx, "c", e.root.ID(), "b", unix.RENAME_NOREPLACE), unix.EEXIST)
		if b := readAllHost(t, e.path("b")); b != "A" {
			t.Errorf("b = %q after refused rename", b)
		}
	})
	t.Run("err/EINVAL-NOREPLACE-and-EXCHANGE", func(t *testing.T) {
		wantErrno(t, "RenameAt2(NOREPLACE|EXCHANGE)", e.root.RenameAt(e.ctx, "c", e.root.ID(), "b", unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE), unix.EINVAL)
	})
	t.Run("err/ENOENT-EXCHANGE-missing-target", func(t *testing.T) {
		wantErrno(t, "RenameAt2(c <-> missing)", e.root.RenameAt(e.ctx, "c", e.root.ID(), "missing", unix.RENAME_EXCHANGE), unix.ENOENT)
	})
	t.Run("err/EINVAL-name-dot", func(t *testing.T) {
		wantErrno(t, "RenameAt2(. -> x)", e.root.RenameAt(e.ctx, ".", e.root.ID(), "x", unix.RENAME_NOREPLACE), unix.EINVAL)
	})
}

// ---- helpers for the socket tests ----

// listenUnix creates a Go listening socket at path (closed at test end).
func listenUnix(t *testing.T, path string) *net.UnixListener {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptUnix accepts one connection, bounded in time.
func acceptUnix(t *testing.T, l *net.UnixListener) *net.UnixConn {
	t.Helper()
	if err := l.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := l.AcceptUnix()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchangeBytes sends bytes both ways between a host socket FD and a Go
// connection.
func exchangeBytes(t *testing.T, fd int, c net.Conn) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	writeAll(t, fd, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("Go side read %q, %v; want ping", buf, err)
	}
	if _, err := c.Write([]byte("pong")); err != nil {
		t.Fatalf("Go side write: %v", err)
	}
	if got := readSome(t, fd); got != "pong" {
		t.Errorf("host FD read %q, want pong", got)
	}
}

// peerCred returns SO_PEERCRED of a Go unix connection.
func peerCred(t *testing.T, c *net.UnixConn) *unix.Ucred {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		t.Fatal(err)
	}
	if credErr != nil {
		t.Fatalf("SO_PEERCRED: %v", credErr)
	}
	return cred
}

// openUpForOthers makes dir and its parent searchable by other users, so a
// connect as an unprivileged user is decided by the socket file's own mode.
func openUpForOthers(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func appendU64(b []byte, v uint64) []byte {
	for i := 0; i < 8; i++ {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendU32(b []byte, v uint32) []byte {
	for i := 0; i < 4; i++ {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}
