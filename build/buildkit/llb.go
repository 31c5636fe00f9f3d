package buildkit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/build"
)

func openStackStore(dir string) (content.Store, error) {
	return contentlocal.NewStore(dir)
}

// imageState returns the LLB state of a stack image and its config.
func (j *job) imageState(ctx context.Context, c gateway.Client, img build.Image) (llb.State, []byte, error) {
	if img.Layout != "" {
		for id, si := range j.images {
			if si.img != img {
				continue
			}
			st := llb.OCILayout("docker.io/library/"+id+"@"+si.manifest,
				llb.OCIStore(c.BuildOpts().SessionID, id),
				llb.WithCustomName("load stack image "+img.String()))
			st, err := st.WithImageConfig(si.config)
			return st, si.config, err
		}
		return llb.State{}, nil, fmt.Errorf("buildkit: stack image %s was not prepared", img)
	}
	_, _, cfg, err := c.ResolveImageConfig(ctx, img.Ref, sourceresolver.Opt{
		LogName:  "resolve stack image " + img.Ref,
		ImageOpt: &sourceresolver.ResolveImageOpt{ResolveMode: llb.ResolveModeDefault.String()},
	})
	if err != nil {
		return llb.State{}, nil, fmt.Errorf("buildkit: stack image %s: %w", img.Ref, err)
	}
	st, err := llb.Image(img.Ref, llb.WithCustomName("load stack image "+img.Ref)).WithImageConfig(cfg)
	return st, cfg, err
}

// llb turns the plan into a BuildKit definition and the image config.
func (j *job) llb(ctx context.Context, c gateway.Client) (*llb.Definition, []byte, error) {
	stack := j.b.cfg.Stacks[j.plan.Stack]
	runSt, runCfg, err := j.imageState(ctx, c, stack.Run)
	if err != nil {
		return nil, nil, err
	}
	scope := j.req.Scope()
	src := llb.Local("context",
		llb.SharedKeyHint("slipway-"+scope),
		llb.ExcludePatterns(j.plan.Exclude),
		llb.WithCustomName("load source"))
	copyAll := func(dest string) llb.StateOption {
		return func(s llb.State) llb.State {
			return s.File(llb.Copy(src, "/", dest, &llb.CopyInfo{
				CopyDirContentsOnly: true,
				CreateDestPath:      true,
				ExcludePatterns:     j.plan.Exclude,
			}), llb.WithCustomName("copy source"))
		}
	}
	chown := chownOpt(stack.User)

	var app llb.State
	if len(j.plan.Steps) == 0 {
		app = runSt.With(func(s llb.State) llb.State {
			return s.File(llb.Copy(src, "/", "/app", &llb.CopyInfo{
				CopyDirContentsOnly: true, CreateDestPath: true, ExcludePatterns: j.plan.Exclude, ChownOpt: chown,
			}), llb.WithCustomName("copy source into the run image"))
		})
	} else {
		bst, _, err := j.imageState(ctx, c, stack.Build)
		if err != nil {
			return nil, nil, err
		}
		env := j.buildEnv()
		copied := false
		for _, step := range j.plan.Steps {
			if len(step.Inputs) > 0 && !copied {
				var fa *llb.FileAction
				for _, in := range step.Inputs {
					cp := llb.Copy(src, "/"+in, "/app/"+in, &llb.CopyInfo{CreateDestPath: true})
					if fa == nil {
						fa = cp
					} else {
						fa = fa.Copy(src, "/"+in, "/app/"+in, &llb.CopyInfo{CreateDestPath: true})
					}
				}
				bst = bst.File(fa, llb.WithCustomName("copy "+strings.Join(step.Inputs, " ")))
			} else if !copied {
				bst = bst.With(copyAll("/app/"))
				copied = true
			}
			opts := []llb.RunOption{
				llb.Args([]string{"/bin/sh", "-c", step.Run}),
				llb.Dir("/app"),
				llb.WithCustomName(step.Name),
			}
			for _, e := range env {
				k, v, _ := strings.Cut(e, "=")
				opts = append(opts, llb.AddEnv(k, v))
			}
			for _, cache := range step.Caches {
				mode := llb.CacheMountLocked
				if strings.HasPrefix(cache.Name, "go-") {
					mode = llb.CacheMountShared
				}
				opts = append(opts, llb.AddMount(cache.Path, llb.Scratch(),
					llb.AsPersistentCacheDir("slipway/"+scope+"/"+cache.Name, mode)))
			}
			bst = bst.Run(opts...).Root()
		}
		if !copied {
			bst = bst.With(copyAll("/app/"))
		}
		app = runSt.File(llb.Copy(bst, "/app", "/app", &llb.CopyInfo{
			CopyDirContentsOnly: true, CreateDestPath: true, ChownOpt: chown,
		}), llb.WithCustomName("copy /app into the run image"))
	}
	def, err := app.Marshal(ctx)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := j.runConfig(runCfg, stack)
	if err != nil {
		return nil, nil, err
	}
	return def, cfg, nil
}

// buildEnv is the environment of every build step.
func (j *job) buildEnv() []string {
	env := append([]string(nil), j.plan.BuildEnv...)
	pi := j.b.cfg.PackageIndex
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	add("GOPROXY", pi.GoProxy)
	add("GOSUMDB", pi.GoSumDB)
	add("npm_config_registry", pi.NPMRegistry)
	add("PIP_INDEX_URL", pi.PythonIndex)
	add("PIP_FIND_LINKS", pi.PythonFindLinks)
	if pi.PythonNoIndex {
		add("PIP_NO_INDEX", "1")
	}
	for _, a := range j.req.Args {
		env = append(env, a.Name+"="+a.Value)
	}
	return env
}

// runConfig derives the image config from the run image's.
func (j *job) runConfig(base []byte, stack build.Stack) ([]byte, error) {
	var img ocispec.Image
	if err := json.Unmarshal(base, &img); err != nil {
		return nil, fmt.Errorf("buildkit: run image config: %w", err)
	}
	env := map[string]string{}
	var order []string
	set := func(kv string) {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, kv := range img.Config.Env {
		set(kv)
	}
	for _, kv := range j.plan.Env {
		set(kv)
	}
	img.Config.Env = nil
	for _, k := range order {
		if k == "PORT" {
			continue
		}
		img.Config.Env = append(img.Config.Env, k+"="+env[k])
	}
	img.Config.WorkingDir = "/app"
	if stack.User != "" {
		img.Config.User = stack.User
	}
	img.Config.Entrypoint = nil
	img.Config.Cmd = nil
	for _, p := range j.plan.Processes {
		if p.Type == "web" {
			img.Config.Cmd = []string{"/bin/sh", "-c", p.Command}
		}
	}
	return json.Marshal(img)
}

// chownOpt parses "uid[:gid]" or "name[:group]".
func chownOpt(user string) *llb.ChownOpt {
	if user == "" {
		return nil
	}
	u, g, _ := strings.Cut(user, ":")
	opt := func(s string) *llb.UserOpt {
		if n, err := strconv.Atoi(s); err == nil {
			return &llb.UserOpt{UID: n}
		}
		return &llb.UserOpt{Name: s}
	}
	co := &llb.ChownOpt{User: opt(u)}
	if g != "" {
		co.Group = opt(g)
	}
	return co
}
