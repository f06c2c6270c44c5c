package pipeline

import (
	"context"
	"errors"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/flowdb"
	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// Fleet is the ClickHouse flow database of many sensors as an input of
// hunt: its rows that Query selects.
type Fleet struct {
	DB    *flowdb.DB
	Query flowdb.Query
}

// HuntFleet fills a hunt model from the flow database (docs/fleet.md,
// Hunting in the engine). ClickHouse groups the rows by address pair and
// sends each pair's records packed, with the fields hunt reads and one
// name per channel and DNS answers apart; the model takes them pair by
// pair through Add, so this process holds one pair at a time and the
// model, never the flow records. A model's state depends on the order of
// records only within a pair (its channels, its destination's clock
// hours) and through DNS answers, which AddAnswer and AddNameAddr set as
// the latest record would, so it scores as it would over the same records
// in time order (a client asking two proxies for one host, or the maps'
// bounds, aside). DNS flow records come whole and in time order from a
// query of their own (DNSRecords), since hunt's DNS model reads every
// question a host asked, and so do ICMP echo records (ICMPRecords), whose
// type the pairs do not carry. Rows that are not valid records are skipped (as Records does).
//
// Bad rows are skipped: the *flowdb.RowError naming them comes back after
// everything else was read.
func HuntFleet(ctx context.Context, f *Fleet, m *hunt.Model) error {
	var bad *flowdb.RowError
	// Pairs thins names to one a channel; DNS needs every question.
	// Pairs carries no ICMP type; the ICMP model needs it.
	m.TakeDNSApart()
	m.TakeICMPApart()
	if err := f.DB.Pairs(ctx, f.Query, func(p *flowdb.Pair) error {
		for i := range p.Records {
			m.Add(&p.Records[i])
		}
		return ctx.Err()
	}); err != nil && !errors.As(err, &bad) {
		return err
	}
	if err := f.DB.DNSAnswers(ctx, f.Query, func(a flowdb.DNSAnswer) { m.AddAnswer(a.Addr, a.Name) }); err != nil {
		return err
	}
	if err := f.DB.NameAddrs(ctx, f.Query, func(a flowdb.NameAddr) { m.AddNameAddr(a.Name, a.Addr) }); err != nil {
		return err
	}
	// Bad DNS rows are bad rows of Pairs too (a row is checked whole):
	// counted once, from Pairs.
	var badDNS *flowdb.RowError
	if err := f.DB.DNSRecords(ctx, f.Query, func(r *flow.Record) error {
		m.AddDNSRecord(r)
		return ctx.Err()
	}); err != nil && !errors.As(err, &badDNS) {
		return err
	}
	if bad == nil && badDNS != nil {
		bad = badDNS
	}
	var badICMP *flowdb.RowError
	if err := f.DB.ICMPRecords(ctx, f.Query, func(r *flow.Record) error {
		m.AddICMPRecord(r)
		return ctx.Err()
	}); err != nil && !errors.As(err, &badICMP) {
		return err
	}
	if bad == nil && badICMP != nil {
		bad = badICMP
	}
	if bad != nil {
		return bad
	}
	return nil
}

// FleetRecords streams the whole flow records that f selects, in time
// order, to sink (the record is reused): for what needs every field, as
// the indicators' retro-hunt does, where HuntFleet sends hunt's only.
func FleetRecords(ctx context.Context, f *Fleet, sink func(*flow.Record)) error {
	return f.DB.Records(ctx, f.Query, func(_, _ string, r *flow.Record) error {
		sink(r)
		return ctx.Err()
	})
}

// FleetDamage takes the bad rows a flow database query skipped (a
// *flowdb.RowError in err) into d; any other error comes back.
func FleetDamage(d *Damage, err error) error {
	var bad *flowdb.RowError
	if !errors.As(err, &bad) {
		return err
	}
	for _, p := range bad.Places {
		d.add("flow database: " + p)
	}
	d.Count += bad.Count - len(bad.Places) // the rows not named
	return nil
}
