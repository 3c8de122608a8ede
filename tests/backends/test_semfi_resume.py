"""A job killed (SIGKILL) in the middle of denoising resumes from its last step checkpoint, and its frames
equal those of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace

import numpy as np
from conftest import keyframes

from semfi_batch.backends import InterpolationRequest
from semfi_batch.backends._wan.sampling import CHECKPOINT_NAME

STEPS, EVERY, GAP, SEED = 5, 1, 5, 31

# Runs one job in a fresh process. With --kill, a watcher thread SIGKILLs the process as soon as the
# first step checkpoint is on disk, i.e. while the remaining steps are still being denoised.
DRIVER = """
import os, signal, sys, threading, time
from pathlib import Path
import numpy as np
from semfi_batch.backends import BackendOptions, InterpolationRequest, backend_class

models, ckpt, work, out, kill = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
start, end = np.load(out + ".keys.npy")
options = BackendOptions(device="cpu", models_dir=Path(models), semfi_ckpt=Path(ckpt), ckpt_every={every})
backend = backend_class("semfi")(options)
if kill:
    def watch():
        while not (work / "{name}").exists():
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, daemon=True).start()
request = InterpolationRequest(pair_id="r", start=start, end=end, gap_frames={gap}, seed={seed},
                               prompt="a red ball rolls", steps={steps}, cfg_scale=1.0, work_dir=work)
list(backend.interpolate(request))
"""


def test_sigkilled_job_resumes_from_its_checkpoint_with_identical_frames(semfi_backend, tiny_semfi, tmp_path):
    start, end = keyframes(32, 32, seed=3)
    out = str(tmp_path / "frames")
    np.save(out + ".keys.npy", np.stack([start, end]))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(every=EVERY, name=CHECKPOINT_NAME, gap=GAP, seed=SEED, steps=STEPS))
    work = tmp_path / "work"

    args = [sys.executable, str(driver), str(tiny_semfi.models_dir), str(tiny_semfi.ckpt), str(work), out, "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (work / CHECKPOINT_NAME).is_file()

    # The re-run (here: this test's own worker, as the engine would re-run the job) finds the checkpoint.
    request = InterpolationRequest(
        pair_id="r",
        start=start,
        end=end,
        gap_frames=GAP,
        seed=SEED,
        prompt="a red ball rolls",
        steps=STEPS,
        cfg_scale=1.0,
    )
    resumed = np.stack(list(semfi_backend.interpolate(replace(request, work_dir=work))))
    step = semfi_backend.notes.values["resumed_from_step"]
    assert 0 < step < STEPS

    uninterrupted = np.stack(list(semfi_backend.interpolate(request)))
    assert semfi_backend.notes.values["resumed_from_step"] == 0
    assert np.array_equal(resumed, uninterrupted)

    # A checkpoint is only taken up by the same job: another prompt starts from noise.
    list(semfi_backend.interpolate(replace(request, work_dir=work, prompt="a blue cube")))
    assert semfi_backend.notes.values["resumed_from_step"] == 0
