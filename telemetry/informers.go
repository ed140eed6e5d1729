package telemetry

import (
	"github.com/veni-cni/veni/kube"
)

// informer is one registered informer's statistics source.
type informer struct {
	name  string
	stats func() kube.InformerStats
}

// RegisterInformer exports the statistics of an informer under the
// resource label name ("pods", "networkpolicies"): stats is called at
// every scrape (kube.Informer's Stats is cheap and safe for concurrent
// use). Registering a name again replaces its source, and its counters
// start over from what the new source says. It may be called at any time,
// from any goroutine.
func (e *Exporter) RegisterInformer(name string, stats func() kube.InformerStats) {
	if e == nil || stats == nil {
		return
	}
	e.informersMu.Lock()
	defer e.informersMu.Unlock()
	for i := range e.informers {
		if e.informers[i].name == name {
			e.informers[i].stats = stats
			return
		}
	}
	e.informers = append(e.informers, informer{name: name, stats: stats})
}

// collectInformers sets the informer metrics from their sources. Held
// under informersMu, so concurrent scrapes do not interleave the counters'
// bookkeeping.
func (e *Exporter) collectInformers() {
	e.informersMu.Lock()
	defer e.informersMu.Unlock()
	for _, inf := range e.informers {
		st := inf.stats()
		synced := 0.0
		if st.Synced {
			synced = 1
		}
		e.m.infSynced.With(inf.name).Set(synced)
		e.m.infObjects.With(inf.name).Set(float64(st.Objects))
		setCounter(e.m.infLists, float64(st.Lists), inf.name)
		setCounter(e.m.infRelists, float64(st.Relists410), inf.name)
		setCounter(e.m.infWatches, float64(st.WatchesOpened), inf.name)
		setCounter(e.m.infWatchErrors, float64(st.WatchErrors), inf.name)
		setCounter(e.m.infEvents, float64(st.Events), inf.name)
		setCounter(e.m.infBookmarks, float64(st.Bookmarks), inf.name)
		e.m.infAddLag.With(inf.name).Set(st.AddLag.Seconds())
		if !st.LastEvent.IsZero() {
			e.m.infLastEvent.With(inf.name).SetToTime(st.LastEvent)
		}
	}
}
