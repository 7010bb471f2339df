package interop

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/unet"
)

// FrameHeaderLen is the size of the LISAFS socket frame header: u32 LE
// payload length, u16 LE message ID, u16 zero padding.
const FrameHeaderLen = 8

// Frame is one complete socket frame (header + payload) observed on, or
// written to, the socket between gVisor's client and our fake server.
type Frame struct {
	Name  string
	Dir   Direction
	Bytes []byte
}

// MID returns the message ID in the frame header.
func (f *Frame) MID() lisafs.MID {
	return lisafs.MID(binary.LittleEndian.Uint16(f.Bytes[4:6]))
}

// Payload returns the bytes after the header.
func (f *Frame) Payload() []byte {
	return f.Bytes[FrameHeaderLen:]
}

// BuildFrame prepends a LISAFS socket header to payload. The header is built
// here (not by gVisor, whose sockHeader type is unexported); the payload is
// expected to come from gVisor's marshallers.
func BuildFrame(mid lisafs.MID, payload []byte) []byte {
	out := make([]byte, FrameHeaderLen+len(payload))
	binary.LittleEndian.PutUint32(out[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint16(out[4:6], uint16(mid))
	// out[6:8] is the zero padding.
	copy(out[FrameHeaderLen:], payload)
	return out
}

// Values the fake server hands to the client during the capture.
var (
	frameWalkPath = []string{"usr", "lib", "x86_64-linux-gnu"}
)

func frameMountResp() *lisafs.MountResp {
	return &lisafs.MountResp{
		Root:           inode(1, dirStatx()),
		MaxMessageSize: HostMaxMessageSize,
		SupportedMs:    HostSupportedMessages(),
	}
}

func frameWalkResp() *lisafs.WalkResp {
	lib := dirStatx()
	lib.Ino++
	return &lisafs.WalkResp{
		Status: lisafs.WalkSuccess,
		Inodes: []lisafs.Inode{inode(2, dirStatx()), inode(3, lib), inode(4, fileStatx())},
	}
}

// capture is the fake-server side of a socketpair whose other end is owned by
// a real gVisor lisafs.Client.
type capture struct {
	peer     int
	deadline time.Time
	frames   []Frame
}

func (c *capture) remaining() (time.Duration, error) {
	d := time.Until(c.deadline)
	if d <= 0 {
		return 0, fmt.Errorf("timed out")
	}
	return d, nil
}

// readFull reads exactly len(buf) bytes from the peer socket, never blocking
// past the capture deadline.
func (c *capture) readFull(buf []byte) error {
	for got := 0; got < len(buf); {
		d, err := c.remaining()
		if err != nil {
			return fmt.Errorf("reading frame: %w", err)
		}
		pfd := []unix.PollFd{{Fd: int32(c.peer), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(d/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if n == 0 {
			continue // Deadline is re-checked above.
		}
		r, err := unix.Read(c.peer, buf[got:])
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if r == 0 {
			return fmt.Errorf("read: unexpected EOF after %d of %d bytes", got, len(buf))
		}
		got += r
	}
	return nil
}

// readFrame reads one complete frame sent by the client and records it.
func (c *capture) readFrame(name string, want lisafs.MID) (*Frame, error) {
	hdr := make([]byte, FrameHeaderLen)
	if err := c.readFull(hdr); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n > HostMaxMessageSize {
		return nil, fmt.Errorf("%s: payload length %d too large", name, n)
	}
	buf := make([]byte, FrameHeaderLen+int(n))
	copy(buf, hdr)
	if err := c.readFull(buf[FrameHeaderLen:]); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := Frame{Name: name, Dir: Request, Bytes: buf}
	if got := f.MID(); got != want {
		return nil, fmt.Errorf("%s: got MID %d, want %d", name, got, want)
	}
	if pad := binary.LittleEndian.Uint16(hdr[6:8]); pad != 0 {
		return nil, fmt.Errorf("%s: header padding is %#x", name, pad)
	}
	c.frames = append(c.frames, f)
	return &c.frames[len(c.frames)-1], nil
}

// send writes a server frame to the client; if name is non-empty the frame is
// recorded too.
func (c *capture) send(name string, mid lisafs.MID, payload []byte) error {
	frame := BuildFrame(mid, payload)
	if name != "" {
		c.frames = append(c.frames, Frame{Name: name, Dir: Response, Bytes: frame})
	}
	for off := 0; off < len(frame); {
		n, err := unix.Write(c.peer, frame[off:])
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		off += n
	}
	return nil
}

// await waits for a client call running in another goroutine.
func (c *capture) await(what string, done <-chan error) error {
	d, err := c.remaining()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("%s: client call did not return in time", what)
	}
}

// exchange runs call (a gVisor client method) in a goroutine, captures the
// request frame it sends as "client/<name>", answers with respMID/respPayload
// (recorded as respName when non-empty) and waits for call to return.
func (c *capture) exchange(name string, reqMID lisafs.MID, call func() error, respMID lisafs.MID, respPayload []byte, respName string) error {
	done := make(chan error, 1)
	go func() { done <- call() }()
	if _, err := c.readFrame("client/"+name, reqMID); err != nil {
		return err
	}
	if err := c.send(respName, respMID, respPayload); err != nil {
		return err
	}
	if err := c.await(name, done); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// CaptureFrames connects gVisor's real lisafs.Client to a fake server over a
// socketpair, and records the raw frames the client sends for Mount, Walk,
// FStat, OpenAt and Close, plus the MountResp and ErrorResp frames the fake
// server sends. The fake server's responses are gVisor-marshalled payloads
// behind a header built by BuildFrame. The whole capture is bounded by
// timeout; it never blocks past it.
func CaptureFrames(timeout time.Duration) (frames []Frame, retErr error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	c := &capture{peer: fds[1], deadline: time.Now().Add(timeout)}
	// Closing the peer makes any client call still blocked on the socket fail,
	// and wakes the client's watchdog, so nothing outlives this function for
	// long.
	defer unix.Close(c.peer)

	sock, err := unet.NewSocket(fds[0])
	if err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("unet.NewSocket: %w", err)
	}

	type mountResult struct {
		client *lisafs.Client
		root   lisafs.Inode
		hostFD int
		err    error
	}
	mounted := make(chan mountResult, 1)
	go func() {
		// NewClient takes ownership of sock and immediately sends Mount.
		cl, root, hostFD, err := lisafs.NewClient(sock)
		mounted <- mountResult{cl, root, hostFD, err}
	}()

	waitMount := func() (mountResult, error) {
		d, err := c.remaining()
		if err != nil {
			return mountResult{}, fmt.Errorf("mount: %w", err)
		}
		select {
		case r := <-mounted:
			return r, nil
		case <-time.After(d):
			return mountResult{}, fmt.Errorf("mount: NewClient did not return in time")
		}
	}

	if _, err := c.readFrame("client/Mount", lisafs.Mount); err != nil {
		return nil, err
	}
	mountResp := frameMountResp()
	if err := c.send("server/MountResp", lisafs.Mount, Marshal(mountResp)); err != nil {
		return nil, err
	}
	m, err := waitMount()
	if err != nil {
		return nil, err
	}
	if m.err != nil {
		return nil, fmt.Errorf("lisafs.NewClient: %w", m.err)
	}
	client := m.client
	defer func() {
		// Shut the client down (no RPC is sent for this), bounded by the
		// deadline plus a grace period.
		closed := make(chan struct{})
		go func() { client.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(time.Until(c.deadline) + 5*time.Second):
			if retErr == nil {
				retErr = fmt.Errorf("lisafs.Client.Close did not return in time")
			}
		}
	}()
	if m.hostFD >= 0 {
		unix.Close(m.hostFD)
		return nil, fmt.Errorf("NewClient returned host FD %d, but none was donated", m.hostFD)
	}
	if !reflect.DeepEqual(m.root, mountResp.Root) {
		return nil, fmt.Errorf("client decoded root %s, want %s", m.root.String(), mountResp.Root.String())
	}
	for _, mid := range HostSupportedMessages() {
		if !client.IsSupported(mid) {
			return nil, fmt.Errorf("client does not consider MID %d supported", mid)
		}
	}
	if client.IsSupported(lisafs.Flush) {
		return nil, fmt.Errorf("client considers Flush supported")
	}

	ctx := context.Background()
	root := client.NewFD(m.root.ControlFD)

	// Walk: root -> usr/lib/x86_64-linux-gnu, answered with three inodes.
	walkResp := frameWalkResp()
	var (
		walkStatus lisafs.WalkStatus
		walked     []lisafs.Inode
	)
	if err := c.exchange("Walk", lisafs.Walk, func() (err error) {
		walkStatus, walked, err = root.WalkMultiple(ctx, slices.Clone(frameWalkPath))
		return err
	}, lisafs.Walk, Marshal(walkResp), ""); err != nil {
		return nil, err
	}
	if walkStatus != walkResp.Status || !reflect.DeepEqual(walked, walkResp.Inodes) {
		return nil, fmt.Errorf("client decoded walk status %d inodes %v, want %d %v", walkStatus, walked, walkResp.Status, walkResp.Inodes)
	}

	// FStat on the last walked FD.
	leaf := client.NewFD(walked[2].ControlFD)
	wantStat := fileStatx()
	var gotStat lisafs.Statx
	if err := c.exchange("FStat", lisafs.FStat, func() error {
		return leaf.StatTo(ctx, &gotStat)
	}, lisafs.FStat, Marshal(&wantStat), ""); err != nil {
		return nil, err
	}
	if gotStat != wantStat {
		return nil, fmt.Errorf("client decoded stat %s, want %s", gotStat.String(), wantStat.String())
	}

	// OpenAt, refused by the fake server with EACCES.
	var openErr error
	if err := c.exchange("OpenAt", lisafs.OpenAt, func() error {
		_, _, openErr = leaf.OpenAt(ctx, oRDONLY)
		return nil
	}, lisafs.Error, Marshal(errorResp(eacces)), "server/ErrorResp"); err != nil {
		return nil, err
	}
	if openErr != unix.EACCES {
		return nil, fmt.Errorf("OpenAt returned %v, want EACCES", openErr)
	}

	// Close all three walked FDs in one batched Close RPC.
	if err := c.exchange("Close", lisafs.Close, func() error {
		client.CloseFD(ctx, walked[0].ControlFD, false /* flush */)
		client.CloseFD(ctx, walked[1].ControlFD, false /* flush */)
		client.CloseFD(ctx, walked[2].ControlFD, true /* flush */)
		return nil
	}, lisafs.Close, Marshal(&lisafs.CloseResp{}), ""); err != nil {
		return nil, err
	}

	return c.frames, nil
}

// FrameEntries converts captured frames to file entries.
func FrameEntries(frames []Frame) []FrameEntry {
	out := make([]FrameEntry, 0, len(frames))
	for _, f := range frames {
		out = append(out, FrameEntry{Name: f.Name, Dir: f.Dir, Hex: fmt.Sprintf("%x", f.Bytes)})
	}
	return out
}
