package interop

// Behaviour tests against lisafs-serve through gVisor's client: the
// scenarios gVisor's local-filesystem server suite exercises (written
// afresh), plus read-only and confinement checks.

import (
	"bytes"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/lisafs"
)

func TestServerStat(t *testing.T) {
	e := startServer(t, serverOpts{})
	root := e.stat(e.root)
	if fileType(root.Mode) != unix.S_IFDIR {
		t.Errorf("root mode %#o is not a directory", root.Mode)
	}
	sameFile(t, "root", root, hostStat(t, e.dir))

	ctl, of, ino := e.create(e.root, "file", 0o640)
	defer e.closeFD(ctl)
	defer e.closeFD(of)
	st := e.stat(ctl)
	if st != ino.Stat {
		// Nothing happened to the file between the two stats.
		t.Errorf("FStat after create differs from the OpenCreateAt inode:\n got %s\nwant %s", st.String(), ino.Stat.String())
	}
	hs := hostStat(t, e.path("file"))
	sameFile(t, "file", st, hs)
	if st.Mode != unix.S_IFREG|0o640 || st.Size != 0 || st.Nlink != 1 || int64(st.Blksize) != hs.Blksize {
		t.Errorf("file stat mode %#o size %d nlink %d blksize %d", st.Mode, st.Size, st.Nlink, st.Blksize)
	}
	if st.Ctime.Sec != hs.Ctim.Sec || int64(st.Ctime.Nsec) != hs.Ctim.Nsec || st.Atime.Sec != hs.Atim.Sec || int64(st.Atime.Nsec) != hs.Atim.Nsec {
		t.Errorf("file times differ from the host's")
	}
}

func TestServerRegularFileIO(t *testing.T) {
	e := startServer(t, serverOpts{})
	ctl, of, ino := e.create(e.root, "big", 0o644)
	defer e.closeFD(ctl)
	defer e.closeFD(of)
	_ = ino

	// 2 MiB is larger than one message, so the client splits it.
	rng := rand.New(rand.NewSource(1))
	data := make([]byte, 2<<20)
	rng.Read(data)

	t.Run("RPC", func(t *testing.T) {
		n, err := of.Write(e.ctx, data, 0)
		mustOK(t, "PWrite 2 MiB", err)
		if n != uint64(len(data)) {
			t.Fatalf("PWrite wrote %d of %d", n, len(data))
		}
		for _, off := range []uint64{0, 50} {
			buf := make([]byte, len(data)-int(off))
			n, err := of.Read(e.ctx, buf, off)
			mustOK(t, fmt.Sprintf("PRead 2 MiB @%d", off), err)
			if n != uint64(len(buf)) || !bytes.Equal(buf, data[off:]) {
				t.Errorf("PRead @%d: %d bytes, equal=%v", off, n, bytes.Equal(buf[:n], data[off:off+n]))
			}
		}
		if st := e.stat(of); st.Size != uint64(len(data)) {
			t.Errorf("size %d, want %d", st.Size, len(data))
		}
		if got := readAllHost(t, e.path("big")); got != string(data) {
			t.Errorf("host file differs from what was written")
		}
		mustOK(t, "FSync", of.Sync(e.ctx))
	})

	t.Run("donated-host-FD", func(t *testing.T) {
		rw, hostFD := e.open(ctl, unix.O_RDWR)
		defer e.closeFD(rw)
		if !e.donated(t, "OpenAt(O_RDWR) of a regular file", hostFD) {
			t.Skip("not applicable to the memory backend: it has no host FD to donate")
		}
		got := make([]byte, len(data))
		if n, err := unix.Pread(hostFD, got, 0); err != nil || n != len(data) || !bytes.Equal(got, data) {
			t.Errorf("pread on donated FD: %d bytes, %v, equal=%v", n, err, bytes.Equal(got, data))
		}
		// Write through the host FD, read back through RPC.
		data2 := make([]byte, 2<<20)
		rng.Read(data2)
		if n, err := unix.Pwrite(hostFD, data2, 0); err != nil || n != len(data2) {
			t.Fatalf("pwrite on donated FD: %d, %v", n, err)
		}
		buf := make([]byte, len(data2))
		n, err := rw.Read(e.ctx, buf, 0)
		mustOK(t, "PRead after host write", err)
		if n != uint64(len(buf)) || !bytes.Equal(buf, data2) {
			t.Errorf("RPC view disagrees with the donated FD's writes")
		}
		if st := e.stat(rw); st.Size != uint64(len(data2)) {
			t.Errorf("size %d, want %d", st.Size, len(data2))
		}
		// A read running past the end returns what there is.
		long := make([]byte, 3<<20)
		n, err = rw.Read(e.ctx, long, 1<<20)
		mustOK(t, "PRead 3 MiB @1 MiB of a 2 MiB file", err)
		if n != 1<<20 || !bytes.Equal(long[:n], data2[1<<20:]) {
			t.Errorf("PRead past the end returned %d bytes, want %d", n, 1<<20)
		}
	})

	t.Run("read-only-open-FD", func(t *testing.T) {
		ro, hostFD := e.open(ctl, unix.O_RDONLY)
		defer e.closeFD(ro)
		_, err := ro.Write(e.ctx, []byte{1, 2, 3}, 0)
		wantErrno(t, "PWrite on an O_RDONLY open FD", err, unix.EBADF)
		if e.donated(t, "OpenAt(O_RDONLY)", hostFD) {
			_, err = unix.Pwrite(hostFD, []byte{1}, 0)
			wantErrno(t, "pwrite on the donated FD of an O_RDONLY open", err, unix.EBADF)
		}
	})
}

