"""`panoptic-st predict` at Cityscapes' native 1024 x 2048 with the real configs' networks (DeepLabV2 ResNet-101 and
U-Net ResNet-101, random weights): seconds per image and peak memory, semantic-only and semantic + instance.

Random weights give near-random embeddings, so the mean-shift part is a stress test (every class mask is large
and noisy); the per-class point cap (`--max-points`, default 16384) is what keeps its memory bounded.

    python experiments/benchmarks/bench_predict.py [--images 4] [--threads 2] [--out runs/bench_predict]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HEIGHT, WIDTH = 1024, 2048


def write_images(folder: Path, count: int) -> None:
    """`count` random-texture street-sized PNGs named like Cityscapes images."""
    import cv2

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        noise = rng.integers(0, 256, (HEIGHT // 16, WIDTH // 16, 3), dtype=np.uint8)
        image = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"bench_{k:06d}_000019_leftImg8bit.png"), image)


def write_checkpoints(folder: Path) -> tuple[Path, Path]:
    """Semantic and instance checkpoints of the real configs' networks (random weights, no pretrained files)."""
    from panoptic_st.config import load_config
    from panoptic_st.instance.module import InstanceModule
    from panoptic_st.semantic.module import SemanticModule

    folder.mkdir(parents=True, exist_ok=True)
    semantic = SemanticModule(load_config("synthia/deeplabv2_baseline", ["semantic.encoder_weights_file=null"]).semantic)
    instance = InstanceModule(load_config("synthia/instance_baseline", ["instance.encoder_weights_file=null"]).instance)
    paths = folder / "semantic.ckpt", folder / "instance.ckpt"
    for module, path in zip((semantic, instance), paths):
        torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return paths


MEASURED = ("import resource, sys; from panoptic_st.cli import main; code = main(sys.argv[1:]); "
            "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


def timed_predict(args: list[str], threads: int) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of one fresh `panoptic-st predict` process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, "predict", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)}, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    peak_kb = int(done.stdout.split("peak_kb")[-1].split()[0])
    return seconds, peak_kb / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_predict"))
    args = parser.parse_args()
    images = args.out / "images"
    if len(list(images.glob("*.png"))) != args.images:
        write_images(images, args.images)
    semantic, instance = write_checkpoints(args.out / "checkpoints")
    common = ["--images", str(images), "--accelerator", "cpu", "--workers", "0"]
    rows = {}
    for name, extra in (("semantic only", ["--semantic", str(semantic)]),
                        ("semantic + instance", ["--semantic", str(semantic), "--instance", str(instance)])):
        out = args.out / name.replace(" ", "_").replace("+", "and")
        if out.exists():
            shutil.rmtree(out)
        seconds, peak = timed_predict([*common, *extra, "--out", str(out)], args.threads)
        rows[name] = {"seconds_per_image": seconds / args.images, "peak_gb": peak}
        print(f"{name:<22} {seconds / args.images:7.1f} s/image   peak RSS {peak:5.2f} GB", flush=True)
    print(f"{args.images} images of {WIDTH} x {HEIGHT}, {args.threads} threads; process start-up included")
    (args.out / "bench_predict.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
