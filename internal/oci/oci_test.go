package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func mkTar(t testing.TB, es ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// tree lists the files under root as "path" or "path -> link" or
// "path=body", sorted.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, _ := d.Info()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			rel += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			rel += "=" + string(b)
		case fi.IsDir():
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	slices.Sort(out)
	return out
}

func TestWriteResolveUnpackWithWhiteouts(t *testing.T) {
	layout := t.TempDir()
	base := mkTar(t,
		entry{name: "etc/", typ: tar.TypeDir},
		entry{name: "etc/keep", body: "k"},
		entry{name: "etc/gone", body: "g"},
		entry{name: "data/", typ: tar.TypeDir},
		entry{name: "data/old", body: "o"},
		entry{name: "data/sub/", typ: tar.TypeDir},
		entry{name: "data/sub/deep", body: "d"},
		entry{name: "bin/", typ: tar.TypeDir},
		entry{name: "bin/tool", body: "#!", mode: 0o755},
		entry{name: "bin/alias", typ: tar.TypeLink, link: "bin/tool"},
		entry{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
	)
	top := mkTar(t,
		entry{name: "data/new", body: "n"}, // before the opaque marker: kept
		entry{name: "data/.wh..wh..opq"},
		entry{name: "etc/.wh.gone"},
		entry{name: "etc/keep", body: "k2"},
		entry{name: ".wh.lib"},
		entry{name: "lib/", typ: tar.TypeDir},
		entry{name: "lib/x", body: "x"},
	)
	d, err := Write(layout, WriteImage{
		Name:   "app:v1",
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/tool"}, Env: []string{"A=1"}},
		Layers: []Layer{{Tar: base, Gzip: true}, {Tar: top}},
	})
	if err != nil {
		t.Fatal(err)
	}
	l := Layout{Dir: layout}
	byName, err := l.Resolve("app:v1", "")
	if err != nil {
		t.Fatal(err)
	}
	byDigest, err := l.Resolve("", d.String())
	if err != nil {
		t.Fatal(err)
	}
	if byName.Digest != d || byDigest.Digest != d || !slices.Equal(byName.Config.Config.Cmd, []string{"/bin/tool"}) {
		t.Fatalf("resolved %v / %v, want %v", byName.Digest, byDigest.Digest, d)
	}
	if _, err := l.Resolve("nope", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := l.Resolve("", "sha256:"+strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown digest: %v", err)
	}
	root := t.TempDir()
	if err := l.Unpack(context.Background(), byName, root); err != nil {
		t.Fatal(err)
	}
	want := []string{"bin/", "bin/alias=#!", "bin/tool=#!", "data/", "data/new=n", "etc/", "etc/keep=k2", "lib/", "lib/x=x"}
	if got := tree(t, root); !slices.Equal(got, want) {
		t.Fatalf("unpacked\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fi, _ := os.Stat(filepath.Join(root, "bin/tool")); fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// Re-writing the same name replaces the index entry.
	if _, err := Write(layout, WriteImage{Name: "app:v1", Layers: []Layer{{Tar: base}}}); err != nil {
		t.Fatal(err)
	}
	idx, _ := l.Index()
	if len(idx.Manifests) != 1 {
		t.Fatalf("index has %d entries", len(idx.Manifests))
	}
}

func TestApplyLayerStaysInsideRoot(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("safe"), 0o644)
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	os.Mkdir(root, 0o755)
	layer := mkTar(t,
		entry{name: "../../escape", body: "x"},
		entry{name: "/abs", body: "a"},
		entry{name: "up", typ: tar.TypeSymlink, link: "../../../../" + outside},
		entry{name: "up/victim", body: "pwned"},
		entry{name: "absl", typ: tar.TypeSymlink, link: outside},
		entry{name: "absl/victim", body: "pwned"},
		entry{name: "absl/.wh.victim"},
		entry{name: "hl", typ: tar.TypeLink, link: "../../../../" + victim},
	)
	err := ApplyLayer(root, bytes.NewReader(layer))
	if got, _ := os.ReadFile(victim); string(got) != "safe" {
		t.Fatalf("victim outside the root changed to %q", got)
	}
	if _, err := os.Stat(filepath.Join(parent, "escape")); err == nil {
		t.Fatal("wrote outside the root")
	}
	if err == nil {
		t.Fatal("a hard link to a file outside the root was accepted")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "escape")); string(b) != "x" {
		t.Fatalf("../../escape was not clamped into the root")
	}
	if _, err := os.Stat(filepath.Join(root, outside)); err != nil {
		t.Fatalf("writes through symlinks did not land inside the root: %v", err)
	}
}

func TestTarDirRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a/b"), 0o755)
	os.WriteFile(filepath.Join(src, "a/b/f"), []byte("hi"), 0o600)
	os.Symlink("b/f", filepath.Join(src, "a/l"))
	tb, err := TarDir(src)
	if err != nil {
		t.Fatal(err)
	}
	tb2, _ := TarDir(src)
	if !bytes.Equal(tb, tb2) {
		t.Fatal("TarDir is not deterministic")
	}
	dst := t.TempDir()
	if err := ApplyLayer(dst, bytes.NewReader(tb)); err != nil {
		t.Fatal(err)
	}
	if got, want := tree(t, dst), tree(t, src); !slices.Equal(got, want) {
		t.Fatalf("round trip: %v, want %v", got, want)
	}
}

func FuzzApplyLayer(f *testing.F) {
	f.Add(mkTar(f, entry{name: "a/b", body: "x"}, entry{name: "a/.wh.b"}))
	f.Add(mkTar(f, entry{name: "l", typ: tar.TypeSymlink, link: "/.."}, entry{name: "l/x", body: "y"}))
	f.Fuzz(func(t *testing.T, layer []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		os.Mkdir(root, 0o755)
		_ = applyLayer(root, bytes.NewReader(layer), 64<<10)
		es, _ := os.ReadDir(parent)
		if len(es) != 1 {
			t.Fatalf("layer wrote beside the root: %v", es)
		}
	})
}

func TestApplyLayerRefusesZstd(t *testing.T) {
	err := ApplyLayer(t.TempDir(), bytes.NewReader([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}))
	if err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Fatalf("a zstd layer gave %v", err)
	}
}

func TestResolveImageIndexAndPlatforms(t *testing.T) {
	layout := t.TempDir()
	d, err := Write(layout, WriteImage{Config: ocispec.ImageConfig{Cmd: []string{"/native"}}, Layers: []Layer{{Tar: mkTar(t, entry{name: "f", body: "x"})}}})
	if err != nil {
		t.Fatal(err)
	}
	l := Layout{Dir: layout}
	native, _ := l.Resolve("", d.String())
	other := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: native.Manifest.Config.Digest, Platform: &ocispec.Platform{OS: "plan9", Architecture: "mips"}}
	here := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Platform: &ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}}
	ib, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{other, here}})
	id, err := l.writeBlob(ib)
	if err != nil {
		t.Fatal(err)
	}
	img, err := l.Resolve("", id.String())
	if err != nil || img.Digest != d {
		t.Fatalf("resolving an index: %v %v, want manifest %s", img.Digest, err, d)
	}
	// index.json with one name per platform.
	named := func(desc ocispec.Descriptor) ocispec.Descriptor {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: "multi"}
		return desc
	}
	top, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{named(other), named(here)}})
	os.WriteFile(filepath.Join(layout, "index.json"), top, 0o644)
	img, err = l.Resolve("multi", "")
	if err != nil || img.Digest != d {
		t.Fatalf("resolving a name per platform: %v %v, want %s", img.Digest, err, d)
	}
}