func TestServerSetStat(t *testing.T) {
	e := startServer(t, serverOpts{})
	ctl, of, _ := e.create(e.root, "f", 0o644)
	defer e.closeFD(ctl)
	defer e.closeFD(of)

	set := func(t *testing.T, fd lisafs.ClientFD, st linux.Statx) {
		t.Helper()
		mask, ferr, err := fd.SetStat(e.ctx, &st)
		mustOK(t, "SetStat", err)
		if mask != 0 {
			t.Fatalf("SetStat(mask %#x) failure mask %#x (%v)", st.Mask, mask, ferr)
		}
	}
	atime := linux.StatxTimestamp{Sec: 1_000_000_000, Nsec: 123_456_789}
	mtime := linux.StatxTimestamp{Sec: 1_100_000_000, Nsec: 987_654_321}

	t.Run("mode-size-times", func(t *testing.T) {
		set(t, ctl, linux.Statx{
			Mask: unix.STATX_MODE | unix.STATX_SIZE | unix.STATX_ATIME | unix.STATX_MTIME,
			Mode: 0o760, Size: 50, Atime: atime, Mtime: mtime,
		})
		st := e.stat(ctl)
		if st.Mode != unix.S_IFREG|0o760 || st.Size != 50 {
			t.Errorf("mode %#o size %d, want %#o 50", st.Mode, st.Size, unix.S_IFREG|0o760)
		}
		if st.Atime.Sec != atime.Sec || st.Atime.Nsec != atime.Nsec || st.Mtime.Sec != mtime.Sec || st.Mtime.Nsec != mtime.Nsec {
			t.Errorf("atime %d.%09d mtime %d.%09d, want %d.%09d %d.%09d", st.Atime.Sec, st.Atime.Nsec, st.Mtime.Sec, st.Mtime.Nsec, atime.Sec, atime.Nsec, mtime.Sec, mtime.Nsec)
		}
		hs := hostStat(t, e.path("f"))
		if hs.Size != 50 || hs.Mode != unix.S_IFREG|0o760 || hs.Mtim.Sec != mtime.Sec || hs.Mtim.Nsec != int64(mtime.Nsec) {
			t.Errorf("host disagrees: size %d mode %#o mtime %d.%09d", hs.Size, hs.Mode, hs.Mtim.Sec, hs.Mtim.Nsec)
		}
	})
	t.Run("UTIME_OMIT", func(t *testing.T) {
		newA := linux.StatxTimestamp{Sec: 1_200_000_000, Nsec: 5}
		set(t, ctl, linux.Statx{
			Mask:  unix.STATX_ATIME | unix.STATX_MTIME,
			Atime: newA, Mtime: linux.StatxTimestamp{Nsec: linux.UTIME_OMIT},
		})
		st := e.stat(ctl)
		if st.Atime.Sec != newA.Sec || st.Atime.Nsec != newA.Nsec {
			t.Errorf("atime %d.%09d, want %d.%09d", st.Atime.Sec, st.Atime.Nsec, newA.Sec, newA.Nsec)
		}
		if st.Mtime.Sec != mtime.Sec || st.Mtime.Nsec != mtime.Nsec {
			t.Errorf("UTIME_OMIT mtime changed to %d.%09d", st.Mtime.Sec, st.Mtime.Nsec)
		}
	})
	t.Run("UTIME_NOW", func(t *testing.T) {
		before := time.Now().Add(-2 * time.Second)
		set(t, ctl, linux.Statx{
			Mask:  unix.STATX_ATIME | unix.STATX_MTIME,
			Atime: linux.StatxTimestamp{Nsec: linux.UTIME_OMIT}, Mtime: linux.StatxTimestamp{Nsec: linux.UTIME_NOW},
		})
		after := time.Now().Add(2 * time.Second)
		st := e.stat(ctl)
		if m := time.Unix(st.Mtime.Sec, int64(st.Mtime.Nsec)); m.Before(before) || m.After(after) {
			t.Errorf("UTIME_NOW mtime %v not close to now", m)
		}
		if st.Atime.Sec != 1_200_000_000 {
			t.Errorf("UTIME_OMIT atime changed to %d.%09d", st.Atime.Sec, st.Atime.Nsec)
		}
	})
	t.Run("owner-with-minus-one", func(t *testing.T) {
		set(t, ctl, linux.Statx{Mask: unix.STATX_UID | unix.STATX_GID, UID: 4242, GID: uint32(lisafs.NoGID)})
		if hs := hostStat(t, e.path("f")); hs.Uid != 4242 || hs.Gid != 0 {
			t.Errorf("after uid=4242 gid=-1: owner %d:%d, want 4242:0", hs.Uid, hs.Gid)
		}
		set(t, ctl, linux.Statx{Mask: unix.STATX_UID | unix.STATX_GID, UID: uint32(lisafs.NoUID), GID: 4343})
		if hs := hostStat(t, e.path("f")); hs.Uid != 4242 || hs.Gid != 4343 {
			t.Errorf("after uid=-1 gid=4343: owner %d:%d, want 4242:4343", hs.Uid, hs.Gid)
		}
		if st := e.stat(ctl); st.UID != 4242 || st.GID != 4343 {
			t.Errorf("wire owner %d:%d, want 4242:4343", st.UID, st.GID)
		}
	})
	t.Run("failure-mask-symlink-mode", func(t *testing.T) {
		ino, err := e.root.SymlinkAt(e.ctx, "sl", "f", 0, 0)
		mustOK(t, "SymlinkAt", err)
		sl := e.fd(ino.ControlFD)
		defer e.closeFD(sl)
		mask, ferr, err := sl.SetStat(e.ctx, &linux.Statx{
			Mask: unix.STATX_MODE | unix.STATX_ATIME | unix.STATX_MTIME,
			Mode: 0o600, Atime: atime, Mtime: mtime,
		})
		mustOK(t, "SetStat(symlink)", err)
		if mask != unix.STATX_MODE || ferr != unix.EOPNOTSUPP {
			t.Errorf("SetStat(symlink, mode|times): failure mask %#x errno %v, want %#x EOPNOTSUPP", mask, ferr, unix.STATX_MODE)
		}
		hs := hostStat(t, e.path("sl"))
		if hs.Mtim.Sec != mtime.Sec || hs.Mtim.Nsec != int64(mtime.Nsec) {
			t.Errorf("symlink mtime %d.%09d, want %d.%09d (times are applied despite the mode failure)", hs.Mtim.Sec, hs.Mtim.Nsec, mtime.Sec, mtime.Nsec)
		}
		if ft := hostStat(t, e.path("f")); ft.Mode != unix.S_IFREG|0o760 {
			t.Errorf("SetStat on the symlink changed its target's mode to %#o", ft.Mode)
		}
	})
	t.Run("failure-mask-directory-size", func(t *testing.T) {
		ino, err := e.root.MkdirAt(e.ctx, "d", 0o755, 0, 0)
		mustOK(t, "MkdirAt", err)
		d := e.fd(ino.ControlFD)
		defer e.closeFD(d)
		mask, ferr, err := d.SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_MODE | unix.STATX_SIZE, Mode: 0o700, Size: 10})
		mustOK(t, "SetStat(dir)", err)
		if mask != unix.STATX_SIZE || ferr != unix.EISDIR {
			t.Errorf("SetStat(dir, mode|size): failure mask %#x errno %v, want %#x EISDIR", mask, ferr, unix.STATX_SIZE)
		}
		if hs := hostStat(t, e.path("d")); hs.Mode != unix.S_IFDIR|0o700 {
			t.Errorf("dir mode %#o, want %#o (mode applies even though size failed)", hs.Mode, unix.S_IFDIR|0o700)
		}
	})
}

func TestServerAllocateAndStatFS(t *testing.T) {
	e := startServer(t, serverOpts{})
	ctl, of, _ := e.create(e.root, "f", 0o644)
	defer e.closeFD(ctl)
	defer e.closeFD(of)
	for _, c := range []struct{ off, length, size uint64 }{{0, 40, 40}, {20, 100, 120}, {4096, 4096, 8192}} {
		mustOK(t, fmt.Sprintf("FAllocate(%d, %d)", c.off, c.length), of.Allocate(e.ctx, 0, c.off, c.length))
		if st := e.stat(of); st.Size != c.size {
			t.Errorf("after allocate %d+%d: size %d, want %d", c.off, c.length, st.Size, c.size)
		}
	}
	if st := e.stat(ctl); st.Blocks < 8192/512 {
		t.Errorf("allocated file has %d blocks, want at least %d", st.Blocks, 8192/512)
	}
	var sfs lisafs.StatFS
	mustOK(t, "FStatFS(file)", ctl.StatFSTo(e.ctx, &sfs))
	hs := hostStatfs(t, e.path("f"))
	if sfs.Type != uint64(hs.Type) || sfs.BlockSize != hs.Bsize || sfs.NameLength != uint64(hs.Namelen) {
		t.Errorf("FStatFS %+v, host type %#x bsize %d namelen %d", sfs, hs.Type, hs.Bsize, hs.Namelen)
	}
}

