package httpaddon_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
	"github.com/slipwayhq/slipway/addons/httpaddon"
)

// A provider serves its provisioner with Handler; the platform reaches it
// with Provisioner and needs no provider-specific Go code.
func Example() {
	token := addons.NewSecret("shared-provider-token")
	h, err := httpaddon.NewHandler(httpaddon.HandlerConfig{
		Provisioner: &addontest.Memory{},
		Authorize:   httpaddon.BearerAuth(token),
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/v1", h))
	defer srv.Close()

	p, err := httpaddon.New(httpaddon.Config{
		BaseURL: srv.URL + "/v1",
		Auth:    httpaddon.Auth{Bearer: token},
		Service: "queue",
		Plans:   []addons.Plan{{Name: "small"}},
	})
	if err != nil {
		panic(err)
	}
	res, err := p.Provision(context.Background(), addons.Request{RequestID: "shop-queue-1", App: "shop"})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Plan, res.Config, addons.VarName(p.Capabilities().DefaultAttachment, "URL"))
	// Output: small Config{URL=[redacted]} QUEUE_URL
}
