package cpu

import (
	"testing"

	"glimmer/engine"
	"glimmer/engine/conformance"
)

// TestGradSplit runs the backward suite with every op split over three
// goroutines however small it is, as TestConformanceSplit does for the
// forward ops: the parallel paths (column chunks of SumTo, blocks of
// LayerNorm's parameter sums, key blocks of attention) are reached and cut
// unevenly.
func TestGradSplit(t *testing.T) {
	conformance.RunGrad(t, func() engine.TrainBackend { return &Backend{workers: 3, minWork: 1} })
}
