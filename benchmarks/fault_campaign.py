"""A fault campaign: small training runs hit by the faults of a real machine, then resumed.

    python benchmarks/fault_campaign.py                 # 20 faults, 4 of each kind, about 10 minutes
    python benchmarks/fault_campaign.py --faults 5 --seed 3

Each trial trains the same tiny job (64 steps of 32 MNIST digits, tiny nets, a checkpoint every 4
steps) into a folder of its own, injects one fault at a random moment, and resumes with the same
command plus --resume until the run finishes. The kinds, in turn:

    kill9      SIGKILL at a random moment, a save included
    sigterm    SIGTERM at a random moment (a preemption notice): save at the step, exit 143
    disk_full  the disk fills at a random epoch (no file may grow past a few KB: RLIMIT_FSIZE)
    truncated  SIGKILL, then the last checkpoint cut short (a failing disk): --resume falls back
    second_run a second run started into the same folder while the first trains: refused

Afterwards each finished run's weights are compared with those of an uninterrupted run of the
same job (they must be bit-identical: the data stream and the checkpoints make resuming exact),
and its files are checked (all there, the generator loads, no partial files). The table printed
at the end: faults injected, runs finished, runs whose weights differ, files lost.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("kill9", "sigterm", "disk_full", "truncated", "second_run")
JOB = ["--epochs", "4", "--limit", "512", "--batch-size", "32", "--val-size", "16", "--save-every", "4",
       "--gen-filters", "4", "--gen-max-filters", "8", "--disc-filters", "4", "--verbose", "0"]
FILES = ("samples/epoch_004.png", "samples.gif", "losses.png", "history.json", "config.json", "generator.keras",
         "pix2pix.weights.h5")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def command(out, *more, wrapper=()):
    """`python pix2pix.py JOB --out OUT MORE`, or the `wrapper` program (and its arguments) in
    place of pix2pix.py."""
    return [sys.executable, *(wrapper or [os.path.join(ROOT, "pix2pix.py")]), *JOB, "--out", out, *more]


def start(out, *more, wrapper=()):
    return subprocess.Popen(command(out, *more, wrapper=wrapper), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run(out, *more, wrapper=()):
    return subprocess.run(command(out, *more, wrapper=wrapper), env=ENV, capture_output=True, text=True,
                          timeout=600)


def weights(path):
    """{dataset name: array} of a checkpoint file."""
    import h5py
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def wait_for(path, proc, seconds=120):
    deadline = time.time() + seconds
    while not os.path.exists(path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)


def inject(kind, out, rng):
    """Start the job in `out` and inject one fault of `kind`; returns a line on what happened."""
    checkpoint = os.path.join(out, "pix2pix.weights.h5")
    if kind == "disk_full":
        epochs = rng.randint(1, 3)
        first = run(out, "--epochs", str(epochs)).returncode
        limit = rng.randint(2_000, 50_000)  # bytes: the checkpoint (hundreds of KB) cannot be written
        full = run(out, "--resume", wrapper=(os.path.join(ROOT, "tests", "programs", "full_disk.py"), str(limit)))
        last = (full.stdout + full.stderr).strip().splitlines()[-1:]
        return f"after {epochs} epoch(s) (exit {first}), disk full at {limit:,} B: exit {full.returncode}, {last}"
    proc = start(out)
    if kind == "second_run":
        wait_for(os.path.join(out, "pix2pix.lock"), proc)
        second = run(out, "--resume")  # the same command twice, as a job scheduler might
        proc.wait(timeout=600)
        said = [line for line in second.stderr.splitlines() if "in use" in line]
        return (f"second run: exit {second.returncode} ({said[0][:90] if said else 'no refusal'}); "
                f"first: exit {proc.returncode}")
    wait_for(checkpoint, proc)
    if kind == "truncated":
        wait_for(os.path.join(out, "pix2pix.prev.weights.h5"), proc)
    time.sleep(rng.uniform(0.0, 3.0))
    proc.send_signal(signal.SIGTERM if kind == "sigterm" else signal.SIGKILL)
    proc.wait(timeout=600)
    what = f"{'SIGTERM' if kind == 'sigterm' else 'SIGKILL'}: exit {proc.returncode}"
    if kind == "truncated" and os.path.exists(checkpoint):
        size = os.path.getsize(checkpoint)
        with open(checkpoint, "r+b") as f:
            f.truncate(rng.randint(0, size // 2))
        what += f", checkpoint cut from {size:,} B"
    return what


def finish(out):
    """Resume until the run finishes (at most 3 tries); returns the tries it took, or None."""
    for tries in range(1, 4):
        if run(out, "--resume").returncode == 0:
            return tries
    return None


def check(out, reference):
    """(weights identical to the reference, files lost) of a finished run."""
    import keras
    lost = [name for name in FILES if not os.path.isfile(os.path.join(out, name))]
    partial = [name for name in os.listdir(out) if name.startswith(".")]
    try:
        keras.models.load_model(os.path.join(out, "generator.keras"), compile=False)
    except Exception:  # noqa: BLE001  any failure to load is a lost file
        lost.append("generator.keras (does not load)")
    mine = weights(os.path.join(out, "pix2pix.weights.h5")) if "pix2pix.weights.h5" not in lost else {}
    same = mine.keys() == reference.keys() and all(np.array_equal(mine[k], reference[k]) for k in reference)
    return same, lost + partial


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--faults", type=int, default=20, help="faults to inject, the kinds in turn")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random moments")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to inject")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # this process loads the generators
    kinds = args.kinds.split(",")
    rng = random.Random(args.seed)
    folder = tempfile.mkdtemp(prefix="fault_campaign_")
    print(f"Uninterrupted reference run in {folder}/reference ...", flush=True)
    assert run(os.path.join(folder, "reference")).returncode == 0, "the reference run failed"
    reference = weights(os.path.join(folder, "reference", "pix2pix.weights.h5"))
    rows = []
    for i in range(args.faults):
        kind = kinds[i % len(kinds)]
        out = os.path.join(folder, f"{i:02d}_{kind}")
        what = inject(kind, out, rng)
        tries = finish(out)
        same, lost = check(out, reference) if tries else (False, ["(not finished)"])
        rows.append((kind, tries is not None, same, lost))
        print(f"{i + 1:2d}. {kind:<10} {what} -> {'finished' if tries else 'NOT FINISHED'}"
              f"{f' after {tries} resume(s)' if tries else ''}, weights {'identical' if same else 'DIFFER'}"
              f"{', lost: ' + ', '.join(lost) if lost else ''}", flush=True)
    print("\n| fault | injected | runs finished | weights differ | files lost |\n| --- | ---: | ---: | ---: | ---: |")
    for kind in kinds + ["all"]:
        mine = [r for r in rows if kind in ("all", r[0])]
        print(f"| {kind} | {len(mine)} | {sum(r[1] for r in mine)} | {sum(not r[2] for r in mine)} | "
              f"{sum(len(r[3]) for r in mine)} |")
    return 0 if all(r[1] and r[2] and not r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
