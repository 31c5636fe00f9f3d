package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/internal/names"
	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/paas"
	"github.com/slipwayhq/slipway/paas/gitpush"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/scale"
)

// The control API: JSON over HTTP, every request with
// "Authorization: Bearer <token>" (git pushes use the token as the basic
// auth password). Long operations (deploy, config changes, scale, rollback,
// run, logs) answer with a stream of JSON lines, application/x-ndjson:
//
//	{"out":"-----> Building counter"}     progress, as it happens
//	{"done":{...}}                        the result, last
//	{"error":"...","code":409}            or the failure, last
type api struct {
	p        *paas.Platform
	token    string
	shutdown chan<- struct{}
	mux      *http.ServeMux
}

// maxUpload bounds a deploy's source upload.
const maxUpload = 256 << 20

func newAPI(p *paas.Platform, token string, git *gitpush.Server, shutdown chan<- struct{}) http.Handler {
	a := &api{p: p, token: token, shutdown: shutdown, mux: http.NewServeMux()}
	m := a.mux
	m.Handle("/git/", git)
	m.HandleFunc("GET /v1/apps", a.auth(a.listApps))
	m.HandleFunc("POST /v1/apps", a.auth(a.createApp))
	m.HandleFunc("DELETE /v1/apps/{app}", a.auth(a.destroyApp))
	m.HandleFunc("POST /v1/apps/{app}/deploy", a.auth(a.deploy))
	m.HandleFunc("GET /v1/apps/{app}/config", a.auth(a.getConfig))
	m.HandleFunc("PATCH /v1/apps/{app}/config", a.auth(a.setConfig))
	m.HandleFunc("GET /v1/apps/{app}/ps", a.auth(a.ps))
	m.HandleFunc("POST /v1/apps/{app}/scale", a.auth(a.scale))
	m.HandleFunc("GET /v1/apps/{app}/releases", a.auth(a.releases))
	m.HandleFunc("POST /v1/apps/{app}/rollback", a.auth(a.rollback))
	m.HandleFunc("POST /v1/apps/{app}/run", a.auth(a.run))
	m.HandleFunc("GET /v1/apps/{app}/logs", a.auth(a.logs))
	m.HandleFunc("GET /v1/apps/{app}/addons", a.auth(a.listAddons))
	m.HandleFunc("POST /v1/apps/{app}/addons", a.auth(a.createAddon))
	m.HandleFunc("DELETE /v1/apps/{app}/addons/{name}", a.auth(a.destroyAddon))
	m.HandleFunc("GET /v1/apps/{app}/domains", a.auth(a.domains))
	m.HandleFunc("POST /v1/apps/{app}/domains", a.auth(a.addDomain))
	m.HandleFunc("DELETE /v1/apps/{app}/domains/{domain}", a.auth(a.removeDomain))
	m.HandleFunc("POST /v1/shutdown", a.auth(a.stopServer))
	return m
}

func checkToken(r *http.Request, token string) error {
	got := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		got = strings.TrimPrefix(h, "Bearer ")
	} else if _, pw, ok := r.BasicAuth(); ok {
		got = pw
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return gitpush.ErrUnauthorized
	}
	return nil
}

func (a *api) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkToken(r, a.token); err != nil {
			writeError(w, http.StatusUnauthorized, errors.New("invalid or missing token (see the token file in the server's state directory)"))
			return
		}
		if app := r.PathValue("app"); app != "" {
			if err := names.App(app); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
		}
		h(w, r)
	}
}