func TestServerUnlink(t *testing.T) {
	e := startServer(t, serverOpts{})
	ctl, of, _ := e.create(e.root, "tempFile", 0o644)
	defer e.closeFD(ctl)
	defer e.closeFD(of)
	_, err := of.Write(e.ctx, []byte("still here"), 0)
	mustOK(t, "PWrite", err)

	mustOK(t, "UnlinkAt file", e.root.UnlinkAt(e.ctx, "tempFile", 0))
	status, inodes, err := e.root.WalkMultiple(e.ctx, []string{"tempFile"})
	mustOK(t, "Walk unlinked", err)
	if status != lisafs.WalkComponentDoesNotExist || len(inodes) != 0 {
		t.Errorf("Walk of an unlinked file: status %d, %d inodes", status, len(inodes))
	}
	hostMissing(t, e.path("tempFile"))
	// Its FDs stay usable: FStat has no deleted check, and the open file
	// still reads.
	if st := e.stat(ctl); st.Nlink != 0 {
		t.Errorf("unlinked file nlink %d, want 0", st.Nlink)
	}
	buf := make([]byte, 10)
	if n, err := of.Read(e.ctx, buf, 0); err != nil || string(buf[:n]) != "still here" {
		t.Errorf("PRead of an unlinked file: %q, %v", buf[:n], err)
	}

	// Directories.
	dIno, err := e.root.MkdirAt(e.ctx, "dir", 0o755, 0, 0)
	mustOK(t, "MkdirAt dir", err)
	dir := e.fd(dIno.ControlFD)
	defer e.closeFD(dir)
	sub, err := dir.MkdirAt(e.ctx, "sub", 0o755, 0, 0)
	mustOK(t, "MkdirAt dir/sub", err)
	e.closeFD(e.fd(sub.ControlFD))
	wantErrno(t, "UnlinkAt(non-empty dir)", e.root.UnlinkAt(e.ctx, "dir", unix.AT_REMOVEDIR), unix.ENOTEMPTY)
	wantErrno(t, "UnlinkAt(dir without AT_REMOVEDIR)", e.root.UnlinkAt(e.ctx, "dir", 0), unix.EISDIR)
	mustOK(t, "UnlinkAt dir/sub", dir.UnlinkAt(e.ctx, "sub", unix.AT_REMOVEDIR))
	mustOK(t, "UnlinkAt dir", e.root.UnlinkAt(e.ctx, "dir", unix.AT_REMOVEDIR))
	hostMissing(t, e.path("dir"))

	// The deleted directory's control FD refuses to create children and
	// walks from it find nothing.
	_, err = dir.MkdirAt(e.ctx, "x", 0o755, 0, 0)
	wantErrno(t, "MkdirAt in a deleted directory", err, unix.EINVAL)
	_, _, _, err = dir.OpenCreateAt(e.ctx, "x", unix.O_RDWR, 0o644, 0, 0)
	wantErrno(t, "OpenCreateAt in a deleted directory", err, unix.EINVAL)
	status, inodes, err = dir.WalkMultiple(e.ctx, []string{"sub"})
	mustOK(t, "Walk from a deleted directory", err)
	if status != lisafs.WalkComponentDoesNotExist || len(inodes) != 0 {
		t.Errorf("Walk from a deleted directory: status %d, %d inodes", status, len(inodes))
	}
}

func TestServerSymlink(t *testing.T) {
	e := startServer(t, serverOpts{})
	const target = "/tmp/some/path"
	ino, err := e.root.SymlinkAt(e.ctx, "symlinkFile", target, 0, 0)
	mustOK(t, "SymlinkAt", err)
	link := e.fd(ino.ControlFD)
	defer e.closeFD(link)
	if fileType(ino.Stat.Mode) != unix.S_IFLNK || ino.Stat.Size != uint64(len(target)) {
		t.Errorf("symlink inode mode %#o size %d", ino.Stat.Mode, ino.Stat.Size)
	}
	got, err := link.ReadLinkAt(e.ctx)
	mustOK(t, "ReadLinkAt", err)
	if got != target {
		t.Errorf("ReadLinkAt = %q, want %q", got, target)
	}
	w := e.walk("symlinkFile")
	defer e.closeFD(w)
	if st := e.stat(w); st.Ino != ino.Stat.Ino || fileType(st.Mode) != unix.S_IFLNK {
		t.Errorf("walked symlink ino %d mode %#o", st.Ino, st.Mode)
	}
	if got, err := w.ReadLinkAt(e.ctx); err != nil || got != target {
		t.Errorf("ReadLinkAt via walked FD = %q, %v", got, err)
	}
}

func TestServerHardLink(t *testing.T) {
	e := startServer(t, serverOpts{})
	ctl, of, fIno := e.create(e.root, "tempFile", 0o644)
	defer e.closeFD(ctl)
	defer e.closeFD(of)
	lIno, err := e.root.LinkAt(e.ctx, ctl.ID(), "linkFile")
	mustOK(t, "LinkAt", err)
	link := e.fd(lIno.ControlFD)
	defer e.closeFD(link)
	if lIno.Stat.Ino != fIno.Stat.Ino || lIno.Stat.DevMajor != fIno.Stat.DevMajor || lIno.Stat.DevMinor != fIno.Stat.DevMinor {
		t.Errorf("link ino/dev %d %d:%d, file %d %d:%d", lIno.Stat.Ino, lIno.Stat.DevMajor, lIno.Stat.DevMinor, fIno.Stat.Ino, fIno.Stat.DevMajor, fIno.Stat.DevMinor)
	}
	if lIno.Stat.Nlink != 2 {
		t.Errorf("link nlink %d, want 2", lIno.Stat.Nlink)
	}
	if st := e.stat(ctl); st.Nlink != 2 {
		t.Errorf("file nlink %d, want 2", st.Nlink)
	}
	// Writes through one name show through the other.
	_, err = of.Write(e.ctx, []byte("shared"), 0)
	mustOK(t, "PWrite", err)
	if got := readAllHost(t, e.path("linkFile")); got != "shared" {
		t.Errorf("linkFile content %q", got)
	}
}

