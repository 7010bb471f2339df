// Package interop produces byte-compatibility test vectors for the LISAFS
// wire protocol. Every byte it emits is produced by gVisor's own Go message
// types (gvisor.dev/gvisor/pkg/lisafs) and their MarshalUnsafe/MarshalBytes
// methods, so the Rust and TypeScript codecs in this repository can be checked
// against the reference implementation without running Go.
package interop

import (
	"fmt"
	"reflect"
	"unsafe"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/marshal/primitive"
)

// GVisorVersion is the pinned gVisor module version the vectors come from.
// It must match the requirement in go.mod.
const GVisorVersion = "v0.0.0-20260905035102-160fafc42237"

// Source is the provenance string written at the top of messages.json.
const Source = "gvisor.dev/gvisor " + GVisorVersion + " pkg/lisafs"

// Direction tells whether a payload travels client->server or server->client.
type Direction string

const (
	// Request payloads are sent by the client.
	Request Direction = "request"
	// Response payloads are sent by the server.
	Response Direction = "response"
)

// Message is the method set shared by every gVisor lisafs message type. gVisor
// deliberately has no such interface (to keep messages off the heap); tests
// are not performance sensitive, so we define one here.
type Message interface {
	SizeBytes() int
	MarshalBytes(dst []byte) []byte
}

// unsafeMarshaller is implemented by the go_marshal generated ("+marshal")
// types, which gVisor's client and server often marshal with MarshalUnsafe.
//
// Beware: OpenCreateAtReq, MkdirAtReq, MknodAtReq and BindAtReq also satisfy
// this interface, through the MarshalUnsafe method promoted from their
// embedded createCommon; calling it writes only the 24-byte createCommon
// prefix. That is why Marshal always uses MarshalBytes.
type unsafeMarshaller interface {
	MarshalUnsafe(dst []byte) []byte
}

// Vector is one test vector: a gVisor message value and its identity.
type Vector struct {
	// Name is unique and has the form "<Type>/<case>".
	Name string
	// MID is the LISAFS message ID whose payload Msg is.
	MID lisafs.MID
	// Dir is the direction the payload travels in.
	Dir Direction
	// Msg is a pointer to a gVisor lisafs message value.
	Msg Message
}

// TypeName returns the name of the gVisor Go type of v.Msg.
func (v *Vector) TypeName() string {
	return TypeName(v.Msg)
}

