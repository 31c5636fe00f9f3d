// Package oci reads OCI image layouts (index.json plus blobs/sha256), unpacks
// an image's layers into a root filesystem (whiteouts and opaque directories
// applied, nothing written outside the root), and writes small image layouts
// from directories for tests and stack images.
package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNotFound is wrapped when a layout holds no image by the name or digest
// asked for.
var ErrNotFound = errors.New("oci: image not found")

// maxJSON bounds the size of an index, manifest or config blob read.
const maxJSON = 8 << 20

// Layout is an OCI image layout directory.
type Layout struct {
	Dir string
}

// Image is an image resolved in a layout: its manifest and config.
type Image struct {
	Digest   digest.Digest // of the manifest
	Manifest ocispec.Manifest
	Config   ocispec.Image
}

// BlobPath returns the path of the blob d, after checking that d is a
// well-formed sha256 digest (so the path stays inside the layout).
func (l Layout) BlobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("oci: bad digest %q", d)
	}
	return filepath.Join(l.Dir, "blobs", d.Algorithm().String(), d.Encoded()), nil
}

// readJSON reads the blob d into v, checking its digest.
func (l Layout) readJSON(d digest.Digest, v any) error {
	p, err := l.BlobPath(d)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("oci: blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJSON+1))
	if err != nil {
		return fmt.Errorf("oci: reading blob %s: %w", d, err)
	}
	if len(b) > maxJSON {
		return fmt.Errorf("oci: blob %s is larger than %d bytes", d, maxJSON)
	}
	if digest.FromBytes(b) != d {
		return fmt.Errorf("oci: blob %s does not match its digest", d)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("oci: blob %s: %w", d, err)
	}
	return nil
}

// Index reads the layout's index.json.
func (l Layout) Index() (ocispec.Index, error) {
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(l.Dir, "index.json"))
	if err != nil {
		return idx, fmt.Errorf("oci: layout %s: %w", l.Dir, err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("oci: layout %s: index.json: %w", l.Dir, err)
	}
	return idx, nil
}

// Resolve finds an image by manifest (or image index) digest, or, when
// dgst is empty, by the org.opencontainers.image.ref.name annotation of an
// index.json entry. An image index is resolved to the manifest for this
// machine's platform.
func (l Layout) Resolve(ref, dgst string) (Image, error) {
	var desc ocispec.Descriptor
	switch {
	case dgst != "":
		d, err := digest.Parse(dgst)
		if err != nil {
			return Image{}, fmt.Errorf("oci: bad digest %q: %w", dgst, err)
		}
		desc = ocispec.Descriptor{Digest: d}
		if idx, err := l.Index(); err == nil {
			for _, m := range idx.Manifests {
				if m.Digest == d {
					desc = m
				}
			}
		}
	case ref != "":
		idx, err := l.Index()
		if err != nil {
			return Image{}, err
		}
		// Several entries may carry the name, one per platform: take this
		// machine's, else one that names no platform.
		found := false
		for _, m := range idx.Manifests {
			if m.Annotations[ocispec.AnnotationRefName] != ref {
				continue
			}
			if m.Platform != nil && (m.Platform.OS != runtime.GOOS || m.Platform.Architecture != runtime.GOARCH) {
				continue
			}
			desc, found = m, true
			if m.Platform != nil {
				break
			}
		}
		if !found {
			return Image{}, fmt.Errorf("oci: no image named %q in %s: %w", ref, l.Dir, ErrNotFound)
		}
	default:
		return Image{}, fmt.Errorf("oci: no image name or digest: %w", ErrNotFound)
	}
	return l.resolveDesc(desc, 0)
}

func (l Layout) resolveDesc(desc ocispec.Descriptor, depth int) (Image, error) {
	if depth > 4 {
		return Image{}, fmt.Errorf("oci: image indexes nested too deep at %s", desc.Digest)
	}
	// The media type in index.json may be missing; read the blob's own.
	var probe struct {
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    *ocispec.Descriptor  `json:"config"`
	}
	if err := l.readJSON(desc.Digest, &probe); err != nil {
		return Image{}, err
	}
	if probe.Config == nil && len(probe.Manifests) > 0 {
		for _, m := range probe.Manifests {
			if m.Platform == nil || (m.Platform.OS == runtime.GOOS && m.Platform.Architecture == runtime.GOARCH) {
				return l.resolveDesc(m, depth+1)
			}
		}
		return Image{}, fmt.Errorf("oci: image index %s has no manifest for %s/%s: %w", desc.Digest, runtime.GOOS, runtime.GOARCH, ErrNotFound)
	}
	var img Image
	img.Digest = desc.Digest
	if err := l.readJSON(desc.Digest, &img.Manifest); err != nil {
		return Image{}, err
	}
	if img.Manifest.Config.Digest == "" {
		return Image{}, fmt.Errorf("oci: manifest %s has no config", desc.Digest)
	}
	if err := l.readJSON(img.Manifest.Config.Digest, &img.Config); err != nil {
		return Image{}, err
	}
	if n, m := len(img.Manifest.Layers), len(img.Config.RootFS.DiffIDs); m != 0 && n != m {
		return Image{}, fmt.Errorf("oci: manifest %s has %d layers but its config %d diff ids", desc.Digest, n, m)
	}
	return img, nil
}

// isGzip reports whether a layer's media type says it is gzip-compressed.
func isGzip(mediaType string) bool {
	return strings.HasSuffix(mediaType, "gzip")
}