func TestServerWalk(t *testing.T) {
	e := startServer(t, serverOpts{})
	const n = 10
	cur := e.root
	var names []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("tmpdir-%d", i)
		ino, err := cur.MkdirAt(e.ctx, name, 0o755, 0, 0)
		mustOK(t, "MkdirAt "+name, err)
		cur = e.fd(ino.ControlFD)
		defer e.closeFD(cur)
		names = append(names, name)
	}
	_, err := cur.SymlinkAt(e.ctx, "link", "..", 0, 0)
	mustOK(t, "SymlinkAt", err)
	e.writeHost(filepath.Join(append(slices.Clone(names), "file")...), "x")

	t.Run("multi-component-stops-at-missing", func(t *testing.T) {
		path := append(slices.Clone(names), "a", "b", "c")
		status, inodes, err := e.root.WalkMultiple(e.ctx, path)
		mustOK(t, "Walk", err)
		var stats []lisafs.Statx
		for _, in := range inodes {
			stats = append(stats, in.Stat)
			e.closeFD(e.fd(in.ControlFD))
		}
		if status != lisafs.WalkComponentDoesNotExist || len(inodes) != n {
			t.Fatalf("Walk: status %d with %d inodes, want %d with %d", status, len(inodes), lisafs.WalkComponentDoesNotExist, n)
		}
		for i := range stats {
			sameFile(t, names[i], stats[i], hostStat(t, e.path(names[:i+1]...)))
		}
		// WalkStat with "" first adds the start directory's own stat.
		wstats, err := e.root.WalkStat(e.ctx, append([]string{""}, path...))
		mustOK(t, "WalkStat", err)
		want := append([]lisafs.Statx{e.stat(e.root)}, stats...)
		if len(wstats) != len(want) {
			t.Fatalf("WalkStat returned %d stats, want %d", len(wstats), len(want))
		}
		for i := range want {
			if wstats[i].Ino != want[i].Ino || wstats[i].Mode != want[i].Mode || wstats[i].Nlink != want[i].Nlink ||
				wstats[i].Mtime != want[i].Mtime || wstats[i].Ctime != want[i].Ctime {
				t.Errorf("WalkStat[%d] = %s, want %s", i, wstats[i].String(), want[i].String())
			}
		}
	})
	t.Run("stops-at-symlink", func(t *testing.T) {
		path := append(slices.Clone(names), "link", "tmpdir-9")
		status, inodes, err := e.root.WalkMultiple(e.ctx, path)
		mustOK(t, "Walk through symlink", err)
		for _, in := range inodes {
			e.closeFD(e.fd(in.ControlFD))
		}
		if status != lisafs.WalkComponentSymlink || len(inodes) != n+1 || fileType(inodes[n].Stat.Mode) != unix.S_IFLNK {
			t.Errorf("Walk through symlink: status %d with %d inodes, want %d with %d ending in the symlink", status, len(inodes), lisafs.WalkComponentSymlink, n+1)
		}
		stats, err := e.root.WalkStat(e.ctx, path)
		mustOK(t, "WalkStat through symlink", err)
		if len(stats) != n+1 || fileType(stats[n].Mode) != unix.S_IFLNK {
			t.Errorf("WalkStat through symlink returned %d stats, want %d ending in the symlink", len(stats), n+1)
		}
		// A symlink as the last component is returned, not followed.
		status, inodes, err = e.root.WalkMultiple(e.ctx, append(slices.Clone(names), "link"))
		mustOK(t, "Walk to symlink", err)
		for _, in := range inodes {
			e.closeFD(e.fd(in.ControlFD))
		}
		if status != lisafs.WalkSuccess || len(inodes) != n+1 {
			t.Errorf("Walk ending at a symlink: status %d with %d inodes", status, len(inodes))
		}
	})
	t.Run("through-a-file", func(t *testing.T) {
		_, _, err := e.root.WalkMultiple(e.ctx, append(slices.Clone(names), "file", "x"))
		wantErrno(t, "Walk through a regular file", err, unix.ENOTDIR)
		_, err = e.root.WalkStat(e.ctx, append(slices.Clone(names), "file", "x"))
		wantErrno(t, "WalkStat through a regular file", err, unix.ENOTDIR)
	})
	t.Run("self-stat-only", func(t *testing.T) {
		stats, err := cur.WalkStat(e.ctx, []string{""})
		mustOK(t, `WalkStat [""]`, err)
		if len(stats) != 1 || stats[0].Ino != e.stat(cur).Ino {
			t.Errorf(`WalkStat [""] returned %d stats`, len(stats))
		}
	})
}

func TestServerRename(t *testing.T) {
	e := startServer(t, serverOpts{})
	t.Run("file-across-directories", func(t *testing.T) {
		ctl, of, ino := e.create(e.root, "tempFile", 0o644)
		defer e.closeFD(ctl)
		defer e.closeFD(of)
		dIno, err := e.root.MkdirAt(e.ctx, "tempDir", 0o755, 0, 0)
		mustOK(t, "MkdirAt", err)
		dir := e.fd(dIno.ControlFD)
		defer e.closeFD(dir)

		mustOK(t, "RenameAt", e.root.RenameAt(e.ctx, "tempFile", dir.ID(), "movedFile", 0))
		stats, err := e.root.WalkStat(e.ctx, []string{"tempDir", "movedFile"})
		mustOK(t, "WalkStat new path", err)
		if len(stats) != 2 || stats[1].Ino != ino.Stat.Ino {
			t.Errorf("WalkStat tempDir/movedFile: %d stats", len(stats))
		}
		moved := e.walk("tempDir", "movedFile")
		e.closeFD(moved)
		_, err = e.root.Walk(e.ctx, "tempFile")
		wantErrno(t, "Walk old name", err, unix.ENOENT)
		// FDs opened before the rename keep working.
		if st := e.stat(ctl); st.Ino != ino.Stat.Ino || st.Nlink != 1 {
			t.Errorf("control FD after rename: ino %d nlink %d", st.Ino, st.Nlink)
		}
		_, err = of.Write(e.ctx, []byte("after"), 0)
		mustOK(t, "PWrite after rename", err)
		if got := readAllHost(t, e.path("tempDir", "movedFile")); got != "after" {
			t.Errorf("moved file content %q", got)
		}
	})
	t.Run("renamed-directory-FD-follows", func(t *testing.T) {
		sIno, err := e.root.MkdirAt(e.ctx, "src", 0o755, 0, 0)
		mustOK(t, "MkdirAt src", err)
		src := e.fd(sIno.ControlFD)
		defer e.closeFD(src)
		mustOK(t, "RenameAt src -> dst", e.root.RenameAt(e.ctx, "src", e.root.ID(), "dst", 0))
		ctl, of, _ := e.create(src, "inner", 0o644)
		e.closeFD(of)
		e.closeFD(ctl)
		hostStat(t, e.path("dst", "inner"))
		hostMissing(t, e.path("src"))
		in := e.walk("dst", "inner")
		e.closeFD(in)
	})
	t.Run("replace-existing", func(t *testing.T) {
		e.writeHost("x", "X")
		e.writeHost("y", "Y")
		y := e.walk("y")
		defer e.closeFD(y)
		mustOK(t, "RenameAt x -> y", e.root.RenameAt(e.ctx, "x", e.root.ID(), "y", 0))
		if got := readAllHost(t, e.path("y")); got != "X" {
			t.Errorf("y = %q, want X", got)
		}
		hostMissing(t, e.path("x"))
		if st := e.stat(y); st.Nlink != 0 {
			t.Errorf("replaced file nlink %d, want 0", st.Nlink)
		}
		// The replaced node is deleted.
		_, err := y.GetXattr(e.ctx, "user.k", 0)
		wantErrno(t, "FGetXattr on the replaced file", err, unix.EINVAL)
	})
	t.Run("RenameAt2-NOREPLACE", func(t *testing.T) {
		e.writeHost("p", "P")
		e.writeHost("q", "Q")
		wantErrno(t, "RenameAt2(p -> q, NOREPLACE)", e.root.RenameAt(e.ctx, "p", e.root.ID(), "q", unix.RENAME_NOREPLACE), unix.EEXIST)
		if p, q := readAllHost(t, e.path("p")), readAllHost(t, e.path("q")); p != "P" || q != "Q" {
			t.Errorf("after refused rename p=%q q=%q", p, q)
		}
	})
	t.Run("RenameAt2-EXCHANGE-directories", func(t *testing.T) {
		e.mkdirHost("d1")
		e.writeHost("d1/in1", "1")
		e.mkdirHost("d2")
		e.writeHost("d2/in2", "2")
		d1 := e.walk("d1")
		defer e.closeFD(d1)
		d2 := e.walk("d2")
		defer e.closeFD(d2)
		d1Ino := e.stat(d1).Ino
		mustOK(t, "RenameAt2(d1 <-> d2, EXCHANGE)", e.root.RenameAt(e.ctx, "d1", e.root.ID(), "d2", unix.RENAME_EXCHANGE))
		hostStat(t, e.path("d1", "in2"))
		hostStat(t, e.path("d2", "in1"))
		// The held FD follows its directory, now named d2.
		in1 := e.walkFrom(d1, "in1")
		e.closeFD(in1)
		in2 := e.walk("d1", "in2")
		e.closeFD(in2)
		stats, err := e.root.WalkStat(e.ctx, []string{"d2"})
		mustOK(t, "WalkStat d2", err)
		if len(stats) != 1 || stats[0].Ino != d1Ino {
			t.Errorf("d2 is not the old d1 after the exchange")
		}
		// Creating through the held FD lands in the new location.
		ctl, of, _ := e.create(d1, "made", 0o644)
		e.closeFD(of)
		e.closeFD(ctl)
		hostStat(t, e.path("d2", "made"))
		// The displaced directory is moved, not deleted.
		ctl, of, _ = e.create(d2, "made2", 0o644)
		e.closeFD(of)
		e.closeFD(ctl)
		hostStat(t, e.path("d1", "made2"))
	})
}

