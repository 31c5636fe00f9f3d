package buildtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/build"
)

// Fake is a reference build.Builder that runs no engine: it prepares and
// checks the source, detects and plans like a real builder, and returns a
// Result whose digest is a hash of the source. Dockerfile apps get `web`
// from the Dockerfile's last CMD line. It passes Run with NoExecution.
type Fake struct {
	// Source limits sources.
	Source build.SourceOptions
}

var _ build.Builder = (*Fake)(nil)

// Build implements build.Builder.
func (f *Fake) Build(ctx context.Context, req build.Request) (*build.Result, error) {
	start := time.Now()
	src, plan, err := build.Prepare(ctx, req, f.Source)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	h := sha256.New()
	err = filepath.WalkDir(src.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(src.Dir, p)
		io.WriteString(h, rel+"\x00")
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		_, err = io.Copy(h, fh)
		return err
	})
	if err != nil {
		return nil, err
	}
	procs := plan.Processes
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	if plan.Strategy == build.StrategyDockerfile {
		if cmd := lastCmd(filepath.Join(src.Dir, "Dockerfile")); cmd != "" && len(procs) == 0 {
			procs = []build.Process{{Type: "web", Command: cmd}}
		}
	} else {
		cfg.Config.WorkingDir = "/app"
		cfg.Config.Env = plan.Env
	}
	cfg.Config.Labels = map[string]string{build.ProcessTypesLabel: build.ProcessTypesJSON(procs)}
	line := build.ProgressLine{Message: "fake build of " + req.App, Time: time.Now()}
	if req.Progress != nil {
		req.Progress(line)
	}
	if req.ProgressWriter != nil {
		io.WriteString(req.ProgressWriter, line.String()+"\n")
	}
	return &build.Result{
		Image:     req.ImageName(),
		Digest:    "sha256:" + hex.EncodeToString(h.Sum(nil)),
		Config:    cfg,
		Processes: procs,
		Strategy:  plan.Strategy,
		Duration:  time.Since(start) + time.Nanosecond,
		Steps:     len(plan.Steps),
	}, nil
}
