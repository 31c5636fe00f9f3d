package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func usage(w io.Writer) {
	fmt.Fprint(w, `minipaas: a single-machine PaaS built from Slipway.

Server:
  minipaas server [flags]            run the control plane (root); see minipaas server -h

Apps (every app verb takes -a APP, or $MINIPAAS_APP):
  apps                               list apps
  apps:create NAME                   create an app
  apps:destroy NAME                  destroy an app, its instances, add-ons and releases
  deploy DIR                         build DIR and deploy it
  git:remote                         print the git remote to push to (git push REMOTE main)
  config                             show config vars
  config:get KEY                     print one config var
  config:set KEY=VALUE...            set config vars (a new release)
  config:unset KEY...                unset config vars (a new release)
  ps                                 list instances
  ps:scale TYPE=N...                 scale process types
  releases                           list releases
  rollback vN                        roll back to release N (a new release)
  run -- COMMAND...                  run a one-off and print its output
  logs [-f] [-n N]                   show (and follow) the app's and the router's log lines
  addons                             list attached add-ons
  addons:create SERVICE [--plan P] [--as NAME]   provision and attach an add-on
  addons:destroy NAME                detach and deprovision an add-on
  domains                            list hosts routed to the app
  domains:add DOMAIN                 route DOMAIN to the app
  domains:remove DOMAIN              stop routing DOMAIN
  url                                print the app's URL
  down                               stop every app's instances and the server

The CLI finds the server and its token in the state directory
($MINIPAAS_HOME, default ~/.cache/slipway/minipaas); $MINIPAAS_API and
$MINIPAAS_TOKEN override them.
`)
}

// apiError is an error the server answered with.
type apiError struct {
	Msg  string
	Code int
}

func (e *apiError) Error() string { return e.Msg }

// exitCode maps errors to exit codes: 1 in general, 2 for usage, the
// one-off's own code for `run`.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exited with code %d", e.code) }

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg + " (see minipaas help)" }

type client struct {
	api   string
	token string
	dir   string
	http  *http.Client
	out   io.Writer
}

