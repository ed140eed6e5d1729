//go:build race

package policy

// raceEnabled: the race detector slows the oracle comparisons tenfold;
// the large sweeps shrink under it (they check semantics, not races).
const raceEnabled = true
