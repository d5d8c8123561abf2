#!/usr/bin/env bash
# The starter model's training on the GPU machine, in two phases so that one
# training run can outlast the device tool's 10-minute command limit (the
# run goes on in its own process session between the calls; the machine
# stays warm if the second call follows at once):
#
#   PHASE=start   write the shapes dataset, time a few steps to size the run,
#                 start `glimmer train` in the background and follow it for
#                 FOLLOW seconds
#   PHASE=finish  follow the run until it ends (or stop it after FOLLOW
#                 seconds: Ctrl-C saves), score the saved snapshots and the
#                 final model with `glimmer eval` on the GPU, and pack the
#                 model, its state, its log and a picture sheet into $OUT
#
# Both phases in one call: PACK=0 PHASE=start ...; PHASE=finish .... If the
# machine was given back between the calls, PHASE=finish resumes the run
# that PHASE=start packed ($OUT/run.tar.part-* and steps.txt, carried back
# in .train/). Carry .gl/ (the GL loader debs, docs/gpu.md) and
# .train/glimmer (go build -tags egl,headless -o .train/glimmer .).
#
# The starter's runs (README) were, in order: PACK=0 PHASE=start BUDGET=440
# FOLLOW=450 VAE_STEPS=600 NOISE_OFFSET=0, then PHASE=finish; and, from
# the state the CPU continued, PHASE=finish NOISE_OFFSET=0.2 FOLLOW=110;
# then, from that state packed into .train/ with 5764 in steps.txt,
# PHASE=finish FOLLOW=430 LR=6e-4 (3,000 more steps on a new schedule).
set -u
if [ "${SETUP:-1}" = 1 ]; then # SETUP=0 (and BACKEND=cpu) tries the script out here
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
G=$PWD/.train/glimmer
W=/tmp/starter-run # kept on the machine between the two calls
OUT=${OUT:-/tmp/out}
BATCH=${BATCH:-256}         # diffusion images per step
VAE_BATCH=${VAE_BATCH:-64}  # autoencoder images per step
VAE_STEPS=${VAE_STEPS:-1000}
LR=${LR:-1e-3}
NOISE_OFFSET=${NOISE_OFFSET:-0.2} # offset noise (glimmer train --noise-offset; 0: none)
BUDGET=${BUDGET:-1000}      # seconds for the whole training run
FOLLOW=${FOLLOW:-480}       # seconds this call follows the run (finish: then stops it)
BACKEND=${BACKEND:-gl}
mkdir -p "$OUT"

# rate FILE STAGE: seconds per step of a stage in a train summary.
rate() { awk -v s="$2" '$1 == s { for (i = 1; i <= NF; i++) if ($i == "s/step") print $(i-1) }' "$1"; }

pack() { # the run as saved so far (model, state, log), in parts $OUT can take
  tar -C $W --exclude ".*.tmp*" -cf - starter train.log | split -b 15m - $OUT/run.tar.part-
}

follow() { # follow PID for at most $1 seconds, printing progress
  local until=$(( $(date +%s) + $1 ))
  while kill -0 "$(cat $W/pid)" 2>/dev/null && [ "$(date +%s)" -lt "$until" ]; do
    sleep 30
    echo "$(date +%T) $(tr '\r' '\n' < $W/train.log | grep -v '^$' | tail -1)"
  done
}

# launch [--resume]: start the training run in its own process session,
# with a snapshot of the saved model every SNAP seconds.
launch() {
  RESUME=${1:-}
  cat > $W/run.sh <<EOF
#!/usr/bin/env bash
# Halve the learning rate and start again if a run diverges.
lr=$LR
for try in 1 2 3; do
  [ -z "$RESUME" ] && rm -rf $W/starter
  start=\$(date +%s)
  $G train --mode full --data $W/shapes --out $W/starter --steps $STEPS --vae-steps $VAE_STEPS \\
    --batch $BATCH --vae-batch $VAE_BATCH --lr \$lr --noise-offset $NOISE_OFFSET --seed 1 --save-every 500 --backend $BACKEND $RESUME >> $W/train.log 2>&1
  rc=\$?
  echo "train exit \$rc after \$(( \$(date +%s) - start )) s at lr \$lr" >> $W/train.log
  tail -3 $W/train.log | grep -q diverged && [ -z "$RESUME" ] || break
  lr=\$(awk -v l=\$lr 'BEGIN { print l / 2 }')
done
echo done > $W/finished
EOF
  chmod +x $W/run.sh
  setsid nohup $W/run.sh > /dev/null 2>&1 < /dev/null &
  echo $! > $W/pid
  # Snapshots of the saved model every 4 minutes, scored after the run.
  setsid nohup bash -c "for i in 1 2 3 4; do sleep ${SNAP:-240}; [ -f $W/finished ] && break; mkdir -p $W/snap-\$i; cp -r $W/starter/* $W/snap-\$i/ 2>/dev/null; rm -f $W/snap-\$i/train_state.safetensors; grep -o 'diffusion [0-9]*/' $W/train.log | tail -1 > $W/snap-\$i/at.txt; done" > /dev/null 2>&1 < /dev/null &
}