// status maps the parts' errors to HTTP statuses; the CLI maps them back
// to exit codes.
func status(err error) int {
	switch {
	case errors.Is(err, release.ErrAppNotFound), errors.Is(err, release.ErrReleaseNotFound),
		errors.Is(err, paas.ErrNoAddon), errors.Is(err, paas.ErrUnknownService), errors.Is(err, paas.ErrNotDeployed):
		return http.StatusNotFound
	case errors.Is(err, release.ErrDeployInProgress), errors.Is(err, release.ErrAppExists),
		errors.Is(err, paas.ErrDomainTaken), errors.Is(err, addons.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, release.ErrInvalid), errors.Is(err, release.ErrInvalidConfig), errors.Is(err, names.ErrInvalid),
		errors.Is(err, release.ErrRollbackToFailed), errors.Is(err, release.ErrNotRunnable),
		errors.Is(err, scale.ErrInvalidFormation), errors.Is(err, addons.ErrUnknownPlan), errors.Is(err, addons.ErrInvalidName),
		errors.Is(err, addons.ErrInvalidRequest):
		return http.StatusBadRequest
	case errors.Is(err, build.ErrNoBuildStrategy), errors.Is(err, build.ErrInvalidProcfile), errors.Is(err, build.ErrUnsafeSource),
		errors.Is(err, build.ErrSourceTooLarge), errors.Is(err, build.ErrStepFailed),
		errors.Is(err, release.ErrReleasePhaseFailed), errors.Is(err, release.ErrUnhealthy), errors.Is(err, release.ErrRolledBack):
		return http.StatusUnprocessableEntity
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, errorBody{Error: err.Error(), Code: code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

// stream is a response of JSON lines. Its Write turns output into "out"
// lines, one per line of text, flushed at once so the client sees progress
// as it happens.
type stream struct {
	mu  sync.Mutex
	w   http.ResponseWriter
	enc *json.Encoder
	buf []byte
}

func newStream(w http.ResponseWriter) *stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	return &stream{w: w, enc: json.NewEncoder(w)}
}

func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	for {
		i := strings.IndexByte(string(s.buf), '\n')
		if i < 0 {
			break
		}
		s.line(string(s.buf[:i]))
		s.buf = s.buf[i+1:]
	}
	return len(p), nil
}

func (s *stream) line(text string) {
	s.enc.Encode(map[string]string{"out": strings.TrimRight(text, "\r")})
	http.NewResponseController(s.w).Flush()
}

// end writes the last line: the result, or the error.
func (s *stream) end(v any, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) > 0 {
		s.line(string(s.buf))
		s.buf = nil
	}
	if err != nil {
		s.enc.Encode(errorBody{Error: err.Error(), Code: status(err)})
	} else {
		s.enc.Encode(map[string]any{"done": v})
	}
	http.NewResponseController(s.w).Flush()
}

type appBody struct {
	Name string `json:"name"`
}

type appInfo struct {
	Name      string    `json:"name"`
	Current   int       `json:"current"`
	Latest    int       `json:"latest"`
	CreatedAt time.Time `json:"created_at"`
}

