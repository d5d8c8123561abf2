#!/usr/bin/env bash
# Training on the GPU machine: the backward ops' conformance on its driver,
# then the starter model's training speed on the GL backend against the
# CPU backend (same configuration, same machine), then (with
# TRAIN_SECONDS > 0) the starter training itself, interrupted with SIGINT
# after that many seconds so it saves and can resume in a later call.
# Carry .gl/ and .train/ holding glimmer (go build -tags egl,headless -o
# .train/glimmer .), gl.test (go test -c -tags egl -o .train/gl.test
# ./engine/gl) and, to resume, starter.tar from an earlier call; the run
# comes back to $OUT as starter.tar.part-*.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
G=./.train/glimmer
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ "${CONFORMANCE:-1}" = 1 ]; then
  ./.train/gl.test -test.run 'TestGradConformance' 2>&1 | tail -5
fi
$G dataset --out /tmp/shapes --count "${COUNT:-4000}" --size 64 --seed 1 >/dev/null
if [ "${SPEED:-1}" = 1 ]; then
  echo "== GL"
  $G train --mode full --data /tmp/shapes --out /tmp/speed-gl --steps 60 --vae-steps 40 --batch 32 --backend gl 2>/dev/null
  echo "== CPU ($(nproc) cores)"
  $G train --mode full --data /tmp/shapes --out /tmp/speed-cpu --steps 6 --vae-steps 4 --batch 32 --backend cpu 2>/dev/null
fi
if [ "${TRAIN_SECONDS:-0}" -gt 0 ]; then
  RESUME=""
  [ -f .train/starter.tar ] && { tar -C /tmp -xf .train/starter.tar; RESUME=--resume; }
  start=$(date +%s)
  timeout -s INT "$TRAIN_SECONDS" $G train --mode full --data /tmp/shapes --out /tmp/starter \
    --steps "${STEPS:-6000}" --vae-steps "${VAE_STEPS:-1500}" --batch "${BATCH:-32}" --seed 1 --save-every 500 --backend gl $RESUME 2>&1 | tr '\r' '\n' | grep -v '^$' | awk 'NR%50==1' | tail -40
  echo "trained for $(( $(date +%s) - start )) s"
  tar -C /tmp -cf - starter | split -b 15m - "$OUT/starter.tar.part-"
fi
