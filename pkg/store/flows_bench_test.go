package store

import (
	"os"
	"strconv"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

func benchFlows() FlowTable { return flow.NewBuilder(flow.Options{}) }

func blockSizeBench() int {
	if v := os.Getenv("NWHEALTH_BENCH_BLOCK"); v != "" {
		n, _ := strconv.Atoi(v)
		return n
	}
	return 64 << 10 // capture's block size
}