func TestServerMknod(t *testing.T) {
	e := startServer(t, serverOpts{})
	ino, err := e.root.MknodAt(e.ctx, "regular-file", unix.S_IFREG|0o777, 1234, 5678, 0, 0)
	mustOK(t, "MknodAt regular", err)
	f := e.fd(ino.ControlFD)
	defer e.closeFD(f)
	if ino.Stat.Mode != unix.S_IFREG|0o777 || ino.Stat.UID != 1234 || ino.Stat.GID != 5678 {
		t.Errorf("mknod inode mode %#o owner %d:%d, want %#o 1234:5678", ino.Stat.Mode, ino.Stat.UID, ino.Stat.GID, unix.S_IFREG|0o777)
	}
	if st := e.stat(f); st.Mode != ino.Stat.Mode || st.UID != ino.Stat.UID || st.GID != ino.Stat.GID {
		t.Errorf("FStat mode %#o owner %d:%d disagrees with the MknodAt inode", st.Mode, st.UID, st.GID)
	}
	fifo, err := e.root.MknodAt(e.ctx, "fifo", unix.S_IFIFO|0o666, 0, 0, 0, 0)
	e.wantMknodRefused(t, "MknodAt FIFO", "fifo", unix.S_IFIFO|0o666, 0, 0, fifo, err)
}

func TestServerUDS(t *testing.T) {
	skipOnMemory(t, "it has no host Unix sockets (BindAt and Connect answer ENOSYS)")
	e := startServer(t, serverOpts{hostUDS: true})
	t.Run("bind-listen-accept", func(t *testing.T) {
		ino, bsock, err := e.root.BindAt(e.ctx, linux.SOCK_STREAM, "sock", 0o777, 0, 0)
		mustOK(t, "BindAt", err)
		ctl := e.fd(ino.ControlFD)
		defer e.closeFD(ctl)
		defer bsock.Close(e.ctx)
		if fileType(ino.Stat.Mode) != unix.S_IFSOCK {
			t.Errorf("BindAt inode mode %#o", ino.Stat.Mode)
		}
		// The control FD describes the socket file BindAt reported.
		if st := e.stat(ctl); st.Ino != ino.Stat.Ino || st.Mode != ino.Stat.Mode || st.UID != ino.Stat.UID || st.GID != ino.Stat.GID {
			t.Errorf("FStat of the BindAt control FD: %s, BindAt inode: %s", st.String(), ino.Stat.String())
		}
		sameFile(t, "socket file", ino.Stat, hostStat(t, e.path("sock")))
		mustOK(t, "Listen", bsock.Listen(e.ctx, 16))
		for i := 0; i < 2; i++ {
			c, err := net.DialTimeout("unix", e.path("sock"), 5*time.Second)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			defer c.Close()
			pollIn(t, int(bsock.NotificationFD()))
			fd, err := bsock.Accept(e.ctx)
			mustOK(t, fmt.Sprintf("Accept %d", i), err)
			e.ownHostFD(fd)
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
				t.Errorf("accepted FD is not a socket (mode %#o, %v)", st.Mode, err)
			}
			if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
				t.Errorf("accepted FD flags %#x (%v): want O_NONBLOCK", fl, err)
			}
			exchangeBytes(t, fd, c)
		}
		_, err = bsock.Accept(e.ctx)
		wantErrno(t, "Accept with nothing pending", err, unix.EAGAIN)
	})
	t.Run("accept-reports-no-peer-address", func(t *testing.T) {
		// The client API drops AcceptResp; send Accept by hand to see it.
		// FDIDs are allocated in order: BindAt returns the control FD N
		// and the bound-socket FD N+1.
		ino, bsock, err := e.root.BindAt(e.ctx, linux.SOCK_STREAM, "sock2", 0o777, 0, 0)
		mustOK(t, "BindAt", err)
		defer e.closeFD(e.fd(ino.ControlFD))
		defer bsock.Close(e.ctx)
		mustOK(t, "Listen", bsock.Listen(e.ctx, 4))
		csock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(csock)
		// Bind the connecting socket to a name, which the server must not
		// reveal.
		if err := unix.Bind(csock, &unix.SockaddrUnix{Name: filepath.Join(t.TempDir(), "peer")}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(csock, &unix.SockaddrUnix{Name: e.path("sock2")}); err != nil {
			t.Fatalf("connect: %v", err)
		}
		var resp lisafs.AcceptResp
		fds := []int{-1}
		err = e.raw(lisafs.Accept, &lisafs.AcceptReq{FD: ino.ControlFD + 1}, &resp, fds)
		e.ownHostFD(fds[0])
		mustOK(t, "raw Accept on FDID control+1", err)
		if fds[0] < 0 {
			t.Errorf("Accept donated no FD")
		}
		if resp.PeerAddr != "" {
			t.Errorf("Accept peer address %q, want empty (host paths must not leak)", resp.PeerAddr)
		}
	})
	t.Run("connect-to-Go-stream-socket", func(t *testing.T) {
		l := listenUnix(t, e.path("gostream"))
		s := e.walk("gostream")
		defer e.closeFD(s)
		fd, err := s.Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		mustOK(t, "Connect", err)
		e.ownHostFD(fd)
		exchangeBytes(t, fd, acceptUnix(t, l))
		_, err = s.Connect(e.ctx, linux.SOCK_DGRAM, lisafs.NoUID, lisafs.NoGID)
		wantErrno(t, "Connect(SOCK_DGRAM) to a stream socket", err, unix.EPROTOTYPE)
	})
	t.Run("connect-to-Go-datagram-socket", func(t *testing.T) {
		pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: e.path("godgram"), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		s := e.walk("godgram")
		defer e.closeFD(s)
		fd, err := s.Connect(e.ctx, linux.SOCK_DGRAM, lisafs.NoUID, lisafs.NoGID)
		mustOK(t, "Connect(SOCK_DGRAM)", err)
		e.ownHostFD(fd)
		writeAll(t, fd, "datagram")
		if err := pc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, _, err := pc.ReadFromUnix(buf)
		if err != nil || string(buf[:n]) != "datagram" {
			t.Errorf("Go datagram socket read %q, %v", buf[:n], err)
		}
	})
}