case "${PHASE:-start}" in
start)
  rm -rf "$W" && mkdir -p "$W"
  nvidia-smi -L
  $G dataset --out $W/shapes --count "${COUNT:-20000}" --size 64 --seed 1
  $G dataset --out $W/probe-data --count 1024 --size 64 --seed 2 >/dev/null
  echo "== speed probe: batch $BATCH (autoencoder $VAE_BATCH)"
  GLIMMER_CPUPROFILE=$OUT/probe-cpu.prof $G train --mode full --data $W/probe-data --out $W/probe \
    --steps "${PROBE_STEPS:-40}" --vae-steps "${PROBE_VAE_STEPS:-20}" --batch "$BATCH" --vae-batch "$VAE_BATCH" --save-every 1000 --backend $BACKEND \
    2>/dev/null | tee $W/probe.txt
  vr=$(rate $W/probe.txt vae); dr=$(rate $W/probe.txt diffusion)
  # The run: the autoencoder's steps, then as many diffusion steps as fit
  # the budget (less a minute for encoding the latents and saving).
  STEPS=${STEPS:-$(awk -v b="$BUDGET" -v n="$VAE_STEPS" -v v="$vr" -v d="$dr" 'BEGIN { print int((b - 60 - n*v) / d / 100) * 100 }')}
  echo "== training: $VAE_STEPS autoencoder steps at ${vr}s, $STEPS diffusion steps at ${dr}s, lr $LR"
  launch
  follow "$FOLLOW"
  if [ "${PACK:-1}" = 1 ]; then # PACK=0 when PHASE=finish follows in the same call
    echo "$STEPS" > $OUT/steps.txt
    pack
  fi
  ;;
finish)
  if [ ! -f $W/pid ]; then # a fresh machine: resume the run packed by the last call
    mkdir -p $W
    $G dataset --out $W/shapes --count "${COUNT:-20000}" --size 64 --seed 1
    cat .train/run.tar.part-* | tar -C $W -xf -
    STEPS=$(cat .train/steps.txt)
    launch --resume
  fi
  end=$(( $(date +%s) + FOLLOW ))
  while [ ! -f $W/finished ] && [ "$(date +%s)" -lt $end ]; do follow 60; sleep 1; done
  if [ ! -f $W/finished ]; then # out of time: Ctrl-C saves the model as it is
    echo "== stopping the run at $(tr '\r' '\n' < $W/train.log | grep -v '^$' | tail -1)"
    pkill -INT -f "glimmer train"
    while [ ! -f $W/finished ]; do sleep 1; done
  fi
  tr '\r' '\n' < $W/train.log | grep -v '^$' | awk 'NR % 100 == 1' | tail -30
  tail -8 $W/train.log
  cp $W/train.log $OUT/train.log
  for s in $W/snap-*; do
    [ -f $s/unet/diffusion_pytorch_model.safetensors ] || continue
    echo "== snapshot $(basename $s) at $(cat $s/at.txt)"
    $G eval --model $s --backend $BACKEND --seeds "${SNAP_SEEDS:-2}" 2>/dev/null | head -2
  done
  echo "== final model"
  $G eval --model $W/starter --backend $BACKEND --seeds "${EVAL_SEEDS:-4}" --sheet $OUT/sheet.png 2>/dev/null
  tar -C $W -cf $OUT/starter.tar --exclude train_state.safetensors starter
  tar -C $W -cf - starter/train_state.safetensors | split -b 15m - $OUT/state.tar.part-
  ls -la $OUT
  ;;
esac
