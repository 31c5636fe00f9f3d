package redis_test

import (
	"context"
	"fmt"
	"os"

	goredis "github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/redis"
)

// Each app gets REDIS_URL and REDIS_KEY_PREFIX; its user can only touch
// keys that start with the prefix.
func Example() {
	ctx := context.Background()
	opt, err := goredis.ParseURL(os.Getenv("SLIPWAY_REDIS_URL"))
	if err != nil {
		panic(err)
	}
	admin := goredis.NewClient(opt)
	defer admin.Close()
	p, err := redis.New(redis.Config{Admin: admin})
	if err != nil {
		panic(err)
	}
	res, err := p.Provision(ctx, addons.Request{RequestID: "shop-redis-1", App: "shop"})
	if err != nil {
		panic(err)
	}
	ch, err := addons.AttachChange(addons.Attachment{App: "shop", Name: "REDIS", ResourceID: res.ID}, res.Config, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(ch.Set.Keys()) // [REDIS_KEY_PREFIX REDIS_URL]
}
