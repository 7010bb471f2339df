package interop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/lisafs"
)

// captureTimeout bounds the whole socket conversation with gVisor's client.
const captureTimeout = 20 * time.Second

// wantFrames is the expected frame sequence: name, direction, MID.
var wantFrames = []struct {
	name string
	dir  Direction
	mid  lisafs.MID
}{
	{"client/Mount", Request, lisafs.Mount},
	{"server/MountResp", Response, lisafs.Mount},
	{"client/Walk", Request, lisafs.Walk},
	{"client/FStat", Request, lisafs.FStat},
	{"client/OpenAt", Request, lisafs.OpenAt},
	{"server/ErrorResp", Response, lisafs.Error},
	{"client/Close", Request, lisafs.Close},
}

// prototypes maps gVisor type names to a sample value of that type, taken
// from the vector table.
func prototypes() map[string]Message {
	out := map[string]Message{}
	for _, v := range Vectors() {
		if _, ok := out[v.TypeName()]; !ok {
			out[v.TypeName()] = v.Msg
		}
	}
	return out
}

func TestFrames(t *testing.T) {
	frames, err := CaptureFrames(captureTimeout)
	if err != nil {
		t.Fatalf("capturing frames from gVisor's client: %v", err)
	}

	if len(frames) != len(wantFrames) {
		t.Fatalf("captured %d frames, want %d", len(frames), len(wantFrames))
	}
	protos := prototypes()
	for i, f := range frames {
		w := wantFrames[i]
		if f.Name != w.name || f.Dir != w.dir || f.MID() != w.mid {
			t.Errorf("frame %d is %s/%s/mid %d, want %s/%s/mid %d", i, f.Name, f.Dir, f.MID(), w.name, w.dir, w.mid)
			continue
		}
		if n := binary.LittleEndian.Uint32(f.Bytes[0:4]); int(n) != len(f.Payload()) {
			t.Errorf("%s: header length %d, payload %d bytes", f.Name, n, len(f.Payload()))
		}
		// The payload must be a valid message of the type gVisor uses.
		typ := ExpectedTypes[Pair{f.MID(), f.Dir}]
		proto, ok := protos[typ]
		if !ok {
			t.Errorf("%s: no prototype for %s", f.Name, typ)
			continue
		}
		got, ok := decode(t, proto, f.Payload())
		if !ok {
			t.Errorf("%s: %s.CheckedUnmarshal rejects payload %x", f.Name, typ, f.Payload())
			continue
		}
		if again := Marshal(got); !bytes.Equal(again, f.Payload()) {
			t.Errorf("%s: re-marshal %x != payload %x", f.Name, again, f.Payload())
		}
	}

	// The MountResp the fake server sent is the host-gofer vector.
	for _, v := range Vectors() {
		if v.Name == "MountResp/host-gofer" && !bytes.Equal(frames[1].Payload(), Marshal(v.Msg)) {
			t.Errorf("server/MountResp payload differs from vector %s", v.Name)
		}
	}

	entries := FrameEntries(frames)
	if updating() {
		doc := LoadForUpdate(VectorsPath)
		doc.Frames = entries
		if err := Save(VectorsPath, doc); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d frames to %s", len(entries), VectorsPath)
		return
	}

	doc, _, err := Load(VectorsPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s is missing; run with %s=1 to create it", VectorsPath, UpdateEnv)
	}
	if err != nil {
		t.Fatalf("parsing %s: %v", VectorsPath, err)
	}
	for i := 0; i < len(entries) || i < len(doc.Frames); i++ {
		switch {
		case i >= len(doc.Frames):
			t.Errorf("frame %d %q missing from file", i, entries[i].Name)
		case i >= len(entries):
			t.Errorf("file has extra frame %d %q", i, doc.Frames[i].Name)
		case doc.Frames[i] != entries[i]:
			t.Errorf("frame %d differs:\nfile %+v\n  go %+v", i, doc.Frames[i], entries[i])
		}
	}
}
