package main

import (
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// newFlowTable builds the flow records kept beside each shard.
func newFlowTable() store.FlowTable { return flow.NewBuilder(flow.Options{}) }
