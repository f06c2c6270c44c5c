package main

import "github.com/nwhealth/nwhealth/pkg/store"

// newFlowTable builds the flow records kept beside each shard. nil until
// the flow builder is wired: the store then writes empty flow files.
var newFlowTable func() store.FlowTable
