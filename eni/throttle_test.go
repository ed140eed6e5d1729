package eni

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestThrottleTimeLeft(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    map[string][]string
		want time.Duration
	}{
		{"none", nil, 0},
		{"api window closed", map[string][]string{"X-Ratelimit-User-Api": {"Limit:400,Remain:0,TimeLeft:23456,Reset:1700000000"}}, 23456 * time.Millisecond},
		{"the longer of both", map[string][]string{"x-ratelimit-user-api": {"Limit:400,Remain:0,TimeLeft:1000"}, "x-ratelimit-user": {"Limit:9000,Remain:0,TimeLeft:5000"}}, 5 * time.Second},
		{"calls left", map[string][]string{"x-ratelimit-user-api": {"Limit:400,Remain:12,TimeLeft:23456"}}, 0},
		{"garbage", map[string][]string{"x-ratelimit-user-api": {"TimeLeft:soon"}}, 0},
	} {
		if got := throttleTimeLeft(tc.h); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// throttleOnce answers the first request Throttling.User with the window's
// TimeLeft, like Alibaba's OpenAPI, and the next ones normally, recording
// when each came.
type throttleOnce struct {
	left  time.Duration
	times []time.Time
}

func (r *throttleOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	r.times = append(r.times, time.Now())
	rec := httptest.NewRecorder()
	if len(r.times) == 1 {
		rec.Header().Set("x-ratelimit-user-api", fmt.Sprintf("Limit:400,Remain:0,TimeLeft:%d,Reset:1", r.left.Milliseconds()))
		rec.WriteHeader(http.StatusBadRequest)
		rec.WriteString(`{"RequestId":"r1","Code":"Throttling.User","Message":"Request was denied due to user flow control."}`)
		return rec.Result(), nil
	}
	rec.WriteString(`{"RequestId":"r2","VSwitches":{"VSwitch":[{"VSwitchId":"vsw-1","CidrBlock":"10.0.0.0/24"}]}}`)
	return rec.Result(), nil
}

// Ensure a throttled call waits until the API's window reopens (TimeLeft)
// instead of retrying into the closed window, and gives up at once when its
// caller cannot wait that long.
func TestAlibabaClient_Throttled_WaitsTimeLeft(t *testing.T) {
	rt := &throttleOnce{left: 700 * time.Millisecond}
	c, err := NewAlibabaClient(AlibabaOptions{RegionID: "cn-hangzhou", Transport: rt, Credentials: Credentials{AccessKeyID: "a", AccessKeySecret: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VSwitches(context.Background(), "vsw-1"); err != nil {
		t.Fatal(err)
	}
	if len(rt.times) != 2 || rt.times[1].Sub(rt.times[0]) < rt.left {
		t.Fatalf("retried after %v, want at least the window's %s", rt.times[1].Sub(rt.times[0]), rt.left)
	}

	rt = &throttleOnce{left: time.Minute}
	c, _ = NewAlibabaClient(AlibabaOptions{RegionID: "cn-hangzhou", Transport: rt, Credentials: Credentials{AccessKeyID: "a", AccessKeySecret: "b"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.VSwitches(ctx, "vsw-1")
	if !errors.Is(err, ErrThrottled) || time.Since(start) > time.Second || len(rt.times) != 1 {
		t.Fatalf("err %v after %s and %d calls; want ErrThrottled at once", err, time.Since(start), len(rt.times))
	}
}
