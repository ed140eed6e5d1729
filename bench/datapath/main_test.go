package main

import (
	"os"
	"testing"
)

// envRunMain makes the test binary act as bench-datapath: measure starts
// its own executable for "connrate serve|run", which under go test is the
// test binary.
const envRunMain = "BENCH_DATAPATH_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