func TestServerGetdents(t *testing.T) {
	e := startServer(t, serverOpts{})
	dIno, err := e.root.MkdirAt(e.ctx, "dir", 0o755, 0, 0)
	mustOK(t, "MkdirAt", err)
	dir := e.fd(dIno.ControlFD)
	defer e.closeFD(dir)
	const n = 200
	want := map[string]uint64{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("file-%03d", i)
		e.writeHost(filepath.Join("dir", name), "")
		want[name] = hostStat(t, e.path("dir", name)).Ino
	}
	od, _ := e.open(dir, unix.O_RDONLY)
	defer e.closeFD(od)

	readAll := func(t *testing.T, first []lisafs.Dirent64) (map[string]bool, int) {
		t.Helper()
		seen := map[string]bool{}
		calls := 0
		add := func(ents []lisafs.Dirent64) {
			for _, de := range ents {
				name := string(de.Name)
				if seen[name] {
					t.Errorf("entry %q returned twice", name)
				}
				seen[name] = true
				if name == "." || name == ".." {
					t.Errorf("entry %q returned; the host gofer skips . and ..", name)
					continue
				}
				if ino, ok := want[name]; !ok {
					t.Errorf("unexpected entry %q", name)
				} else if uint64(de.Ino) != ino || de.Type != unix.DT_REG {
					t.Errorf("entry %q ino %d type %d, want %d DT_REG", name, de.Ino, de.Type, ino)
				}
			}
		}
		add(first)
		for {
			calls++
			if calls > 10*n {
				t.Fatalf("Getdents64 never reached the end")
			}
			ents, err := od.Getdents64(e.ctx, 1024)
			mustOK(t, "Getdents64", err)
			if len(ents) == 0 {
				return seen, calls
			}
			add(ents)
		}
	}

	first, err := od.Getdents64(e.ctx, 1024)
	mustOK(t, "Getdents64 first", err)
	if len(first) == 0 || len(first) >= n {
		t.Fatalf("first Getdents64(1024) returned %d entries; want a partial batch", len(first))
	}
	seen, calls := readAll(t, first)
	if len(seen) != n {
		t.Errorf("read %d distinct entries, want %d", len(seen), n)
	}
	if calls < 3 {
		t.Errorf("only %d Getdents64 calls were needed; the budget is not honoured", calls+1)
	}

	// A negative count seeks to the start first.
	again, err := od.Getdents64(e.ctx, -1024)
	mustOK(t, "Getdents64 with seek to 0", err)
	if len(again) != len(first) {
		t.Errorf("re-read after seek returned %d entries, first read %d", len(again), len(first))
	} else {
		for i := range first {
			if first[i].Name != again[i].Name || first[i].Ino != again[i].Ino {
				t.Errorf("re-read entry %d = %q, first read %q", i, again[i].Name, first[i].Name)
			}
		}
	}
	seen2, _ := readAll(t, again)
	if len(seen2) != n {
		t.Errorf("second pass read %d distinct entries, want %d", len(seen2), n)
	}
}

func TestServerReadOnly(t *testing.T) {
	e := startServer(t, serverOpts{readonly: true, hostUDS: true})
	e.writeHost("f", "data")
	e.mkdirHost("d")
	e.writeHost("d/g", "g")
	e.symlinkHost("f", "l")
	hostSetXattr(t, e.path("f"), "user.k", "v")
	before := hostStat(t, e.path("f"))

	f := e.walk("f")
	defer e.closeFD(f)
	d := e.walk("d")
	defer e.closeFD(d)
	ro, hostFD := e.open(f, unix.O_RDONLY)
	defer e.closeFD(ro)

	t.Run("mutations-EROFS", func(t *testing.T) {
		check := func(what string, err error) {
			t.Helper()
			wantErrno(t, what, err, unix.EROFS)
		}
		_, _, err := f.SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_MODE, Mode: 0o600})
		check("SetStat", err)
		for _, fl := range []uint32{unix.O_WRONLY, unix.O_RDWR, unix.O_RDONLY | unix.O_TRUNC} {
			_, _, err = f.OpenAt(e.ctx, fl)
			check(fmt.Sprintf("OpenAt(%#x)", fl), err)
		}
		_, _, _, err = e.root.OpenCreateAt(e.ctx, "new", unix.O_RDWR, 0o644, 0, 0)
		check("OpenCreateAt", err)
		_, err = ro.Write(e.ctx, []byte("x"), 0)
		check("PWrite", err)
		_, err = e.root.MkdirAt(e.ctx, "nd", 0o755, 0, 0)
		check("MkdirAt", err)
		_, err = e.root.MknodAt(e.ctx, "nn", unix.S_IFREG|0o644, 0, 0, 0, 0)
		check("MknodAt", err)
		_, err = e.root.SymlinkAt(e.ctx, "ns", "f", 0, 0)
		check("SymlinkAt", err)
		_, err = e.root.LinkAt(e.ctx, f.ID(), "nl")
		check("LinkAt", err)
		check("FAllocate", ro.Allocate(e.ctx, 0, 0, 4096))
		check("UnlinkAt", e.root.UnlinkAt(e.ctx, "f", 0))
		check("RenameAt", e.root.RenameAt(e.ctx, "f", d.ID(), "moved", 0))
		check("RenameAt2", e.root.RenameAt(e.ctx, "f", d.ID(), "moved", unix.RENAME_NOREPLACE))
		check("FSetXattr", f.SetXattr(e.ctx, "user.k", "w", 0))
		check("FRemoveXattr", f.RemoveXattr(e.ctx, "user.k"))
		_, _, err = e.root.BindAt(e.ctx, linux.SOCK_STREAM, "sock", 0o777, 0, 0)
		check("BindAt", err)

		after := hostStat(t, e.path("f"))
		if after.Mode != before.Mode || after.Size != before.Size || after.Mtim != before.Mtim || after.Nlink != 1 {
			t.Errorf("host file changed on a read-only server")
		}
		if got := readAllHost(t, e.path("f")); got != "data" {
			t.Errorf("host content %q", got)
		}
		for _, name := range []string{"new", "nd", "nn", "ns", "nl", "sock", "d/moved"} {
			hostMissing(t, e.path(name))
		}
		if v, err := hostXattr(t, e.path("f"), "user.k"); err != nil || v != "v" {
			t.Errorf("xattr changed: %q, %v", v, err)
		}
	})
	t.Run("reads-work", func(t *testing.T) {
		sameFile(t, "f", e.stat(f), hostStat(t, e.path("f")))
		stats, err := e.root.WalkStat(e.ctx, []string{"", "d", "g"})
		mustOK(t, "WalkStat", err)
		if len(stats) != 3 {
			t.Errorf("WalkStat returned %d stats", len(stats))
		}
		g := e.walk("d", "g")
		e.closeFD(g)
		buf := make([]byte, 8)
		n, err := ro.Read(e.ctx, buf, 0)
		if err != nil || string(buf[:n]) != "data" {
			t.Errorf("PRead = %q, %v", buf[:n], err)
		}
		if e.donated(t, "OpenAt(O_RDONLY)", hostFD) {
			if n, err := unix.Pread(hostFD, buf, 0); err != nil || string(buf[:n]) != "data" {
				t.Errorf("pread on donated FD = %q, %v", buf[:n], err)
			}
			_, err := unix.Pwrite(hostFD, []byte("x"), 0)
			wantErrno(t, "pwrite on the donated FD of a read-only server", err, unix.EBADF)
		}
		mustOK(t, "FSync", ro.Sync(e.ctx))
		l := e.walk("l")
		defer e.closeFD(l)
		if target, err := l.ReadLinkAt(e.ctx); err != nil || target != "f" {
			t.Errorf("ReadLinkAt = %q, %v", target, err)
		}
		od, _ := e.open(d, unix.O_RDONLY)
		defer e.closeFD(od)
		ents, err := od.Getdents64(e.ctx, 65536)
		mustOK(t, "Getdents64", err)
		if len(ents) != 1 || ents[0].Name != "g" {
			t.Errorf("Getdents64 = %v", ents)
		}
		if v, err := f.GetXattr(e.ctx, "user.k", 0); err != nil || v != "v" {
			t.Errorf("FGetXattr = %q, %v", v, err)
		}
		if names, err := f.ListXattr(e.ctx, 0); err != nil || !slices.Equal(names, []string{"user.k"}) {
			t.Errorf("FListXattr = %q, %v", names, err)
		}
		var sfs lisafs.StatFS
		mustOK(t, "FStatFS", e.root.StatFSTo(e.ctx, &sfs))
	})
	t.Run("connect-host-socket", func(t *testing.T) {
		skipOnMemory(t, "it has no host Unix sockets to connect to")
		// Connecting to a host socket does not modify the tree.
		gl := listenUnix(t, e.path("gsock"))
		s := e.walk("gsock")
		defer e.closeFD(s)
		fd, err := s.Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		mustOK(t, "Connect on a read-only server", err)
		e.ownHostFD(fd)
		exchangeBytes(t, fd, acceptUnix(t, gl))
	})
}

