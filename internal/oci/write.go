package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteImage is an image to add to a layout.
type WriteImage struct {
	// Name is the org.opencontainers.image.ref.name annotation of the
	// image's index.json entry; an entry with the same name is replaced.
	// Empty means no name.
	Name   string
	Config ocispec.ImageConfig
	Layers []Layer
}

// Layer is one layer to write: the files of Dir, or the tar stream Tar
// taken as it is.
type Layer struct {
	Dir  string
	Tar  []byte
	Gzip bool // compress the layer
}

// Write adds img to the layout at dir (created if missing) and returns the
// manifest digest.
func Write(dir string, img WriteImage) (digest.Digest, error) {
	l := Layout{Dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return "", err
	}
	layoutFile := filepath.Join(dir, ocispec.ImageLayoutFile)
	if _, err := os.Stat(layoutFile); errors.Is(err, os.ErrNotExist) {
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := os.WriteFile(layoutFile, b, 0o644); err != nil {
			return "", err
		}
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH},
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	man := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, ly := range img.Layers {
		raw := ly.Tar
		if ly.Dir != "" {
			var err error
			if raw, err = TarDir(ly.Dir); err != nil {
				return "", err
			}
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(raw))
		blob, mt := raw, ocispec.MediaTypeImageLayer
		if ly.Gzip {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write(raw)
			if err := zw.Close(); err != nil {
				return "", err
			}
			blob, mt = b.Bytes(), ocispec.MediaTypeImageLayerGzip
		}
		d, err := l.writeBlob(blob)
		if err != nil {
			return "", err
		}
		man.Layers = append(man.Layers, ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(blob))})
	}
	cb, _ := json.Marshal(cfg)
	cd, err := l.writeBlob(cb)
	if err != nil {
		return "", err
	}
	man.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cb))}
	mb, _ := json.Marshal(man)
	md, err := l.writeBlob(mb)
	if err != nil {
		return "", err
	}
	idx, err := l.Index()
	if err != nil {
		idx = ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(mb))}
	if img.Name != "" {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: img.Name}
	}
	kept := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		if img.Name == "" || m.Annotations[ocispec.AnnotationRefName] != img.Name {
			kept = append(kept, m)
		}
	}
	idx.Manifests = append(kept, desc)
	ib, _ := json.Marshal(idx)
	if err := writeFileAtomic(filepath.Join(dir, "index.json"), ib); err != nil {
		return "", err
	}
	return md, nil
}

func (l Layout) writeBlob(b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	p, _ := l.BlobPath(d)
	if _, err := os.Stat(p); err == nil {
		return d, nil
	}
	return d, writeFileAtomic(p, b)
}

func writeFileAtomic(p string, b []byte) error {
	tmp := fmt.Sprintf("%s.tmp%d", p, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// TarDir returns an uncompressed tar stream of the files under dir, owned by
// root, with a fixed modification time so that the same files give the same
// layer.
func TarDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