func newClient() (*client, error) {
	c := &client{api: os.Getenv("MINIPAAS_API"), token: os.Getenv("MINIPAAS_TOKEN"), dir: stateDir(), http: &http.Client{}, out: os.Stdout}
	if c.api == "" {
		ep, err := readEndpoint(c.dir)
		if err != nil {
			return nil, err
		}
		c.api = ep.API
	}
	if c.token == "" {
		b, err := os.ReadFile(filepath.Join(c.dir, "token"))
		if err != nil {
			return nil, fmt.Errorf("no token: set MINIPAAS_TOKEN or run as the server's user: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	return c, nil
}

func (c *client) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var e errorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e = errorBody{Error: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b))), Code: resp.StatusCode}
		}
		return nil, &apiError{Msg: e.Error, Code: resp.StatusCode}
	}
	return resp, nil
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
func (c *client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// streamCall sends a request whose answer is a stream of JSON lines, prints
// the output lines as they come, and decodes the result into out.
func (c *client) streamCall(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	resp, err := c.do(ctx, method, path, body, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m struct {
			Out   *string         `json:"out"`
			Done  json.RawMessage `json:"done"`
			Error string          `json:"error"`
			Code  int             `json:"code"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("bad answer from the server: %q", sc.Text())
		}
		switch {
		case m.Out != nil:
			fmt.Fprintln(c.out, *m.Out)
		case m.Error != "":
			return &apiError{Msg: m.Error, Code: m.Code}
		case m.Done != nil:
			if out != nil {
				return json.Unmarshal(m.Done, out)
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("the server closed the stream before it finished (see its log)")
}

// clientMain runs one CLI verb.
func clientMain(verb string, args []string) error {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	app := fs.String("a", os.Getenv("MINIPAAS_APP"), "app name")
	follow := fs.Bool("f", false, "logs: follow")
	tail := fs.Int("n", 100, "logs: lines of history")
	plan := fs.String("plan", "", "addons:create: plan")
	as := fs.String("as", "", "addons:create: attachment name")
	timeout := fs.String("timeout", "", "run: kill the one-off after this long")
	// Flags may come after the verb's arguments, as in `ps:scale web=3 -a x`.
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return &usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) > 0 && args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	needApp := func() (string, error) {
		if *app == "" {
			return "", &usageError{verb + " needs -a APP"}
		}
		return url.PathEscape(*app), nil
	}
	nargs := func(n int) error {
		if len(pos) < n {
			return &usageError{fmt.Sprintf("%s needs %d argument(s)", verb, n)}
		}
		return nil
	}
	switch verb {
	case "apps":
		var apps []appInfo
		if err := c.call(ctx, "GET", "/v1/apps", nil, &apps); err != nil {
			return err
		}
		for _, a := range apps {
			fmt.Fprintf(c.out, "%s\tv%d\n", a.Name, a.Current)
		}
		return nil
	case "apps:create":
		if err := nargs(1); err != nil {
			return err
		}
		if err := c.call(ctx, "POST", "/v1/apps", appBody{Name: pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Creating %s... done\n", pos[0])
		return nil
	case "apps:destroy":
		if err := nargs(1); err != nil {
			return err
		}
		if err := c.call(ctx, "DELETE", "/v1/apps/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Destroying %s... done\n", pos[0])
		return nil
	case "down":
		if err := c.call(ctx, "POST", "/v1/shutdown?apps=stop", nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(c.out, "Stopping every app and the server... done")
		return nil
	}

	a, err := needApp()
	if err != nil {
		return err
	}
	base := "/v1/apps/" + a
	switch verb {
	case "deploy":
		if err := nargs(1); err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarDir(pos[0], pw)) }()
		var r releaseInfo
		if err := c.streamCall(ctx, "POST", base+"/deploy", pr, "application/x-tar", &r); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Deployed %s v%d\n", *app, r.Version)
		return nil
	case "git:remote":
		u, _ := url.Parse(c.api)
		u.User = url.UserPassword("git", c.token)
		u.Path = "/git/" + *app + ".git"
		fmt.Fprintln(c.out, u.String())
		return nil
	case "url":
		ep, err := readEndpoint(c.dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.out, "http://%s.%s:%s/\n", *app, ep.Domain, portOf(ep.Router))
		return nil
	case "config":
		var cfg map[string]string
		if err := c.call(ctx, "GET", base+"/config", nil, &cfg); err != nil {
			return err
		}
		keys := make([]string, 0, len(cfg))
		for k := range cfg {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(c.out, "%s=%s\n", k, cfg[k])
		}
		return nil
	case "config:get":
		if err := nargs(1); err != nil {
			return err
		}
		var cfg map[string]string
		if err := c.call(ctx, "GET", base+"/config", nil, &cfg); err != nil {
			return err
		}
		v, ok := cfg[pos[0]]
		if !ok {
			return fmt.Errorf("%s has no config var %s", *app, pos[0])
		}
		fmt.Fprintln(c.out, v)
		return nil
	case "config:set", "config:unset":
		if err := nargs(1); err != nil {
			return err
		}
		var b configBody
		if verb == "config:set" {
			b.Set = map[string]string{}
			for _, kv := range pos {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return &usageError{fmt.Sprintf("%q is not KEY=VALUE", kv)}
				}
				b.Set[k] = v
			}
		} else {
			b.Unset = pos
		}
		body, _ := json.Marshal(b)
		var r releaseInfo
		if err := c.streamCall(ctx, "PATCH", base+"/config", bytes.NewReader(body), "application/json", &r); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Setting config vars and restarting %s... done, v%d\n", *app, r.Version)
		return nil
	case "ps":
		var is []instanceInfo
		if err := c.call(ctx, "GET", base+"/ps", nil, &is); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		for _, in := range is {
			fmt.Fprintf(tw, "%s.%d\tv%d\t%s\t%s\trestarts=%d\t%s\n", in.Type, in.Index, in.Release, in.State, in.Addr, in.Restarts, in.ID)
		}
		return tw.Flush()
	case "ps:scale":
		if err := nargs(1); err != nil {
			return err
		}
		counts := map[string]int{}
		for _, kv := range pos {
			k, v, ok := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if !ok || err != nil {
				return &usageError{fmt.Sprintf("%q is not TYPE=COUNT", kv)}
			}
			counts[k] = n
		}
		if err := c.call(ctx, "POST", base+"/scale", counts, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Scaling %s... done\n", *app)
		return nil
	case "releases":
		var rs []releaseInfo
		if err := c.call(ctx, "GET", base+"/releases", nil, &rs); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		for _, r := range rs {
			line := fmt.Sprintf("v%d\t%s\t%s\t%s", r.Version, r.Status, r.Description, r.CreatedAt.Local().Format(time.DateTime))
			if r.Failure != "" {
				line += "\t(" + r.Failure + ")"
			}
			fmt.Fprintln(tw, line)
		}
		return tw.Flush()
	case "rollback":
		if err := nargs(1); err != nil {
			return err
		}
		v, err := strconv.Atoi(strings.TrimPrefix(pos[0], "v"))
		if err != nil {
			return &usageError{fmt.Sprintf("%q is not a release version like v3", pos[0])}
		}
		body, _ := json.Marshal(rollbackBody{Version: v})
		var r releaseInfo
		if err := c.streamCall(ctx, "POST", base+"/rollback", bytes.NewReader(body), "application/json", &r); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Rolled back %s to v%d: v%d\n", *app, v, r.Version)
		return nil
	case "run":
		if err := nargs(1); err != nil {
			return err
		}
		body, _ := json.Marshal(runBody{Command: strings.Join(pos, " "), Timeout: *timeout})
		var r runResult
		if err := c.streamCall(ctx, "POST", base+"/run", bytes.NewReader(body), "application/json", &r); err != nil {
			return err
		}
		if r.ExitCode != 0 {
			return &exitError{code: r.ExitCode}
		}
		return nil
	case "logs":
		q := fmt.Sprintf("?tail=%d", *tail)
		if *follow {
			q += "&follow=1"
		}
		resp, err := c.do(ctx, "GET", base+"/logs"+q, nil, "")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			who := l.Source
			if l.Source == "app" {
				who = "app[" + l.Instance + "]"
			}
			fmt.Fprintf(c.out, "%s %s: %s\n", l.Time.Format(time.RFC3339Nano), who, l.Text)
		}
		if ctx.Err() != nil {
			return nil
		}
		return sc.Err()
	case "addons":
		var as []struct {
			Name, Service, Resource string
			Vars                    []string
		}
		if err := c.call(ctx, "GET", base+"/addons", nil, &as); err != nil {
			return err
		}
		for _, ad := range as {
			fmt.Fprintf(c.out, "%s\t%s\t%s\t%s\n", ad.Name, ad.Service, ad.Resource, strings.Join(ad.Vars, ","))
		}
		return nil
	case "addons:create":
		if err := nargs(1); err != nil {
			return err
		}
		body, _ := json.Marshal(addonBody{Service: pos[0], Plan: *plan, As: *as})
		var ad struct {
			Name string
			Vars []string
		}
		if err := c.streamCall(ctx, "POST", base+"/addons", bytes.NewReader(body), "application/json", &ad); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Created %s as %s (%s)\n", pos[0], ad.Name, strings.Join(ad.Vars, ", "))
		return nil
	case "addons:destroy":
		if err := nargs(1); err != nil {
			return err
		}
		if err := c.streamCall(ctx, "DELETE", base+"/addons/"+url.PathEscape(pos[0]), nil, "", nil); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Destroyed %s\n", pos[0])
		return nil
	case "domains":
		var ds []string
		if err := c.call(ctx, "GET", base+"/domains", nil, &ds); err != nil {
			return err
		}
		for _, d := range ds {
			fmt.Fprintln(c.out, d)
		}
		return nil
	case "domains:add":
		if err := nargs(1); err != nil {
			return err
		}
		return c.call(ctx, "POST", base+"/domains", domainBody{Domain: pos[0]}, nil)
	case "domains:remove":
		if err := nargs(1); err != nil {
			return err
		}
		return c.call(ctx, "DELETE", base+"/domains/"+url.PathEscape(pos[0]), nil, nil)
	}
	return &usageError{fmt.Sprintf("unknown command %q", verb)}
}

// tarDir writes dir as a gzip-compressed tar stream. Symlinks go in as
// links; the builder decides whether they are safe.
func tarDir(dir string, w io.Writer) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
