package train_test

import (
	"context"
	"path/filepath"
	"testing"

	"glimmer/engine/cpu"
	"glimmer/engine/dataset"
	"glimmer/engine/train"
)

func TestFullSmoke(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := dataset.WriteFolder(data, 16, 64, 1, dataset.Train); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model")
	cfg := train.Config{Mode: train.Full, Data: data, Out: out, Steps: 4, VAESteps: 3, BatchSize: 4, SaveEvery: 2}
	err := train.Run(context.Background(), cpu.New(), cfg, func(e train.Event) { t.Logf("%+v", e) })
	if err != nil {
		t.Fatal(err)
	}
}
