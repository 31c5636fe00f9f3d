package redis_test

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/addons/redis"
)

func TestNewValidates(t *testing.T) {
	if _, err := redis.New(redis.Config{}); err == nil {
		t.Error("nil Admin accepted")
	}
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, plans := range [][]redis.Plan{
		{},
		{{Name: ""}},
		{{Name: "a"}, {Name: "a"}},
		{{Name: "a", Deny: []string{"+@all"}}},
		{{Name: "a", Deny: []string{"get ~*"}}},
	} {
		if _, err := redis.New(redis.Config{Admin: c, Plans: plans}); err == nil {
			t.Errorf("plans %+v accepted", plans)
		}
	}
	p, err := redis.New(redis.Config{Admin: c})
	if err != nil {
		t.Fatal(err)
	}
	caps := p.Capabilities()
	if caps.Service != "redis" || caps.DefaultAttachment != "REDIS" || len(caps.Plans) != 2 {
		t.Errorf("capabilities %+v", caps)
	}
}
