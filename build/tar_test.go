package build_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/build"
)

type entry struct {
	name, body, link string
	typ              byte
	size             int64 // overrides len(body) in the header when > 0
}

func tarball(t *testing.T, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w = &buf
	var zw *gzip.Writer
	tw := tar.NewWriter(w)
	if gz {
		zw = gzip.NewWriter(w)
		tw = tar.NewWriter(zw)
	}
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if e.size > 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg && e.size == 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Flush()
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func prepareTar(t *testing.T, data []byte, opts build.SourceOptions) (*build.PreparedSource, error) {
	t.Helper()
	p, err := build.PrepareSource(context.Background(), build.Source{Tar: bytes.NewReader(data)}, opts)
	if err == nil {
		t.Cleanup(func() { p.Close() })
	}
	return p, err
}

func TestTarSourceGood(t *testing.T) {
	for _, gz := range []bool{false, true} {
		data := tarball(t, gz,
			entry{name: "./", typ: tar.TypeDir},
			entry{name: "public/index.html", body: "hello"},
			entry{name: "public/alias.html", typ: tar.TypeSymlink, link: "index.html"},
			entry{name: "public/hard.html", typ: tar.TypeLink, link: "public/index.html"},
			entry{name: "Procfile", body: "web: busybox httpd -f -p $PORT -h public\n"},
		)
		p, err := prepareTar(t, data, build.SourceOptions{})
		if err != nil {
			t.Fatalf("gzip=%v: %v", gz, err)
		}
		b, err := os.ReadFile(filepath.Join(p.Dir, "public", "alias.html"))
		if err != nil || string(b) != "hello" {
			t.Fatalf("alias.html = %q, %v", b, err)
		}
		f, err := build.ReadFacts(p.Dir)
		if err != nil || f.StaticRoot != "public" || len(f.Procfile) != 1 {
			t.Fatalf("facts %+v, %v", f, err)
		}
		dir := p.Dir
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("extracted source %s left behind after Close", dir)
		}
	}
}

func TestTarSourceBad(t *testing.T) {
	tests := map[string]struct {
		entries []entry
		want    error
	}{
		"traversal":                {[]entry{{name: "../evil", body: "x"}}, build.ErrUnsafeSource},
		"traversal inside":         {[]entry{{name: "a/../../evil", body: "x"}}, build.ErrUnsafeSource},
		"absolute path":            {[]entry{{name: "/etc/evil", body: "x"}}, build.ErrUnsafeSource},
		"absolute symlink":         {[]entry{{name: "pw", typ: tar.TypeSymlink, link: "/etc/passwd"}}, build.ErrUnsafeSource},
		"escaping symlink":         {[]entry{{name: "a/up", typ: tar.TypeSymlink, link: "../../x"}}, build.ErrUnsafeSource},
		"write through symlink":    {[]entry{{name: "d", typ: tar.TypeSymlink, link: "."}, {name: "d/../../x", body: "x"}}, build.ErrUnsafeSource},
		"hard link outside":        {[]entry{{name: "h", typ: tar.TypeLink, link: "../etc/passwd"}}, build.ErrUnsafeSource},
		"hard link to nothing":     {[]entry{{name: "h", typ: tar.TypeLink, link: "nope"}}, build.ErrUnsafeSource},
		"char device":              {[]entry{{name: "null", typ: tar.TypeChar}}, build.ErrUnsafeSource},
		"block device":             {[]entry{{name: "sda", typ: tar.TypeBlock}}, build.ErrUnsafeSource},
		"fifo":                     {[]entry{{name: "p", typ: tar.TypeFifo}}, build.ErrUnsafeSource},
		"huge entry":               {[]entry{{name: "big", size: 1 << 40}}, build.ErrSourceTooLarge},
		"many entries over limits": {[]entry{{name: "a", body: strings.Repeat("a", 600)}, {name: "b", body: strings.Repeat("b", 600)}}, build.ErrSourceTooLarge},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := prepareTar(t, tarball(t, false, tt.entries...), build.SourceOptions{MaxSize: 500})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTarSourceTruncatedAndGarbage(t *testing.T) {
	data := tarball(t, false, entry{name: "index.html", body: strings.Repeat("z", 4096)})
	if _, err := prepareTar(t, data[:1024], build.SourceOptions{}); err == nil {
		t.Error("truncated tar accepted")
	}
	if _, err := prepareTar(t, []byte{0x1f, 0x8b, 1, 2, 3}, build.SourceOptions{}); err == nil {
		t.Error("broken gzip accepted")
	}
	// An entry after ignore-file filtering within the limit: size counts
	// after .slugignore.
	data = tarball(t, false,
		entry{name: "index.html", body: "hi"},
		entry{name: ".slugignore", body: "assets\n"},
		entry{name: "assets/big", body: strings.Repeat("a", 800)},
	)
	if _, err := prepareTar(t, data, build.SourceOptions{MaxSize: 500}); err != nil {
		t.Errorf("ignored content counted against the limit: %v", err)
	}
}

func FuzzTarSource(f *testing.F) {
	f.Add([]byte{})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a/b", Size: 1, Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Name: "l", Linkname: "a/b", Typeflag: tar.TypeSymlink})
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		p, err := build.PrepareSource(context.Background(), build.Source{Tar: bytes.NewReader(data)}, build.SourceOptions{MaxSize: 1 << 16, TempDir: root})
		if err != nil {
			return
		}
		defer p.Close()
		// Nothing may have been written outside the extraction directory.
		entries, _ := os.ReadDir(root)
		if len(entries) != 1 {
			t.Fatalf("%d entries in the temp root, want 1", len(entries))
		}
	})
}
