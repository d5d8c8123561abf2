"""Writes the golden files that engine/rng and engine/sample are tested against.

Run where PyTorch and diffusers are importable. The files in testdata were
made on the GPU machine (PyTorch 2.11.0 with MKL, NumPy 2.5.2, Python 3.12,
an AVX-512 Xeon) with diffusers' src/ at commit 58eb52c0 (the reference
fixtures' version) on PYTHONPATH, from this directory:

    PYTHONPATH=/path/to/diffusers/src python3 mkgolden.py \
        ../../rng/testdata/torch_randn.safetensors diffusers_schedulers.safetensors

Every value comes from torch / diffusers themselves; nothing is computed
here except the synthetic "model" that stands in for a U-Net.
"""
import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import save_file

meta = {
    "torch": torch.__version__,
    "numpy": np.__version__,
    "python": platform.python_version(),
    "machine": platform.machine(),
    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
}


def f32(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float32).contiguous()


# ---------------------------------------------------------------- torch.randn
def randn_golden(path):
    t = {}
    seeds = [0, 1, 3, 7, 42, 123456789, 2**32 + 5, 2**64 - 1]
    sizes = [1, 2, 5, 15, 16, 17, 31, 33, 100, 256, 384]
    for s in seeds:
        for n in sizes:
            g = torch.Generator("cpu").manual_seed(s)
            t[f"randn.seed{s}.n{n}"] = torch.randn(n, generator=g, dtype=torch.float32)
    # Large draws: a hash of the float32 bytes and the first/last values.
    for s, n in [(42, 16384), (0, 4 * 96 * 64), (5, 4 * 64 * 64 * 2 + 3)]:
        g = torch.Generator("cpu").manual_seed(s)
        a = torch.randn(n, generator=g, dtype=torch.float32)
        meta[f"sha256.seed{s}.n{n}"] = hashlib.sha256(a.numpy().tobytes()).hexdigest()
        t[f"head.seed{s}.n{n}"] = a[:64].clone()
        t[f"tail.seed{s}.n{n}"] = a[-64:].clone()
    # Streams: consecutive calls on one generator.
    streams = {
        0: [5, 3, 20, 7, 1, 16, 2, 384, 9, 4],
        42: [1, 1, 1, 17, 3, 256, 15, 33],
        123456789: [384] * 11,  # euler_a_10: initial latents + 10 steps of noise
    }
    for s, ns in streams.items():
        g = torch.Generator("cpu").manual_seed(s)
        parts = [torch.randn(n, generator=g, dtype=torch.float32) for n in ns]
        t[f"stream.seed{s}"] = torch.cat(parts)
        meta[f"stream.seed{s}.sizes"] = json.dumps(ns)
    # Shape does not matter, only the element count.
    g = torch.Generator("cpu").manual_seed(7)
    a = torch.randn((1, 4, 12, 8), generator=g, dtype=torch.float32).flatten()
    meta["shape_equals_flat"] = str(bool(torch.equal(a, t["randn.seed7.n384"])))
    # The same draws with the non-vectorised kernel (ATEN_CPU_CAPABILITY=default).
    code = ("import torch,sys;g=torch.Generator().manual_seed(42);"
            "sys.stdout.write(torch.randn(384,generator=g).numpy().tobytes().hex())")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    try:
        hexs = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True).stdout
        d = torch.from_numpy(np.frombuffer(bytes.fromhex(hexs), dtype=np.float32).copy())
        t["randn_default_capability.seed42.n384"] = d
        meta["default_capability_equal"] = str(bool(torch.equal(d, t["randn.seed42.n384"])))
    except Exception as e:  # noqa: BLE001
        meta["default_capability_error"] = repr(e)
    save_file(t, path, metadata={k: str(v) for k, v in meta.items()})
    print("wrote", path, len(t), "tensors")


