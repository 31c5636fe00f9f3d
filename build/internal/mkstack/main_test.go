package main

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestLayoutIsDeterministicAndComplete(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "bin", "busybox"), []byte("#!fake"), 0o755)
	os.Symlink("/bin/busybox", filepath.Join(root, "bin", "sh"))

	var manifests []string
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "layout")
		if err := run(root, out, "1000:1000", "base", []string{"PATH=/bin"}, []string{"a=b"}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		var idx ocispec.Index
		json.Unmarshal(b, &idx)
		if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != "base" {
			t.Fatalf("index = %s", b)
		}
		d := idx.Manifests[0].Digest
		manifests = append(manifests, d.String())
		var m ocispec.Manifest
		mb, _ := os.ReadFile(filepath.Join(out, "blobs", "sha256", d.Encoded()))
		json.Unmarshal(mb, &m)
		f, err := os.Open(filepath.Join(out, "blobs", "sha256", m.Layers[0].Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(f)
		names := map[string]*tar.Header{}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names[h.Name] = h
		}
		f.Close()
		if h := names["bin/sh"]; h == nil || h.Linkname != "/bin/busybox" {
			t.Errorf("bin/sh symlink missing: %+v", h)
		}
		if h := names["bin/busybox"]; h == nil || h.Mode&0o111 == 0 {
			t.Errorf("bin/busybox missing or not executable: %+v", h)
		}
	}
	if manifests[0] != manifests[1] {
		t.Errorf("two runs gave %s and %s", manifests[0], manifests[1])
	}
}
