package httpaddon

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/slipwayhq/slipway/addons"
)

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Provisioner does the work. Required.
	Provisioner addons.Provisioner
	// Authorize decides whether a request may proceed; it is called before
	// anything else. Required: use BearerAuth, or a function of your own.
	Authorize func(r *http.Request) bool
	// MaxRequestBytes bounds request bodies. Zero means 64 KiB.
	MaxRequestBytes int64
	// Logger receives one line per failed request, never a credential. If
	// nil, nothing is logged.
	Logger *slog.Logger
}

// Handler serves an addons.Provisioner over the protocol described in the
// package documentation, so that a provider written in Go (or a platform
// exposing its own provisioners to another) needs no HTTP code of its own.
// Mount it under the base URL with http.StripPrefix.
type Handler struct {
	cfg HandlerConfig
	mux *http.ServeMux
	log *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// NewHandler checks cfg and returns a handler.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Provisioner == nil || cfg.Authorize == nil {
		return nil, errors.New("httpaddon: HandlerConfig.Provisioner and Authorize are required")
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 64 << 10
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.mux.HandleFunc("POST /resources", h.provision)
	h.mux.HandleFunc("GET /resources/{id}", h.get)
	h.mux.HandleFunc("DELETE /resources/{id}", h.deprovision)
	h.mux.HandleFunc("PUT /resources/{id}/plan", h.changePlan)
	h.mux.HandleFunc("POST /resources/{id}/rotate", h.rotate)
	h.mux.HandleFunc("POST /resources/{id}/retire", h.retire)
	return h, nil
}

// BearerAuth returns an Authorize function that accepts requests bearing
// token, compared in constant time.
func BearerAuth(token addons.Secret) func(*http.Request) bool {
	want := []byte("Bearer " + token.Reveal())
	return func(r *http.Request) bool {
		return !token.IsZero() && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.cfg.Authorize(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="slipway-addons"`)
		writeError(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxRequestBytes)
	h.mux.ServeHTTP(w, r)
}

type outResource struct {
	ID        string            `json:"id"`
	App       string            `json:"app"`
	Plan      string            `json:"plan"`
	Config    map[string]string `json:"config"`
	CreatedAt time.Time         `json:"created_at,omitzero"`
}

func writeResource(w http.ResponseWriter, status int, res addons.Resource) {
	out := outResource{ID: res.ID, App: res.App, Plan: res.Plan, Config: make(map[string]string, len(res.Config)), CreatedAt: res.CreatedAt}
	for k, v := range res.Config {
		out.Config[k] = v.Reveal()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, status int, code string) {
	var e wireError
	e.Error.Code = code
	e.Error.Message = http.StatusText(status)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

// fail answers err with its status and code; the message is the status
// text, never the error's own text.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, addons.ErrInvalidRequest):
		status, code = http.StatusBadRequest, "invalid_request"
	case errors.Is(err, addons.ErrInvalidName):
		status, code = http.StatusUnprocessableEntity, "invalid_name"
	case errors.Is(err, addons.ErrUnknownPlan):
		status, code = http.StatusUnprocessableEntity, "unknown_plan"
	case errors.Is(err, addons.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, addons.ErrConflict):
		status, code = http.StatusConflict, "conflict"
	case errors.Is(err, addons.ErrUnsupported):
		status, code = http.StatusNotImplemented, "unsupported"
	case addons.IsRetryable(err):
		status, code = http.StatusServiceUnavailable, "unavailable"
	}
	if status >= 500 {
		h.log.Warn("addon request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeError(w, status, code)
}

func (h *Handler) provision(w http.ResponseWriter, r *http.Request) {
	var body provisionBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request")
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" && key != body.RequestID {
		writeError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	res, err := h.cfg.Provisioner.Provision(r.Context(), addons.Request{RequestID: body.RequestID, App: body.App, Plan: body.Plan})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeResource(w, http.StatusCreated, res)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	res, err := h.cfg.Provisioner.Resource(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeResource(w, http.StatusOK, res)
}

func (h *Handler) deprovision(w http.ResponseWriter, r *http.Request) {
	if err := h.cfg.Provisioner.Deprovision(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) changePlan(w http.ResponseWriter, r *http.Request) {
	pc, ok := h.cfg.Provisioner.(addons.PlanChanger)
	if !ok || !h.cfg.Provisioner.Capabilities().PlanChange {
		writeError(w, http.StatusNotImplemented, "unsupported")
		return
	}
	var body struct {
		Plan string `json:"plan"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	res, err := pc.ChangePlan(r.Context(), r.PathValue("id"), body.Plan)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeResource(w, http.StatusOK, res)
}

func (h *Handler) rotator(w http.ResponseWriter) addons.Rotator {
	rot, ok := h.cfg.Provisioner.(addons.Rotator)
	if !ok || !h.cfg.Provisioner.Capabilities().Rotation {
		writeError(w, http.StatusNotImplemented, "unsupported")
		return nil
	}
	return rot
}

func (h *Handler) rotate(w http.ResponseWriter, r *http.Request) {
	rot := h.rotator(w)
	if rot == nil {
		return
	}
	res, err := rot.Rotate(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeResource(w, http.StatusOK, res)
}

func (h *Handler) retire(w http.ResponseWriter, r *http.Request) {
	rot := h.rotator(w)
	if rot == nil {
		return
	}
	if err := rot.Retire(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
