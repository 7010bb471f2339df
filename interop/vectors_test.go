package interop

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/lisafs"
)

// checkedUnmarshaller is implemented by every gVisor message type except
// ErrorResp (whose go_marshal annotation has no boundCheck).
type checkedUnmarshaller interface {
	CheckedUnmarshal(src []byte) ([]byte, bool)
}

// unsafeUnmarshaller is implemented by go_marshal generated types.
type unsafeUnmarshaller interface {
	UnmarshalUnsafe(src []byte) []byte
}

// createCommonSize is the wire size of gVisor's unexported createCommon:
// DirFD u64, UID u32, GID u32, Mode u16, then 2+4 bytes of padding.
const createCommonSize = 24

// embedsCreateCommon reports whether m's struct type embeds gVisor's
// unexported createCommon.
func embedsCreateCommon(m Message) bool {
	t := reflect.TypeOf(m).Elem()
	if t.Kind() != reflect.Struct {
		return false
	}
	f, ok := t.FieldByName("createCommon")
	return ok && f.Anonymous
}

func updating() bool { return os.Getenv(UpdateEnv) == "1" }

// fresh returns a new zero value of the same gVisor type as m, prepared for
// unmarshalling a payload of size n.
func fresh(m Message, n int) Message {
	v := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
	if r, ok := v.(*lisafs.PReadResp); ok {
		// PReadResp.CheckedUnmarshal copies into a caller-provided buffer
		// (gVisor's client points it at the destination memory).
		r.Buf = make([]byte, n)
	}
	return v
}

// decode unmarshals b into a fresh value of m's type using gVisor's code.
func decode(t *testing.T, m Message, b []byte) (Message, bool) {
	t.Helper()
	v := fresh(m, len(b))
	switch u := v.(type) {
	case checkedUnmarshaller:
		rest, ok := u.CheckedUnmarshal(b)
		if ok && len(rest) != 0 {
			t.Errorf("%s: CheckedUnmarshal left %d trailing bytes", TypeName(m), len(rest))
		}
		return v, ok
	case unsafeUnmarshaller:
		// ErrorResp has no CheckedUnmarshal; gVisor's client calls
		// UnmarshalUnsafe on it, so do the same after a length check.
		if len(b) < v.SizeBytes() {
			return v, false
		}
		if rest := u.UnmarshalUnsafe(b); len(rest) != 0 {
			t.Errorf("%s: UnmarshalUnsafe left %d trailing bytes", TypeName(m), len(rest))
		}
		return v, true
	default:
		t.Fatalf("%s has no unmarshaller", TypeName(m))
		return nil, false
	}
}

func TestVectorTable(t *testing.T) {
	vs := Vectors()
	if len(vs) < 80 {
		t.Errorf("only %d vectors, want at least 80", len(vs))
	}
	seen := map[string]bool{}
	covered := map[Pair]bool{}
	for i := range vs {
		v := &vs[i]
		if seen[v.Name] {
			t.Errorf("duplicate vector name %q", v.Name)
		}
		seen[v.Name] = true
		typ := v.TypeName()
		if !strings.HasPrefix(v.Name, typ+"/") || len(v.Name) == len(typ)+1 {
			t.Errorf("vector %q: name must be %q followed by a case name", v.Name, typ+"/")
		}
		p := Pair{v.MID, v.Dir}
		want, ok := ExpectedTypes[p]
		if !ok {
			t.Errorf("vector %q: unexpected (mid %d, %s)", v.Name, v.MID, v.Dir)
		} else if typ != want {
			t.Errorf("vector %q: type %s, but gVisor uses %s for (mid %d, %s)", v.Name, typ, want, v.MID, v.Dir)
		}
		covered[p] = true
	}
	pairs := RequiredPairs()
	if len(pairs) != 33+34 || len(pairs) != len(ExpectedTypes) {
		t.Fatalf("RequiredPairs has %d entries, ExpectedTypes %d; want 67", len(pairs), len(ExpectedTypes))
	}
	for _, p := range pairs {
		if !covered[p] {
			t.Errorf("no vector for (mid %d, %s)", p.MID, p.Dir)
		}
	}
}

