package report

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// A schedule that begins on a host after code was run on it remotely is,
// most likely, the implant that code installed: hunt alone judges it on
// its timing and the population (and an inside destination on a web port
// scores little: an intranet server), but the incident knows what came
// before. Such a channel is raised to high and its destination, inside or
// out, becomes a controller.
const implantSeverity = hunt.High

// implantScore is the least score of a raised channel: the bottom of high.
const implantScore = 0.6

// implantStart: an implant checks in as soon as the code that installed it
// runs (its first sleep comes after the first check-in), so within this of
// the execution.
const implantStart = 2 * time.Minute

// execution is the first remote execution on a host the incident saw.
type execution struct {
	at  time.Time
	by  netip.Addr
	why string // the operation in a few words
}

// executions maps each host code was run on remotely (an operation whose
// target phase is executed-on) to the first such operation.
func (b *builder) executions() map[netip.Addr]execution {
	out := map[netip.Addr]execution{}
	for i := range b.in.Operations {
		op := &b.in.Operations[i]
		if op.Noise || !op.Src.IsValid() || !op.Dst.IsValid() || targetPhase(op.Phase) != PhaseExecutedOn {
			continue
		}
		if b.in.Allowed != nil && b.in.Allowed(op.Src.Unmap(), "") {
			continue
		}
		dst := op.Dst.Unmap()
		if e, ok := out[dst]; !ok || op.Time.Before(e.at) {
			out[dst] = execution{at: op.Time, by: op.Src.Unmap(), why: opSummary(op)}
		}
	}
	return out
}

// raiseImplants raises the outbound and internal schedules that began on a
// host after its first remote execution, and returns the indices of the
// findings it raised. The findings are the caller's copy.
func (b *builder) raiseImplants(fs []hunt.Finding) map[int]bool {
	ex := b.executions()
	if len(ex) == 0 {
		return nil
	}
	raised := map[int]bool{}
	for i := range fs {
		f := &fs[i]
		if f.Kind != hunt.KindChannel || !f.Beacon || f.Direction == hunt.Inbound || f.Severity >= implantSeverity {
			continue
		}
		e, ok := ex[f.Src.Unmap()]
		if !ok || f.FirstSeen.Before(e.at) || f.Dst.Unmap() == e.by {
			// Before the execution it is the host's own habit; to the host
			// that ran the code it is that session's traffic.
			continue
		}
		period := time.Duration(f.PeriodSec * float64(time.Second))
		if e.at.Sub(b.in.Hunt.First) < period && f.FirstSeen.Sub(e.at) > implantStart {
			// The data began less than a period before the execution, so
			// a schedule already running would not have shown yet; only
			// one that starts right after the execution is taken for it.
			continue
		}
		f.Score = max(f.Score, implantScore)
		f.Severity = max(hunt.SeverityOf(f.Score), implantSeverity)
		f.Reasons = append(f.Reasons, fmt.Sprintf("began %s after %s ran code on this host (%s): the schedule of what it installed",
			f.FirstSeen.Sub(e.at).Round(time.Second), e.by, e.why))
		raised[i] = true
	}
	return raised
}

// raiseImplantHosts lifts the host finding of each source whose channel was
// raised to the channel's severity, as hunt's host findings carry their
// strongest channel.
func raiseImplantHosts(fs []hunt.Finding, raised map[int]bool) {
	for i := range raised {
		c := &fs[i]
		for j := range fs {
			h := &fs[j]
			if h.Kind == hunt.KindHost && h.Src == c.Src && h.Severity < c.Severity {
				h.Score, h.Severity = max(h.Score, c.Score), c.Severity
				h.Beacon = true
			}
		}
	}
}
