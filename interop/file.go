package interop

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
)

// VectorsPath is the location of the committed vector file, relative to the
// module root (the working directory of `go test`).
const VectorsPath = "vectors/messages.json"

// UpdateEnv is the environment variable that makes the tests rewrite the
// vector file instead of comparing against it.
const UpdateEnv = "LISAFS_UPDATE_VECTORS"

// Document is the on-disk shape of vectors/messages.json. Field order here is
// the key order in the file.
type Document struct {
	Source  string        `json:"source"`
	Vectors []VectorEntry `json:"vectors"`
	Frames  []FrameEntry  `json:"frames"`
}

// VectorEntry is one payload vector (no socket header).
type VectorEntry struct {
	Name string    `json:"name"`
	MID  uint16    `json:"mid"`
	Dir  Direction `json:"dir"`
	Type string    `json:"type"`
	Hex  string    `json:"hex"`
}

// FrameEntry is one complete socket frame: the 8-byte header (u32 LE payload
// length, u16 LE MID, u16 zero padding) followed by the payload.
type FrameEntry struct {
	Name string    `json:"name"`
	Dir  Direction `json:"dir"`
	Hex  string    `json:"hex"`
}

// Entries marshals vs with gVisor's code and returns the file entries.
func Entries(vs []Vector) []VectorEntry {
	out := make([]VectorEntry, 0, len(vs))
	for i := range vs {
		v := &vs[i]
		out = append(out, VectorEntry{
			Name: v.Name,
			MID:  uint16(v.MID),
			Dir:  v.Dir,
			Type: v.TypeName(),
			Hex:  hex.EncodeToString(Marshal(v.Msg)),
		})
	}
	return out
}

// Encode renders doc deterministically: 2-space indent, no HTML escaping,
// trailing newline. Nil slices are written as empty arrays.
func Encode(doc *Document) ([]byte, error) {
	d := *doc
	if d.Vectors == nil {
		d.Vectors = []VectorEntry{}
	}
	if d.Frames == nil {
		d.Frames = []FrameEntry{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Load reads and parses the vector file at path, returning the document and
// the raw bytes.
func Load(path string) (*Document, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var doc Document
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, raw, err
	}
	return &doc, raw, nil
}

// LoadForUpdate loads the document at path for rewriting one of its sections.
// A missing or unreadable file yields a fresh document.
func LoadForUpdate(path string) *Document {
	doc, _, err := Load(path)
	if err != nil || doc == nil {
		return &Document{Source: Source}
	}
	return doc
}

// Save writes doc to path, creating the parent directory if needed.
func Save(path string, doc *Document) error {
	doc.Source = Source
	out, err := Encode(doc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}