func TestVectorRoundTrip(t *testing.T) {
	for _, v := range Vectors() {
		t.Run(v.Name, func(t *testing.T) {
			b := Marshal(v.Msg)

			// Generated types: MarshalUnsafe (what gVisor's client and
			// server mostly call) must agree with MarshalBytes. Types that
			// embed createCommon only get its promoted MarshalUnsafe, which
			// writes the 24-byte common prefix and nothing else.
			if u, ok := v.Msg.(unsafeMarshaller); ok {
				b2 := make([]byte, v.Msg.SizeBytes())
				rest := u.MarshalUnsafe(b2)
				if embedsCreateCommon(v.Msg) {
					if n := len(b2) - len(rest); n != createCommonSize || !bytes.Equal(b2[:n], b[:n]) {
						t.Fatalf("promoted createCommon.MarshalUnsafe wrote %d bytes %x", n, b2[:n])
					}
				} else if len(rest) != 0 || !bytes.Equal(b, b2) {
					t.Fatalf("MarshalUnsafe %x (left %d) != MarshalBytes %x", b2, len(rest), b)
				}
			}

			got, ok := decode(t, v.Msg, b)
			if !ok {
				t.Fatalf("gVisor rejected its own bytes %x", b)
			}
			if again := Marshal(got); !bytes.Equal(again, b) {
				t.Fatalf("re-marshal mismatch:\n got %x\nwant %x", again, b)
			}

			// Every strict prefix must be rejected.
			for n := 0; n < len(b); n++ {
				if _, ok := decode(t, v.Msg, b[:n]); ok {
					t.Errorf("gVisor accepted a %d-byte prefix of a %d-byte payload", n, len(b))
					break
				}
			}
		})
	}
}

// TestVectors checks vectors/messages.json against the Go table, or rewrites
// its "vectors" section when LISAFS_UPDATE_VECTORS=1.
func TestVectors(t *testing.T) {
	entries := Entries(Vectors())

	if updating() {
		doc := LoadForUpdate(VectorsPath)
		doc.Vectors = entries
		if err := Save(VectorsPath, doc); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d vectors to %s", len(entries), VectorsPath)
		return
	}

	doc, raw, err := Load(VectorsPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s is missing; run with %s=1 to create it", VectorsPath, UpdateEnv)
	}
	if err != nil {
		t.Fatalf("parsing %s: %v", VectorsPath, err)
	}
	if doc.Source != Source {
		t.Errorf("source = %q, want %q", doc.Source, Source)
	}
	for i := 0; i < len(entries) || i < len(doc.Vectors); i++ {
		switch {
		case i >= len(doc.Vectors):
			t.Errorf("vector %d %q missing from file", i, entries[i].Name)
		case i >= len(entries):
			t.Errorf("file has extra vector %d %q", i, doc.Vectors[i].Name)
		case doc.Vectors[i] != entries[i]:
			t.Errorf("vector %d differs:\nfile %+v\n  go %+v", i, doc.Vectors[i], entries[i])
		}
	}

	// Every committed hex string must decode with gVisor's code.
	byName := map[string]Message{}
	for _, v := range Vectors() {
		byName[v.Name] = v.Msg
	}
	for _, e := range doc.Vectors {
		m, ok := byName[e.Name]
		if !ok {
			continue
		}
		b, err := hex.DecodeString(e.Hex)
		if err != nil || e.Hex != strings.ToLower(e.Hex) {
			t.Errorf("%s: bad hex %q", e.Name, e.Hex)
			continue
		}
		got, ok := decode(t, m, b)
		if !ok {
			t.Errorf("%s: gVisor CheckedUnmarshal rejects committed bytes", e.Name)
			continue
		}
		if again := Marshal(got); !bytes.Equal(again, b) {
			t.Errorf("%s: decode+re-marshal gives %x, file has %x", e.Name, again, b)
		}
	}

	// The file covers every (mid, dir) pair with the type gVisor uses.
	covered := map[Pair]bool{}
	for _, e := range doc.Vectors {
		p := Pair{lisafs.MID(e.MID), e.Dir}
		if want := ExpectedTypes[p]; want != e.Type {
			t.Errorf("%s: type %q for (mid %d, %s), gVisor uses %q", e.Name, e.Type, e.MID, e.Dir, want)
		}
		covered[p] = true
	}
	for _, p := range RequiredPairs() {
		if !covered[p] {
			t.Errorf("file has no vector for (mid %d, %s)", p.MID, p.Dir)
		}
	}

	// Formatting is deterministic: re-encoding the expected content must give
	// the committed bytes exactly.
	want, err := Encode(&Document{Source: Source, Vectors: entries, Frames: doc.Frames})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("%s is not in canonical form; run with %s=1", VectorsPath, UpdateEnv)
	}
}
