// Command mkstack turns a root filesystem directory into a single-layer OCI
// image in an OCI image layout, without Docker or a registry. scripts/stacks.sh
// uses it to make Slipway's offline stack images.
//
//	go run ./build/internal/mkstack -rootfs DIR -out LAYOUT [-env K=V]... [-user U] [-name NAME]
//
// The layer is an uncompressed tar with sorted entries, fixed timestamps and
// the files' own owners and modes, so the same rootfs gives the same digest.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var env, labels multi
	rootfs := flag.String("rootfs", "", "root filesystem directory")
	out := flag.String("out", "", "OCI layout directory to write (must not exist)")
	user := flag.String("user", "", "image config User")
	name := flag.String("name", "latest", "org.opencontainers.image.ref.name of the image")
	flag.Var(&env, "env", "image config Env entry K=V (repeatable)")
	flag.Var(&labels, "label", "image config label K=V (repeatable)")
	flag.Parse()
	if *rootfs == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*rootfs, *out, *user, *name, env, labels); err != nil {
		fmt.Fprintln(os.Stderr, "mkstack:", err)
		os.Exit(1)
	}
}

var epoch = time.Unix(0, 0).UTC()

func run(rootfs, out, user, name string, env, labels []string) error {
	blobs := filepath.Join(out, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	layer, size, err := writeLayer(rootfs, blobs)
	if err != nil {
		return err
	}
	lm := map[string]string{}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		lm[k] = v
	}
	created := epoch
	img := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Env: env, User: user, Labels: lm, WorkingDir: "/"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer}},
		History:  []ocispec.History{{Created: &created, CreatedBy: "slipway mkstack"}},
	}
	cfg, err := writeJSON(blobs, img)
	if err != nil {
		return err
	}
	cfg.MediaType = ocispec.MediaTypeImageConfig
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfg,
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: layer, Size: size}},
	}
	md, err := writeJSON(blobs, m)
	if err != nil {
		return err
	}
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Annotations = map[string]string{ocispec.AnnotationRefName: name}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	b, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(out, ocispec.ImageIndexFile), b, 0o644); err != nil {
		return err
	}
	b, _ = json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	return os.WriteFile(filepath.Join(out, ocispec.ImageLayoutFile), b, 0o644)
}

func writeJSON(blobs string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := digest.FromBytes(b)
	if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{Digest: d, Size: int64(len(b))}, nil
}

// writeLayer tars rootfs into blobs and returns the layer's digest and size.
func writeLayer(rootfs, blobs string) (digest.Digest, int64, error) {
	tmp, err := os.CreateTemp(blobs, ".layer-")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	tw := tar.NewWriter(cw)
	var paths []string
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != rootfs {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(rootfs, p)
		st, err := os.Lstat(p)
		if err != nil {
			return "", 0, err
		}
		link := ""
		if st.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return "", 0, err
			}
		}
		hdr, err := tar.FileInfoHeader(st, link)
		if err != nil {
			return "", 0, err
		}
		hdr.Name = filepath.ToSlash(rel)
		if st.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(sys.Uid), int(sys.Gid)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", 0, err
		}
		if st.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return "", 0, err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return "", 0, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", 0, err
	}
	d := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	if err := os.Rename(tmp.Name(), filepath.Join(blobs, d.Encoded())); err != nil {
		return "", 0, err
	}
	return d, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