# ----------------------------------------------------------------- schedulers
def sched_golden(path):
    import diffusers
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler,
                           EulerAncestralDiscreteScheduler, EulerDiscreteScheduler)
    meta["diffusers"] = diffusers.__version__
    base = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                beta_schedule="scaled_linear", steps_offset=1)

    def make(name, karras=False, pred="epsilon"):
        if name == "ddim":
            return DDIMScheduler(**base, clip_sample=False, set_alpha_to_one=False,
                                 timestep_spacing="leading", prediction_type=pred)
        if name == "euler":
            return EulerDiscreteScheduler(**base, timestep_spacing="linspace",
                                          use_karras_sigmas=karras, prediction_type=pred)
        if name == "euler_a":
            return EulerAncestralDiscreteScheduler(**base, timestep_spacing="linspace",
                                                   prediction_type=pred)
        if name == "dpmpp_2m":
            return DPMSolverMultistepScheduler(**base, algorithm_type="dpmsolver++", solver_order=2,
                                               use_karras_sigmas=karras, timestep_spacing="linspace",
                                               prediction_type=pred)
        raise ValueError(name)

    t = {}
    s = make("euler")
    t["table.betas"] = s.betas.clone()
    t["table.alphas_cumprod"] = s.alphas_cumprod.clone()
    sig = np.array(((1 - s.alphas_cumprod) / s.alphas_cumprod) ** 0.5)
    t["table.sigmas"] = f32(sig)
    t["table.np_log_sigmas"] = f32(np.log(sig))  # numpy's float32 log, as _sigma_to_t uses it

    kinds = [("ddim", False), ("euler", False), ("euler", True), ("euler_a", False),
             ("dpmpp_2m", False), ("dpmpp_2m", True)]
    for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 500]:
        for name, karras in kinds:
            key = f"{name}{'_karras' if karras else ''}.n{n}"
            try:
                s = make(name, karras)
                s.set_timesteps(n)
                t[key + ".timesteps"] = s.timesteps.to(torch.float32).clone()
                if hasattr(s, "sigmas") and name != "ddim":
                    t[key + ".sigmas"] = s.sigmas.to(torch.float32).clone()
                t[key + ".init_noise_sigma"] = torch.tensor([float(s.init_noise_sigma)], dtype=torch.float32)
            except Exception as e:  # noqa: BLE001
                meta[key + ".error"] = repr(e)

    # Synthetic chains: a smooth nonlinear stand-in for the U-Net, stored so
    # that the Go test can feed exactly the same model outputs.
    chains = [("ddim", False, "epsilon", 8), ("ddim", False, "v_prediction", 8),
              ("euler", False, "epsilon", 8), ("euler", False, "v_prediction", 8),
              ("euler", True, "epsilon", 7), ("euler_a", False, "epsilon", 10),
              ("euler_a", False, "v_prediction", 10), ("dpmpp_2m", True, "epsilon", 12),
              ("dpmpp_2m", True, "v_prediction", 12), ("dpmpp_2m", False, "epsilon", 20),
              ("dpmpp_2m", False, "v_prediction", 4)]
    shape = (1, 4, 4, 5)
    for ci, (name, karras, pred, n) in enumerate(chains):
        key = f"chain.{name}{'_karras' if karras else ''}.{pred}.n{n}"
        seed = 1000 + ci
        meta[key + ".seed"] = str(seed)
        s = make(name, karras, pred)
        s.set_timesteps(n)
        g = torch.Generator("cpu").manual_seed(seed)
        x = torch.randn(shape, generator=g, dtype=torch.float32) * s.init_noise_sigma
        t[key + ".init"] = x.clone()
        for i, ts in enumerate(s.timesteps):
            xin = s.scale_model_input(x, ts)
            m = torch.tanh(xin) * 0.75 + 0.25 * torch.sin(xin * 3.0 + float(ts) * 0.01)
            kw = {"generator": g} if name in ("euler_a",) else {}
            if name == "ddim":
                kw = {"eta": 0.0, "generator": g}
            x = s.step(m, ts, x, return_dict=False, **kw)[0]
            t[f"{key}.in{i}"] = xin.clone()
            t[f"{key}.model{i}"] = m.clone()
            t[f"{key}.out{i}"] = x.clone()
    save_file({k: v.contiguous() for k, v in t.items()}, path,
              metadata={k: str(v) for k, v in meta.items()})
    print("wrote", path, len(t), "tensors")


if __name__ == "__main__":
    randn_golden(sys.argv[1])
    sched_golden(sys.argv[2])
    print(json.dumps(meta, indent=1))