// TypeName returns the name of the gVisor Go type that m points to.
func TypeName(m Message) string {
	t := reflect.TypeOf(m)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// Marshal serializes m with gVisor's own MarshalBytes method (hand-written
// for the variable-length messages, go_marshal generated for the fixed-size
// ones) into a zeroed buffer of m.SizeBytes() bytes. It panics if the
// marshaller does not fill exactly that many bytes. The tests check that
// MarshalUnsafe, where the type really has its own, gives identical bytes.
func Marshal(m Message) []byte {
	buf := make([]byte, m.SizeBytes())
	if rest := m.MarshalBytes(buf); len(rest) != 0 {
		panic(fmt.Sprintf("%s: marshaller left %d of %d bytes unwritten", TypeName(m), len(rest), len(buf)))
	}
	return buf
}

// setUnexported stores val into the unexported field name of the struct that
// ptr points to.
//
// A few gVisor message types keep their wire fields unexported because only
// gVisor itself ever builds them (ErrorResp.errno, ChannelResp.dataOffset and
// ChannelResp.dataLength). There is no constructor for them outside package
// lisafs, but the vectors must still be marshalled by gVisor's generated
// marshalling code rather than by hand. reflect refuses to Set unexported
// fields, so we build an addressable alias of the field through its address
// (reflect.NewAt + unsafe) and set that. This only writes the Go value; the
// wire bytes still come from gVisor's MarshalUnsafe.
func setUnexported(ptr any, name string, val any) {
	s := reflect.ValueOf(ptr).Elem()
	f := s.FieldByName(name)
	if !f.IsValid() {
		panic(fmt.Sprintf("%s has no field %q", s.Type(), name))
	}
	v := reflect.ValueOf(val)
	if v.Type() != f.Type() {
		panic(fmt.Sprintf("%s.%s has type %s, got %s", s.Type(), name, f.Type(), v.Type()))
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(v)
}

// errorResp builds an ErrorResp carrying errno (see setUnexported).
func errorResp(errno uint32) *lisafs.ErrorResp {
	var e lisafs.ErrorResp
	setUnexported(&e, "errno", errno)
	return &e
}

// channelResp builds a ChannelResp (see setUnexported).
func channelResp(offset int64, length uint64) *lisafs.ChannelResp {
	var c lisafs.ChannelResp
	setUnexported(&c, "dataOffset", offset)
	setUnexported(&c, "dataLength", length)
	return &c
}

// createArgs are the fields of gVisor's unexported embedded struct
// createCommon (shared by OpenCreateAtReq, MkdirAtReq, MknodAtReq and
// BindAtReq). The embedded struct's type is unexported, so it cannot appear in
// a composite literal, but its fields are exported and promoted, so they are
// assigned one by one, exactly like gVisor's own client does.
type createArgs struct {
	DirFD lisafs.FDID
	UID   lisafs.UID
	GID   lisafs.GID
	Mode  linux.FileMode
}

func openCreateAtReq(c createArgs, flags uint32, name string) *lisafs.OpenCreateAtReq {
	var r lisafs.OpenCreateAtReq
	r.DirFD, r.UID, r.GID, r.Mode = c.DirFD, c.UID, c.GID, c.Mode
	r.Flags = primitive.Uint32(flags)
	r.Name = lisafs.SizedString(name)
	return &r
}

func mkdirAtReq(c createArgs, name string) *lisafs.MkdirAtReq {
	var r lisafs.MkdirAtReq
	r.DirFD, r.UID, r.GID, r.Mode = c.DirFD, c.UID, c.GID, c.Mode
	r.Name = lisafs.SizedString(name)
	return &r
}

func mknodAtReq(c createArgs, minor, major uint32, name string) *lisafs.MknodAtReq {
	var r lisafs.MknodAtReq
	r.DirFD, r.UID, r.GID, r.Mode = c.DirFD, c.UID, c.GID, c.Mode
	r.Minor = primitive.Uint32(minor)
	r.Major = primitive.Uint32(major)
	r.Name = lisafs.SizedString(name)
	return &r
}

func bindAtReq(c createArgs, sockType uint32, name string) *lisafs.BindAtReq {
	var r lisafs.BindAtReq
	r.DirFD, r.UID, r.GID, r.Mode = c.DirFD, c.UID, c.GID, c.Mode
	r.SockType = primitive.Uint32(sockType)
	r.Name = lisafs.SizedString(name)
	return &r
}

// Linux constants used by the vectors (spelled out so that the values are
// obvious to readers of the Rust side).
const (
	statxBasicStats = 0x7ff
	statxBtime      = 0x800

	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000

	dtDIR  = 4
	dtREG  = 8
	dtLNK  = 10
	dtSOCK = 12

	// SetStat mask bits: STATX_MODE|STATX_UID|STATX_GID|STATX_ATIME|
	// STATX_MTIME|STATX_SIZE == 0x27A.
	setStatAllMask = 0x002 | 0x008 | 0x010 | 0x020 | 0x040 | 0x200

	utimeNow  = (1 << 30) - 1 // 0x3FFFFFFF
	utimeOmit = (1 << 30) - 2 // 0x3FFFFFFE

	oRDONLY = 0
	oWRONLY = 0o1
	oRDWR   = 0o2
	oCREAT  = 0o100
	oEXCL   = 0o200
	oTRUNC  = 0o1000

	atRemoveDir = 0x200

	renameNoReplace = 1
	renameExchange  = 2

	xattrCreate  = 1
	xattrReplace = 2

	sockStream    = 1
	sockDgram     = 2
	sockSeqpacket = 5

	fallocKeepSize  = 0x1
	fallocPunchHole = 0x2

	enoent     = 2
	eacces     = 13
	eopnotsupp = 95
)

// HostMaxMessageSize is lisafs.MaxMessageSize() on a host with 4 KiB pages
// (2 MiB huge page minus one page). It is spelled out so the vectors do not
// depend on the page size of the machine generating them.
const HostMaxMessageSize = 2<<20 - 4<<10

// HostSupportedMessages is the list runsc's host gofer (runsc/fsgofer)
// advertises in MountResp: every MID from Mount to RenameAt2 except Flush.
func HostSupportedMessages() []lisafs.MID {
	var ms []lisafs.MID
	for m := lisafs.Mount; m <= lisafs.RenameAt2; m++ {
		if m != lisafs.Flush {
			ms = append(ms, m)
		}
	}
	return ms
}

// dirStatx has every field set to a distinct non-zero value, with 64-bit
// fields above 2^32 and timestamps carrying nanoseconds.
func dirStatx() lisafs.Statx {
	return lisafs.Statx{
		Mask:           statxBasicStats | statxBtime,
		Blksize:        4096,
		Attributes:     0x0000_0010_0000_0020,
		Nlink:          7,
		UID:            1000,
		GID:            1001,
		Mode:           sIFDIR | 0o755,
		Ino:            0x0000_0123_4567_89ab,
		Size:           0x0000_0002_0000_1000,
		Blocks:         0x0000_0001_0000_0008,
		AttributesMask: 0x0000_0030_0000_0074,
		Atime:          lisafs.StatxTimestamp{Sec: 1_700_000_001, Nsec: 123_456_789},
		Btime:          lisafs.StatxTimestamp{Sec: 1_600_000_002, Nsec: 987_654_321},
		Ctime:          lisafs.StatxTimestamp{Sec: 1_700_000_003, Nsec: 500_000_003},
		Mtime:          lisafs.StatxTimestamp{Sec: 0x0000_0001_0000_0005, Nsec: 999_999_999},
		RdevMajor:      11,
		RdevMinor:      12,
		DevMajor:       259,
		DevMinor:       13,
	}
}

// fileStatx is a regular file; all fields distinct and non-zero.
func fileStatx() lisafs.Statx {
	return lisafs.Statx{
		Mask:           statxBasicStats,
		Blksize:        65536,
		Attributes:     0x0000_0100_0000_0004,
		Nlink:          2,
		UID:            0xfffe,
		GID:            0x1_0001,
		Mode:           sIFREG | 0o4755,
		Ino:            0x7fff_ffff_ffff_fff1,
		Size:           0x0000_0123_4567_89ac,
		Blocks:         0x0000_0000_9999_0001,
		AttributesMask: 0x0000_0000_8000_0000,
		Atime:          lisafs.StatxTimestamp{Sec: 86_400, Nsec: 1},
		Btime:          lisafs.StatxTimestamp{Sec: 1_234_567_890, Nsec: 200_000_002},
		Ctime:          lisafs.StatxTimestamp{Sec: 0x0000_0007_ffff_ffff, Nsec: 3},
		Mtime:          lisafs.StatxTimestamp{Sec: 4_102_444_800, Nsec: 456_000_000},
		RdevMajor:      21,
		RdevMinor:      22,
		DevMajor:       8,
		DevMinor:       23,
	}
}

// symlinkStatx is a symlink with pre-epoch (negative) timestamps.
func symlinkStatx() lisafs.Statx {
	return lisafs.Statx{
		Mask:           statxBasicStats | statxBtime,
		Blksize:        1024,
		Attributes:     0x0000_0800_0000_0001,
		Nlink:          1,
		UID:            31,
		GID:            32,
		Mode:           sIFLNK | 0o777,
		Ino:            0x0000_00ff_0000_0033,
		Size:           34,
		Blocks:         0x0000_0001_0000_0035,
		AttributesMask: 0x0000_0fff_0000_0036,
		Atime:          lisafs.StatxTimestamp{Sec: -86_400, Nsec: 37},
		Btime:          lisafs.StatxTimestamp{Sec: -1, Nsec: 999_999_038},
		Ctime:          lisafs.StatxTimestamp{Sec: 39, Nsec: 40},
		Mtime:          lisafs.StatxTimestamp{Sec: -2_208_988_800, Nsec: 41},
		RdevMajor:      42,
		RdevMinor:      43,
		DevMajor:       44,
		DevMinor:       45,
	}
}

// socketStatx is a bound unix socket.
func socketStatx() lisafs.Statx {
	s := fileStatx()
	s.Mode = sIFSOCK | 0o755
	s.Ino = 0x0000_0042_0000_0051
	s.Size = 0x0000_0001_0000_0052
	s.Nlink = 53
	return s
}

// charDevStatx is a character device node.
func charDevStatx() lisafs.Statx {
	s := symlinkStatx()
	s.Mode = sIFCHR | 0o620
	s.Ino = 0x0000_0001_0000_0061
	s.RdevMajor = 136
	s.RdevMinor = 0x0001_0003
	return s
}

func inode(fd lisafs.FDID, st lisafs.Statx) lisafs.Inode {
	return lisafs.Inode{ControlFD: fd, Stat: st}
}

func req(name string, mid lisafs.MID, m Message) Vector {
	return Vector{Name: TypeName(m) + "/" + name, MID: mid, Dir: Request, Msg: m}
}

func resp(name string, mid lisafs.MID, m Message) Vector {
	return Vector{Name: TypeName(m) + "/" + name, MID: mid, Dir: Response, Msg: m}
}

// Names with non-ASCII UTF-8 and with bytes that are not valid UTF-8
// (SizedString is a Go string, which may hold arbitrary bytes).
const (
	utf8Name     = "café-日本語-😀"
	invalidUTF8  = "bad\xff\xfe\x80name"
	nulInsideVal = "v\x00\x01\x02\xffend"
)

// Vectors returns the full, ordered table of test vectors. Each call builds
// fresh values.
func Vectors() []Vector {
	const (
		rootFD  lisafs.FDID = 1
		dirFD   lisafs.FDID = 0x0000_0000_0000_0017
		fileFD  lisafs.FDID = 0x0000_0000_0001_0002
		openFD  lisafs.FDID = 0x0000_0000_0002_0003
		bigFD   lisafs.FDID = 0x0123_4567_89ab_cdef
		sockFD  lisafs.FDID = 0x0000_0000_0003_0004
		boundFD lisafs.FDID = 0x0000_0000_0003_0005
	)

	return []Vector{
		// MID 0: Error (response only).
		resp("enoent", lisafs.Error, errorResp(enoent)),
		resp("eopnotsupp", lisafs.Error, errorResp(eopnotsupp)),

		// MID 1: Mount.
		req("empty", lisafs.Mount, &lisafs.MountReq{}),
		resp("host-gofer", lisafs.Mount, &lisafs.MountResp{
			Root:           inode(rootFD, dirStatx()),
			MaxMessageSize: HostMaxMessageSize,
			SupportedMs:    HostSupportedMessages(),
		}),
		resp("minimal", lisafs.Mount, &lisafs.MountResp{
			Root:           inode(bigFD, fileStatx()),
			MaxMessageSize: 0x0001_0000,
			SupportedMs:    []lisafs.MID{lisafs.Mount, lisafs.Walk, lisafs.Close, lisafs.RenameAt2},
		}),

		// MID 2: Channel.
		req("empty", lisafs.Channel, &lisafs.ChannelReq{}),
		resp("large-offset", lisafs.Channel, channelResp(0x0000_0010_0020_0000, 0x0000_0001_0000_0000)),

		// MID 3: FStat.
		req("root", lisafs.FStat, &lisafs.StatReq{FD: rootFD}),
		resp("directory", lisafs.FStat, ptr(dirStatx())),
		resp("regular-file", lisafs.FStat, ptr(fileStatx())),
		resp("symlink-negative-times", lisafs.FStat, ptr(symlinkStatx())),

		// MID 4: SetStat.
		req("all-utime-now", lisafs.SetStat, &lisafs.SetStatReq{
			FD:    fileFD,
			Mask:  setStatAllMask,
			Mode:  0o4751,
			UID:   1000,
			GID:   1001,
			Size:  0x0000_0200_0000_0001,
			Atime: linux.Timespec{Sec: 0x0000_0001_0000_0002, Nsec: utimeNow},
			Mtime: linux.Timespec{Sec: 1_700_000_000, Nsec: 999_999_999},
		}),
		req("noid-utime-omit", lisafs.SetStat, &lisafs.SetStatReq{
			FD:    bigFD,
			Mask:  0x008 | 0x010 | 0x040,
			Mode:  0o644,
			UID:   lisafs.NoUID,
			GID:   lisafs.NoGID,
			Size:  4096,
			Atime: linux.Timespec{Sec: 12, Nsec: 34},
			Mtime: linux.Timespec{Sec: 56, Nsec: utimeOmit},
		}),
		resp("success", lisafs.SetStat, &lisafs.SetStatResp{}),
		resp("partial-failure", lisafs.SetStat, &lisafs.SetStatResp{FailureMask: 0x018, FailureErrNo: 1}),

		// MID 5: Walk.
		req("three-components", lisafs.Walk, &lisafs.WalkReq{DirFD: rootFD, Path: lisafs.StringArray{"usr", "lib", "x86_64-linux-gnu"}}),
		req("utf8-component", lisafs.Walk, &lisafs.WalkReq{DirFD: dirFD, Path: lisafs.StringArray{utf8Name}}),
		req("invalid-utf8-component", lisafs.Walk, &lisafs.WalkReq{DirFD: bigFD, Path: lisafs.StringArray{"a", invalidUTF8}}),
		req("empty-path", lisafs.Walk, &lisafs.WalkReq{DirFD: dirFD, Path: lisafs.StringArray{}}),
		resp("success-three-inodes", lisafs.Walk, &lisafs.WalkResp{
			Status: lisafs.WalkSuccess,
			Inodes: []lisafs.Inode{inode(2, dirStatx()), inode(3, dirStatx()), inode(4, fileStatx())},
		}),
		resp("symlink-two-inodes", lisafs.Walk, &lisafs.WalkResp{
			Status: lisafs.WalkComponentSymlink,
			Inodes: []lisafs.Inode{inode(0x10, dirStatx()), inode(bigFD, symlinkStatx())},
		}),
		resp("does-not-exist-no-inodes", lisafs.Walk, &lisafs.WalkResp{
			Status: lisafs.WalkComponentDoesNotExist,
			Inodes: []lisafs.Inode{},
		}),

		// MID 6: WalkStat (request type is WalkReq).
		req("walkstat-self-and-two", lisafs.WalkStat, &lisafs.WalkReq{DirFD: rootFD, Path: lisafs.StringArray{"", "etc", "passwd"}}),
		req("walkstat-utf8", lisafs.WalkStat, &lisafs.WalkReq{DirFD: dirFD, Path: lisafs.StringArray{utf8Name, invalidUTF8}}),
		resp("three-stats", lisafs.WalkStat, &lisafs.WalkStatResp{Stats: []lisafs.Statx{dirStatx(), fileStatx(), symlinkStatx()}}),
		resp("empty", lisafs.WalkStat, &lisafs.WalkStatResp{Stats: []lisafs.Statx{}}),

		// MID 7: OpenAt.
		req("rdonly", lisafs.OpenAt, &lisafs.OpenAtReq{FD: fileFD, Flags: oRDONLY}),
		req("rdwr-trunc", lisafs.OpenAt, &lisafs.OpenAtReq{FD: bigFD, Flags: oRDWR | oTRUNC}),
		resp("fd", lisafs.OpenAt, &lisafs.OpenAtResp{OpenFD: openFD}),

		// MID 8: OpenCreateAt.
		req("excl-utf8", lisafs.OpenCreateAt, openCreateAtReq(
			createArgs{DirFD: dirFD, UID: 1000, GID: 1001, Mode: 0o640},
			oWRONLY|oCREAT|oEXCL|oTRUNC, utf8Name)),
		req("noid", lisafs.OpenCreateAt, openCreateAtReq(
			createArgs{DirFD: bigFD, UID: lisafs.NoUID, GID: lisafs.NoGID, Mode: sIFREG | 0o600},
			oRDWR|oCREAT, "new.txt")),
		resp("new-file", lisafs.OpenCreateAt, &lisafs.OpenCreateAtResp{
			Child: inode(0x0000_0000_0004_0001, fileStatx()),
			NewFD: 0x0000_0000_0004_0002,
		}),

		// MID 9: Close.
		req("three-fds", lisafs.Close, &lisafs.CloseReq{FDs: lisafs.FdArray{rootFD, fileFD, bigFD}}),
		req("one-fd", lisafs.Close, &lisafs.CloseReq{FDs: lisafs.FdArray{openFD}}),
		resp("empty", lisafs.Close, &lisafs.CloseResp{}),

		// MID 10: FSync.
		req("two-fds", lisafs.FSync, &lisafs.FsyncReq{FDs: lisafs.FdArray{openFD, bigFD}}),
		req("no-fds", lisafs.FSync, &lisafs.FsyncReq{FDs: lisafs.FdArray{}}),
		resp("empty", lisafs.FSync, &lisafs.FsyncResp{}),

		// MID 11: PWrite.
		req("data-large-offset", lisafs.PWrite, pwriteReq(openFD, 0x0000_0123_0000_0000, []byte("hello, lisafs\n\x00\xff\x80"))),
		req("zero-bytes", lisafs.PWrite, pwriteReq(bigFD, 7, []byte{})),
		resp("count", lisafs.PWrite, &lisafs.PWriteResp{Count: 17}),

		// MID 12: PRead.
		req("large-offset", lisafs.PRead, &lisafs.PReadReq{Offset: 0x0000_0200_0000_1000, FD: openFD, Count: 65536}),
		req("small", lisafs.PRead, &lisafs.PReadReq{Offset: 3, FD: bigFD, Count: 0xffff_fff0}),
		resp("data", lisafs.PRead, preadResp([]byte("#!/bin/sh\necho \xe2\x9c\x93\n\x00\x01\xfe"))),
		resp("eof", lisafs.PRead, preadResp([]byte{})),

		// MID 13: MkdirAt.
		req("utf8", lisafs.MkdirAt, mkdirAtReq(createArgs{DirFD: dirFD, UID: 1000, GID: 1001, Mode: 0o2775}, utf8Name)),
		resp("dir", lisafs.MkdirAt, &lisafs.MkdirAtResp{ChildDir: inode(0x0000_0000_0005_0001, dirStatx())}),

		// MID 14: MknodAt.
		req("char-device", lisafs.MknodAt, mknodAtReq(createArgs{DirFD: dirFD, UID: 0x1_0000, GID: 5, Mode: sIFCHR | 0o620}, 0x0001_0003, 136, "tty-ü")),
		resp("child", lisafs.MknodAt, &lisafs.MknodAtResp{Child: inode(0x0000_0000_0006_0001, charDevStatx())}),

		// MID 15: SymlinkAt.
		req("absolute-target", lisafs.SymlinkAt, &lisafs.SymlinkAtReq{DirFD: dirFD, UID: 1000, GID: 1001, Name: "libc.so.6", Target: "/usr/lib/x86_64-linux-gnu/libc.so.6"}),
		req("noid-utf8", lisafs.SymlinkAt, &lisafs.SymlinkAtReq{DirFD: bigFD, UID: lisafs.NoUID, GID: lisafs.NoGID, Name: utf8Name, Target: "../" + invalidUTF8}),
		resp("symlink", lisafs.SymlinkAt, &lisafs.SymlinkAtResp{Symlink: inode(0x0000_0000_0007_0001, symlinkStatx())}),

		// MID 16: LinkAt.
		req("hardlink", lisafs.LinkAt, &lisafs.LinkAtReq{DirFD: dirFD, Target: fileFD, Name: "hard-" + utf8Name}),
		resp("link", lisafs.LinkAt, &lisafs.LinkAtResp{Link: inode(0x0000_0000_0008_0001, fileStatx())}),

		// MID 17: FStatFS.
		req("fd", lisafs.FStatFS, &lisafs.FStatFSReq{FD: bigFD}),
		resp("ext4", lisafs.FStatFS, &lisafs.StatFS{
			Type:            0xef53,
			BlockSize:       4096,
			Blocks:          0x0000_0001_2345_6789,
			BlocksFree:      0x0000_0000_8765_4321,
			BlocksAvailable: 0x0000_0000_7654_3210,
			Files:           0x0000_0000_0400_0000,
			FilesFree:       0x0000_0000_03ff_0001,
			NameLength:      255,
		}),
		resp("tmpfs", lisafs.FStatFS, &lisafs.StatFS{
			Type:            0x0102_1994,
			BlockSize:       -1,
			Blocks:          0x0000_0100_0000_0001,
			BlocksFree:      2,
			BlocksAvailable: 3,
			Files:           4,
			FilesFree:       5,
			NameLength:      6,
		}),

		// MID 18: FAllocate.
		req("punch-hole", lisafs.FAllocate, &lisafs.FAllocateReq{FD: openFD, Mode: fallocPunchHole | fallocKeepSize, Offset: 0x0000_0300_0000_0000, Length: 0x0000_0001_0000_0000}),
		resp("empty", lisafs.FAllocate, &lisafs.FAllocateResp{}),

		// MID 19: ReadLinkAt.
		req("fd", lisafs.ReadLinkAt, &lisafs.ReadLinkAtReq{FD: 0x0000_0000_0007_0001}),
		resp("relative-target", lisafs.ReadLinkAt, &lisafs.ReadLinkAtResp{Target: "../lib/" + utf8Name}),
		resp("invalid-utf8-target", lisafs.ReadLinkAt, &lisafs.ReadLinkAtResp{Target: invalidUTF8}),

		// MID 20: Flush.
		req("fd", lisafs.Flush, &lisafs.FlushReq{FD: openFD}),
		resp("empty", lisafs.Flush, &lisafs.FlushResp{}),

		// MID 21: Connect.
		req("stream", lisafs.Connect, &lisafs.ConnectReq{FD: sockFD, SockType: sockStream}),
		resp("empty", lisafs.Connect, &lisafs.ConnectResp{}),

		// MID 22: UnlinkAt.
		req("file", lisafs.UnlinkAt, &lisafs.UnlinkAtReq{DirFD: dirFD, Flags: 0, Name: utf8Name}),
		req("removedir", lisafs.UnlinkAt, &lisafs.UnlinkAtReq{DirFD: bigFD, Flags: atRemoveDir, Name: invalidUTF8}),
		resp("empty", lisafs.UnlinkAt, &lisafs.UnlinkAtResp{}),

		// MID 23: RenameAt.
		req("utf8", lisafs.RenameAt, &lisafs.RenameAtReq{OldDir: dirFD, NewDir: bigFD, OldName: "old-name", NewName: utf8Name}),
		resp("empty", lisafs.RenameAt, &lisafs.RenameAtResp{}),

		// MID 24: Getdents64.
		req("seek0-negative-count", lisafs.Getdents64, &lisafs.Getdents64Req{DirFD: openFD, Count: -65536}),
		req("positive-count", lisafs.Getdents64, &lisafs.Getdents64Req{DirFD: bigFD, Count: 4096}),
		resp("five-dirents", lisafs.Getdents64, &lisafs.Getdents64Resp{Dirents: []lisafs.Dirent64{
			{Ino: 0x0000_0123_4567_89ab, DevMinor: 13, DevMajor: 259, Off: 1, Type: dtDIR, Name: "."},
			{Ino: 2, DevMinor: 14, DevMajor: 260, Off: 0x2b3c_4d5e_6f70_8192, Type: dtDIR, Name: ".."},
			{Ino: 0x7fff_ffff_ffff_fff1, DevMinor: 15, DevMajor: 261, Off: 0x3000_0000_0000_0003, Type: dtREG, Name: utf8Name},
			{Ino: 0x0000_00ff_0000_0033, DevMinor: 16, DevMajor: 262, Off: 0x4000_0000_0000_0004, Type: dtLNK, Name: invalidUTF8},
			{Ino: 0x0000_0042_0000_0051, DevMinor: 17, DevMajor: 263, Off: 0x7fff_ffff_ffff_ffff, Type: dtSOCK, Name: "sock"},
		}}),
		resp("empty", lisafs.Getdents64, &lisafs.Getdents64Resp{Dirents: []lisafs.Dirent64{}}),

		// MID 25: FGetXattr.
		req("user-attr", lisafs.FGetXattr, &lisafs.FGetXattrReq{FD: fileFD, BufSize: 65536, Name: "user.mime_type"}),
		resp("binary-value", lisafs.FGetXattr, &lisafs.FGetXattrResp{Value: nulInsideVal}),

		// MID 26: FSetXattr.
		req("create", lisafs.FSetXattr, &lisafs.FSetXattrReq{FD: fileFD, Flags: xattrCreate, Name: "user.comment", Value: utf8Name}),
		req("replace-binary", lisafs.FSetXattr, &lisafs.FSetXattrReq{FD: bigFD, Flags: xattrReplace, Name: "trusted.overlay.opaque", Value: nulInsideVal}),
		resp("empty", lisafs.FSetXattr, &lisafs.FSetXattrResp{}),

		// MID 27: FListXattr.
		req("size", lisafs.FListXattr, &lisafs.FListXattrReq{FD: fileFD, Size: 0x0001_0000}),
		resp("several", lisafs.FListXattr, &lisafs.FListXattrResp{Xattrs: lisafs.StringArray{
			"user.mime_type", "security.selinux", "trusted.overlay.opaque", "user." + utf8Name,
		}}),
		resp("empty", lisafs.FListXattr, &lisafs.FListXattrResp{Xattrs: lisafs.StringArray{}}),

		// MID 28: FRemoveXattr.
		req("name", lisafs.FRemoveXattr, &lisafs.FRemoveXattrReq{FD: fileFD, Name: "user.comment"}),
		resp("empty", lisafs.FRemoveXattr, &lisafs.FRemoveXattrResp{}),

		// MID 29: BindAt.
		req("stream", lisafs.BindAt, bindAtReq(createArgs{DirFD: dirFD, UID: 1000, GID: 1001, Mode: sIFSOCK | 0o755}, sockStream, "app.sock")),
		req("dgram-noid", lisafs.BindAt, bindAtReq(createArgs{DirFD: bigFD, UID: lisafs.NoUID, GID: lisafs.NoGID, Mode: 0o700}, sockDgram, utf8Name)),
		resp("socket", lisafs.BindAt, &lisafs.BindAtResp{Child: inode(sockFD, socketStatx()), BoundSocketFD: boundFD}),

		// MID 30: Listen.
		req("backlog", lisafs.Listen, &lisafs.ListenReq{FD: boundFD, Backlog: 128}),
		req("negative-backlog", lisafs.Listen, &lisafs.ListenReq{FD: bigFD, Backlog: -1}),
		resp("empty", lisafs.Listen, &lisafs.ListenResp{}),

		// MID 31: Accept.
		req("fd", lisafs.Accept, &lisafs.AcceptReq{FD: boundFD}),
		resp("abstract-peer", lisafs.Accept, &lisafs.AcceptResp{PeerAddr: "\x00peer-" + utf8Name}),
		resp("unnamed-peer", lisafs.Accept, &lisafs.AcceptResp{PeerAddr: ""}),

		// MID 32: ConnectWithCreds (the server answers with ConnectResp).
		req("creds", lisafs.ConnectWithCreds, &lisafs.ConnectWithCredsReq{
			ConnectReq: lisafs.ConnectReq{FD: sockFD, SockType: sockStream},
			UID:        1000,
			GID:        1001,
		}),
		req("large-ids", lisafs.ConnectWithCreds, &lisafs.ConnectWithCredsReq{
			ConnectReq: lisafs.ConnectReq{FD: bigFD, SockType: sockSeqpacket},
			UID:        0xffff_fffe,
			GID:        0x8000_0000,
		}),
		resp("with-creds", lisafs.ConnectWithCreds, &lisafs.ConnectResp{}),

		// MID 33: RenameAt2 (the server answers with RenameAtResp).
		req("exchange", lisafs.RenameAt2, renameAt2Req(dirFD, bigFD, "a-"+utf8Name, "b-"+invalidUTF8, renameExchange)),
		req("noreplace", lisafs.RenameAt2, renameAt2Req(rootFD, rootFD, "x", "y", renameNoReplace)),
		resp("rename-at2", lisafs.RenameAt2, &lisafs.RenameAtResp{}),
	}
}

func ptr[T any](v T) *T { return &v }

func pwriteReq(fd lisafs.FDID, off uint64, data []byte) *lisafs.PWriteReq {
	return &lisafs.PWriteReq{
		Offset:   primitive.Uint64(off),
		FD:       fd,
		NumBytes: primitive.Uint32(len(data)),
		Buf:      data,
	}
}

func preadResp(data []byte) *lisafs.PReadResp {
	return &lisafs.PReadResp{NumBytes: primitive.Uint64(len(data)), Buf: data}
}

func renameAt2Req(oldDir, newDir lisafs.FDID, oldName, newName string, flags uint32) *lisafs.RenameAt2Req {
	return &lisafs.RenameAt2Req{
		RenameAtReq: lisafs.RenameAtReq{
			OldDir:  oldDir,
			NewDir:  newDir,
			OldName: lisafs.SizedString(oldName),
			NewName: lisafs.SizedString(newName),
		},
		Flags: primitive.Uint32(flags),
	}
}

// Pair identifies a payload kind: a message ID and a direction.
type Pair struct {
	MID lisafs.MID
	Dir Direction
}

// ExpectedTypes maps every (MID, direction) pair that must be covered to the
// gVisor Go type used for it: requests for MIDs 1..33 and responses for MIDs
// 0..33. Response types are the ones gVisor's handlers (handlers.go,
// connection.go) marshal and its client (client.go, client_file.go)
// unmarshals.
var ExpectedTypes = map[Pair]string{
	{lisafs.Error, Response}: "ErrorResp",

	{lisafs.Mount, Request}:             "MountReq",
	{lisafs.Channel, Request}:           "ChannelReq",
	{lisafs.FStat, Request}:             "StatReq",
	{lisafs.SetStat, Request}:           "SetStatReq",
	{lisafs.Walk, Request}:              "WalkReq",
	{lisafs.WalkStat, Request}:          "WalkReq",
	{lisafs.OpenAt, Request}:            "OpenAtReq",
	{lisafs.OpenCreateAt, Request}:      "OpenCreateAtReq",
	{lisafs.Close, Request}:             "CloseReq",
	{lisafs.FSync, Request}:             "FsyncReq",
	{lisafs.PWrite, Request}:            "PWriteReq",
	{lisafs.PRead, Request}:             "PReadReq",
	{lisafs.MkdirAt, Request}:           "MkdirAtReq",
	{lisafs.MknodAt, Request}:           "MknodAtReq",
	{lisafs.SymlinkAt, Request}:         "SymlinkAtReq",
	{lisafs.LinkAt, Request}:            "LinkAtReq",
	{lisafs.FStatFS, Request}:           "FStatFSReq",
	{lisafs.FAllocate, Request}:         "FAllocateReq",
	{lisafs.ReadLinkAt, Request}:        "ReadLinkAtReq",
	{lisafs.Flush, Request}:             "FlushReq",
	{lisafs.Connect, Request}:           "ConnectReq",
	{lisafs.UnlinkAt, Request}:          "UnlinkAtReq",
	{lisafs.RenameAt, Request}:          "RenameAtReq",
	{lisafs.Getdents64, Request}:        "Getdents64Req",
	{lisafs.FGetXattr, Request}:         "FGetXattrReq",
	{lisafs.FSetXattr, Request}:         "FSetXattrReq",
	{lisafs.FListXattr, Request}:        "FListXattrReq",
	{lisafs.FRemoveXattr, Request}:      "FRemoveXattrReq",
	{lisafs.BindAt, Request}:            "BindAtReq",
	{lisafs.Listen, Request}:            "ListenReq",
	{lisafs.Accept, Request}:            "AcceptReq",
	{lisafs.ConnectWithCreds, Request}:  "ConnectWithCredsReq",
	{lisafs.RenameAt2, Request}:         "RenameAt2Req",
	{lisafs.Mount, Response}:            "MountResp",
	{lisafs.Channel, Response}:          "ChannelResp",
	{lisafs.FStat, Response}:            "Statx",
	{lisafs.SetStat, Response}:          "SetStatResp",
	{lisafs.Walk, Response}:             "WalkResp",
	{lisafs.WalkStat, Response}:         "WalkStatResp",
	{lisafs.OpenAt, Response}:           "OpenAtResp",
	{lisafs.OpenCreateAt, Response}:     "OpenCreateAtResp",
	{lisafs.Close, Response}:            "CloseResp",
	{lisafs.FSync, Response}:            "FsyncResp",
	{lisafs.PWrite, Response}:           "PWriteResp",
	{lisafs.PRead, Response}:            "PReadResp",
	{lisafs.MkdirAt, Response}:          "MkdirAtResp",
	{lisafs.MknodAt, Response}:          "MknodAtResp",
	{lisafs.SymlinkAt, Response}:        "SymlinkAtResp",
	{lisafs.LinkAt, Response}:           "LinkAtResp",
	{lisafs.FStatFS, Response}:          "StatFS",
	{lisafs.FAllocate, Response}:        "FAllocateResp",
	{lisafs.ReadLinkAt, Response}:       "ReadLinkAtResp",
	{lisafs.Flush, Response}:            "FlushResp",
	{lisafs.Connect, Response}:          "ConnectResp",
	{lisafs.UnlinkAt, Response}:         "UnlinkAtResp",
	{lisafs.RenameAt, Response}:         "RenameAtResp",
	{lisafs.Getdents64, Response}:       "Getdents64Resp",
	{lisafs.FGetXattr, Response}:        "FGetXattrResp",
	{lisafs.FSetXattr, Response}:        "FSetXattrResp",
	{lisafs.FListXattr, Response}:       "FListXattrResp",
	{lisafs.FRemoveXattr, Response}:     "FRemoveXattrResp",
	{lisafs.BindAt, Response}:           "BindAtResp",
	{lisafs.Listen, Response}:           "ListenResp",
	{lisafs.Accept, Response}:           "AcceptResp",
	{lisafs.ConnectWithCreds, Response}: "ConnectResp",
	{lisafs.RenameAt2, Response}:        "RenameAtResp",
}

// RequiredPairs returns the keys of ExpectedTypes in MID order, requests
// before responses.
func RequiredPairs() []Pair {
	var out []Pair
	for m := lisafs.Error; m <= lisafs.RenameAt2; m++ {
		if m != lisafs.Error {
			out = append(out, Pair{m, Request})
		}
		out = append(out, Pair{m, Response})
	}
	return out
}