func (a *api) listApps(w http.ResponseWriter, r *http.Request) {
	apps, err := a.p.Apps(r.Context())
	if err != nil {
		writeError(w, status(err), err)
		return
	}
	out := make([]appInfo, len(apps))
	for i, ap := range apps {
		out[i] = appInfo{Name: ap.Name, Current: ap.Current, Latest: ap.Latest, CreatedAt: ap.CreatedAt}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) createApp(w http.ResponseWriter, r *http.Request) {
	var b appBody
	if !readJSON(w, r, &b) {
		return
	}
	if err := a.p.CreateApp(r.Context(), b.Name); err != nil {
		writeError(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, appInfo{Name: b.Name})
}

func (a *api) destroyApp(w http.ResponseWriter, r *http.Request) {
	if err := a.p.DestroyApp(r.Context(), r.PathValue("app")); err != nil {
		writeError(w, status(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type releaseInfo struct {
	Version     int       `json:"version"`
	Status      string    `json:"status"`
	Cause       string    `json:"cause"`
	Description string    `json:"description"`
	Image       string    `json:"image"`
	Failure     string    `json:"failure,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

func infoOf(r release.Release) releaseInfo {
	return releaseInfo{Version: r.Version, Status: string(r.Status), Cause: string(r.Cause), Description: r.Description,
		Image: r.Image.Digest, Failure: r.FailureReason, CreatedAt: r.CreatedAt}
}

// deploy builds the uploaded tar stream (optionally gzip-compressed) and
// deploys it.
func (a *api) deploy(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if _, err := a.p.App(r.Context(), app); err != nil {
		writeError(w, status(err), err)
		return
	}
	body := http.MaxBytesReader(w, r.Body, maxUpload)
	s := newStream(w)
	rel, err := a.p.Deploy(r.Context(), app, build.Source{Tar: bufio.NewReader(body)}, paas.DeployOptions{
		Output: s, Description: r.URL.Query().Get("description"),
	})
	s.end(infoOf(rel), err)
}

func (a *api) getConfig(w http.ResponseWriter, r *http.Request) {
	cfg, err := a.p.Config(r.Context(), r.PathValue("app"))
	if err != nil {
		writeError(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, cfg)
}

type configBody struct {
	Set   map[string]string `json:"set"`
	Unset []string          `json:"unset"`
}

func (a *api) setConfig(w http.ResponseWriter, r *http.Request) {
	var b configBody
	if !readJSON(w, r, &b) {
		return
	}
	s := newStream(w)
	rel, err := a.p.SetConfig(r.Context(), r.PathValue("app"), b.Set, b.Unset, s)
	s.end(infoOf(rel), err)
}

type instanceInfo struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Index     int       `json:"index"`
	Release   int       `json:"release"`
	State     string    `json:"state"`
	Healthy   bool      `json:"healthy"`
	Addr      string    `json:"addr,omitempty"`
	Restarts  int       `json:"restarts"`
	StartedAt time.Time `json:"started_at"`
	LastExit  string    `json:"last_exit,omitempty"`
}

func (a *api) ps(w http.ResponseWriter, r *http.Request) {
	is, err := a.p.Instances(r.Context(), r.PathValue("app"))
	if err != nil {
		writeError(w, status(err), err)
		return
	}
	out := make([]instanceInfo, 0, len(is))
	for _, in := range is {
		if in.State == scale.StateStopped {
			continue
		}
		ii := instanceInfo{ID: in.ID, Type: in.ProcessType, Index: in.Index, Release: in.Release, State: string(in.State),
			Healthy: in.Healthy, Addr: in.Addr, Restarts: in.Restarts, StartedAt: in.StartedAt}
		if in.LastExit != nil {
			ii.LastExit = in.LastExit.Reason
		}
		out = append(out, ii)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) scale(w http.ResponseWriter, r *http.Request) {
	var counts map[string]int
	if !readJSON(w, r, &counts) {
		return
	}
	if err := a.p.Scale(r.Context(), r.PathValue("app"), counts); err != nil {
		writeError(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, counts)
}

func (a *api) releases(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	rs, err := a.p.Releases(r.Context(), r.PathValue("app"), limit)
	if err != nil {
		writeError(w, status(err), err)
		return
	}
	out := make([]releaseInfo, len(rs))
	for i, rel := range rs {
		out[i] = infoOf(rel)
	}
	writeJSON(w, http.StatusOK, out)
}

type rollbackBody struct {
	Version int `json:"version"`
}

func (a *api) rollback(w http.ResponseWriter, r *http.Request) {
	var b rollbackBody
	if !readJSON(w, r, &b) {
		return
	}
	s := newStream(w)
	rel, err := a.p.Rollback(r.Context(), r.PathValue("app"), b.Version, s)
	s.end(infoOf(rel), err)
}

type runBody struct {
	Command  string `json:"command"`
	Timeout  string `json:"timeout"`
	Detached bool   `json:"detached"`
}

type runResult struct {
	ID       string `json:"id"`
	ExitCode int    `json:"exit_code"`
	Reason   string `json:"reason,omitempty"`
}

func (a *api) run(w http.ResponseWriter, r *http.Request) {
	var b runBody
	if !readJSON(w, r, &b) {
		return
	}
	var timeout time.Duration
	if b.Timeout != "" {
		d, err := time.ParseDuration(b.Timeout)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		timeout = d
	}
	s := newStream(w)
	res, err := a.p.Run(r.Context(), r.PathValue("app"), b.Command, paas.RunOptions{Stdout: s, Stderr: s, Timeout: timeout, Detached: b.Detached})
	s.end(runResult{ID: res.ID, ExitCode: res.Exit.Code, Reason: res.Exit.Reason}, err)
}

type logLine struct {
	Time     time.Time `json:"time"`
	Source   string    `json:"source"`
	Type     string    `json:"type,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Text     string    `json:"text"`
}

func (a *api) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tail, _ := strconv.Atoi(q.Get("tail"))
	o := paas.LogOptions{Tail: tail, Follow: q.Get("follow") == "1", Source: q.Get("source"), ProcessType: q.Get("type")}
	app := r.PathValue("app")
	if _, err := a.p.App(r.Context(), app); err != nil {
		writeError(w, status(err), err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	rc := http.NewResponseController(w)
	err := a.p.Logs(r.Context(), app, o, func(l observe.LogLine) error {
		if err := enc.Encode(logLine{Time: l.Time, Source: l.Source, Type: l.ProcessType, Instance: l.Instance, Text: l.Text}); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && !errors.Is(err, context.Canceled) && r.Context().Err() == nil {
		enc.Encode(errorBody{Error: err.Error(), Code: status(err)})
	}
}

type addonBody struct {
	Service string `json:"service"`
	Plan    string `json:"plan"`
	As      string `json:"as"`
}

func (a *api) listAddons(w http.ResponseWriter, r *http.Request) {
	as, err := a.p.Addons(r.Context(), r.PathValue("app"))
	if err != nil {
		writeError(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, as)
}

func (a *api) createAddon(w http.ResponseWriter, r *http.Request) {
	var b addonBody
	if !readJSON(w, r, &b) {
		return
	}
	s := newStream(w)
	ad, err := a.p.CreateAddon(r.Context(), r.PathValue("app"), b.Service, paas.AddonOptions{Plan: b.Plan, As: b.As, Output: s})
	s.end(ad, err)
}

func (a *api) destroyAddon(w http.ResponseWriter, r *http.Request) {
	s := newStream(w)
	err := a.p.DestroyAddon(r.Context(), r.PathValue("app"), r.PathValue("name"), s)
	s.end(r.PathValue("name"), err)
}

func (a *api) domains(w http.ResponseWriter, r *http.Request) {
	ds, err := a.p.Domains(r.Context(), r.PathValue("app"))
	if err != nil {
		writeError(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

type domainBody struct {
	Domain string `json:"domain"`
}

func (a *api) addDomain(w http.ResponseWriter, r *http.Request) {
	var b domainBody
	if !readJSON(w, r, &b) {
		return
	}
	if err := a.p.AddDomain(r.Context(), r.PathValue("app"), b.Domain); err != nil {
		writeError(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, b)
}

func (a *api) removeDomain(w http.ResponseWriter, r *http.Request) {
	if err := a.p.RemoveDomain(r.Context(), r.PathValue("app"), r.PathValue("domain")); err != nil {
		writeError(w, status(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// stopServer stops the server, and with ?apps=stop every app's instances
// first, so that nothing is left running (`minipaas down`). The apps and
// their formations are kept: the next server start brings them back.
func (a *api) stopServer(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("apps") == "stop" {
		if err := a.p.StopAll(r.Context()); err != nil {
			writeError(w, status(err), err)
			return
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "stopping"})
	select {
	case a.shutdown <- struct{}{}:
	default:
	}
}

var _ io.Writer = (*stream)(nil)
