package cpu

import (
	"testing"

	"glimmer/engine"
	"glimmer/engine/conformance"
)

// TestConformanceSplit runs the suite with every op split over three
// goroutines however small it is: the suite's sizes are too small to reach
// the parallel paths otherwise, and three workers cut ranges unevenly.
func TestConformanceSplit(t *testing.T) {
	conformance.Run(t, func() engine.Backend { return &Backend{workers: 3, minWork: 1} })
}