func TestServerConfinement(t *testing.T) {
	e := startServer(t, serverOpts{hostUDS: true})
	outside := t.TempDir()
	sentinel := filepath.Join(outside, "sentinel")
	if err := os.WriteFile(sentinel, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(outside, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "dir", "inner"), []byte("inner"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(sentinel, "user.orig", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	sBefore := hostStat(t, sentinel)
	rel, err := filepath.Rel(e.dir, sentinel)
	if err != nil {
		t.Fatal(err)
	}
	e.symlinkHost(sentinel, "esc")
	e.symlinkHost(rel, "relesc")
	e.symlinkHost(filepath.Join(outside, "dir"), "escdir")

	t.Run("walk-returns-the-symlink", func(t *testing.T) {
		for _, name := range []string{"esc", "relesc"} {
			status, inodes, err := e.root.WalkMultiple(e.ctx, []string{name})
			mustOK(t, "Walk "+name, err)
			for _, in := range inodes {
				e.closeFD(e.fd(in.ControlFD))
			}
			if status != lisafs.WalkSuccess || len(inodes) != 1 {
				t.Fatalf("Walk %s: status %d, %d inodes", name, status, len(inodes))
			}
			sameFile(t, name, inodes[0].Stat, hostStat(t, e.path(name)))
			if inodes[0].Stat.Ino == sBefore.Ino {
				t.Errorf("Walk %s returned the sentinel's inode", name)
			}
		}
		status, inodes, err := e.root.WalkMultiple(e.ctx, []string{"escdir", "inner"})
		mustOK(t, "Walk escdir/inner", err)
		for _, in := range inodes {
			e.closeFD(e.fd(in.ControlFD))
		}
		if status != lisafs.WalkComponentSymlink || len(inodes) != 1 || fileType(inodes[0].Stat.Mode) != unix.S_IFLNK {
			t.Errorf("Walk escdir/inner: status %d, %d inodes; want status symlink with only the symlink", status, len(inodes))
		}
		stats, err := e.root.WalkStat(e.ctx, []string{"escdir", "inner"})
		mustOK(t, "WalkStat escdir/inner", err)
		if len(stats) != 1 || fileType(stats[0].Mode) != unix.S_IFLNK {
			t.Errorf("WalkStat escdir/inner returned %d stats; want only the symlink's", len(stats))
		}
	})
	t.Run("symlink-FD-does-not-reach-the-target", func(t *testing.T) {
		esc := e.walk("esc")
		defer e.closeFD(esc)
		for _, fl := range []uint32{unix.O_RDONLY, unix.O_RDWR, unix.O_WRONLY | unix.O_TRUNC} {
			_, _, err := esc.OpenAt(e.ctx, fl)
			wantErrno(t, fmt.Sprintf("OpenAt(symlink, %#x)", fl), err, unix.EINVAL)
		}
		target, err := esc.ReadLinkAt(e.ctx)
		mustOK(t, "ReadLinkAt esc", err)
		if target != sentinel {
			t.Errorf("ReadLinkAt esc = %q, want %q", target, sentinel)
		}
		relesc := e.walk("relesc")
		defer e.closeFD(relesc)
		if got, err := relesc.ReadLinkAt(e.ctx); err != nil || got != rel {
			t.Errorf("ReadLinkAt relesc = %q, %v; want %q", got, err, rel)
		}
		// SetStat acts on the link, never on the target.
		mask, _, err := esc.SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_MODE | unix.STATX_SIZE | unix.STATX_UID, Mode: 0o777, Size: 0, UID: 4242, GID: uint32(lisafs.NoGID)})
		mustOK(t, "SetStat(symlink)", err)
		if mask&(unix.STATX_MODE|unix.STATX_SIZE) != unix.STATX_MODE|unix.STATX_SIZE {
			t.Errorf("SetStat(symlink, mode|size) failure mask %#x; mode and size cannot apply to a symlink", mask)
		}
		if hs := hostStat(t, e.path("esc")); hs.Uid != 4242 {
			t.Errorf("symlink owner %d, want 4242 (chown applies to the link itself)", hs.Uid)
		}
		_ = esc.SetXattr(e.ctx, "user.planted", "x", 0)
		_ = esc.RemoveXattr(e.ctx, "user.orig")
		var sfs lisafs.StatFS
		_ = esc.StatFSTo(e.ctx, &sfs)
		_, err = esc.Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		wantErrno(t, "Connect(symlink)", err, unix.ENOTSOCK)
		// A hard link of the symlink links the symlink itself.
		lIno, err := e.root.LinkAt(e.ctx, esc.ID(), "hl")
		mustOK(t, "LinkAt(symlink)", err)
		e.closeFD(e.fd(lIno.ControlFD))
		if hs := hostStat(t, e.path("hl")); hs.Mode&unix.S_IFMT != unix.S_IFLNK || hs.Ino == sBefore.Ino {
			t.Errorf("hard link of the symlink: mode %#o ino %d", hs.Mode, hs.Ino)
		}
	})
	t.Run("symlink-to-dir-is-not-a-directory", func(t *testing.T) {
		escdir := e.walk("escdir")
		defer e.closeFD(escdir)
		_, _, _, err := escdir.OpenCreateAt(e.ctx, "planted", unix.O_RDWR, 0o644, 0, 0)
		wantErrno(t, "OpenCreateAt through a symlink", err, unix.ENOTDIR)
		_, err = escdir.MkdirAt(e.ctx, "planted", 0o755, 0, 0)
		wantErrno(t, "MkdirAt through a symlink", err, unix.ENOTDIR)
		_, err = escdir.SymlinkAt(e.ctx, "planted", "x", 0, 0)
		wantErrno(t, "SymlinkAt through a symlink", err, unix.ENOTDIR)
		wantErrno(t, "UnlinkAt through a symlink", escdir.UnlinkAt(e.ctx, "inner", 0), unix.ENOTDIR)
		wantErrno(t, "RenameAt out of a symlink", escdir.RenameAt(e.ctx, "inner", e.root.ID(), "stolen", 0), unix.ENOTDIR)
		wantErrno(t, "RenameAt into a symlink", e.root.RenameAt(e.ctx, "esc", escdir.ID(), "planted", 0), unix.ENOTDIR)
		_, _, err = escdir.BindAt(e.ctx, linux.SOCK_STREAM, "planted", 0o777, 0, 0)
		wantErrno(t, "BindAt through a symlink", err, unix.ENOTDIR)
		_, _, err = escdir.WalkMultiple(e.ctx, []string{"inner"})
		wantErrno(t, "Walk from a symlink FD", err, unix.ENOTDIR)
		_, _, err = e.root.WalkMultiple(e.ctx, []string{".."})
		wantErrno(t, "Walk ..", err, unix.EINVAL)
	})
	t.Run("outside-untouched", func(t *testing.T) {
		sAfter := hostStat(t, sentinel)
		if sAfter.Mode != sBefore.Mode || sAfter.Uid != sBefore.Uid || sAfter.Size != sBefore.Size || sAfter.Nlink != 1 || sAfter.Mtim != sBefore.Mtim || sAfter.Ctim != sBefore.Ctim {
			t.Errorf("sentinel changed: before %+v after %+v", sBefore, sAfter)
		}
		if got := readAllHost(t, sentinel); got != "secret" {
			t.Errorf("sentinel content %q", got)
		}
		if v, err := hostXattr(t, sentinel, "user.orig"); err != nil || v != "1" {
			t.Errorf("sentinel xattr user.orig = %q, %v", v, err)
		}
		if _, err := hostXattr(t, sentinel, "user.planted"); err != unix.ENODATA {
			t.Errorf("sentinel xattr user.planted: %v, want ENODATA", err)
		}
		ents, err := os.ReadDir(filepath.Join(outside, "dir"))
		if err != nil || len(ents) != 1 || ents[0].Name() != "inner" {
			t.Errorf("outside dir entries changed: %v, %v", ents, err)
		}
		ents, err = os.ReadDir(outside)
		if err != nil || len(ents) != 2 {
			t.Errorf("outside entries changed: %v, %v", ents, err)
		}
		hostMissing(t, e.path("stolen"))
	})
}

// TestServerDeletedNodes checks what still works on FDs whose file was
// unlinked: the host gofer's options allow SetStat, FAllocate and OpenAt on
// deleted nodes; everything else that checks for deletion refuses with
// EINVAL.
func TestServerDeletedNodes(t *testing.T) {
	e := startServer(t, serverOpts{hostUDS: true})
	e.writeHost("f", "data")
	hostSetXattr(t, e.path("f"), "user.k", "v")
	e.mkdirHost("d")
	e.symlinkHost("f", "l")
	e.socketNode("s")
	f := e.walk("f")
	defer e.closeFD(f)
	d := e.walk("d")
	defer e.closeFD(d)
	l := e.walk("l")
	defer e.closeFD(l)
	s := e.walk("s")
	defer e.closeFD(s)
	od, _ := e.open(d, unix.O_RDONLY)
	defer e.closeFD(od)

	for _, name := range []string{"f", "l", "s"} {
		mustOK(t, "UnlinkAt "+name, e.root.UnlinkAt(e.ctx, name, 0))
	}
	mustOK(t, "UnlinkAt d", e.root.UnlinkAt(e.ctx, "d", unix.AT_REMOVEDIR))

	t.Run("allowed", func(t *testing.T) {
		if st := e.stat(f); st.Nlink != 0 || st.Size != 4 {
			t.Errorf("FStat of the deleted file: nlink %d size %d", st.Nlink, st.Size)
		}
		mask, ferr, err := f.SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_SIZE | unix.STATX_MODE, Size: 2, Mode: 0o600})
		mustOK(t, "SetStat on a deleted file", err)
		if mask != 0 {
			t.Errorf("SetStat on a deleted file: failure mask %#x (%v)", mask, ferr)
		}
		rw, _ := e.open(f, unix.O_RDWR)
		defer e.closeFD(rw)
		mustOK(t, "FAllocate on a deleted file", rw.Allocate(e.ctx, 0, 0, 100))
		if st := e.stat(rw); st.Size != 100 || st.Mode != unix.S_IFREG|0o600 {
			t.Errorf("deleted file size %d mode %#o, want 100 %#o", st.Size, st.Mode, unix.S_IFREG|0o600)
		}
		buf := make([]byte, 2)
		if n, err := rw.Read(e.ctx, buf, 0); err != nil || string(buf[:n]) != "da" {
			t.Errorf("PRead of the deleted file: %q, %v", buf[:n], err)
		}
		var sfs lisafs.StatFS
		mustOK(t, "FStatFS on a deleted file", f.StatFSTo(e.ctx, &sfs))
	})
	t.Run("refused-EINVAL", func(t *testing.T) {
		_, err := f.GetXattr(e.ctx, "user.k", 0)
		wantErrno(t, "FGetXattr on a deleted file", err, unix.EINVAL)
		wantErrno(t, "FSetXattr on a deleted file", f.SetXattr(e.ctx, "user.k", "w", 0), unix.EINVAL)
		_, err = f.ListXattr(e.ctx, 0)
		wantErrno(t, "FListXattr on a deleted file", err, unix.EINVAL)
		wantErrno(t, "FRemoveXattr on a deleted file", f.RemoveXattr(e.ctx, "user.k"), unix.EINVAL)
		_, err = e.root.LinkAt(e.ctx, f.ID(), "relinked")
		wantErrno(t, "LinkAt of a deleted file", err, unix.EINVAL)
		hostMissing(t, e.path("relinked"))
		_, err = l.ReadLinkAt(e.ctx)
		wantErrno(t, "ReadLinkAt on a deleted symlink", err, unix.EINVAL)
		_, err = s.Connect(e.ctx, linux.SOCK_STREAM, lisafs.NoUID, lisafs.NoGID)
		wantErrno(t, "Connect on a deleted socket", err, unix.EINVAL)
		_, err = od.Getdents64(e.ctx, 65536)
		wantErrno(t, "Getdents64 on a deleted directory", err, unix.EINVAL)
		_, err = d.MkdirAt(e.ctx, "x", 0o755, 0, 0)
		wantErrno(t, "MkdirAt in a deleted directory", err, unix.EINVAL)
		_, err = d.SymlinkAt(e.ctx, "x", "y", 0, 0)
		wantErrno(t, "SymlinkAt in a deleted directory", err, unix.EINVAL)
		_, err = d.MknodAt(e.ctx, "x", unix.S_IFREG|0o644, 0, 0, 0, 0)
		wantErrno(t, "MknodAt in a deleted directory", err, unix.EINVAL)
	})
}
