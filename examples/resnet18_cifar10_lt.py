"""ResNet-18 on CIFAR-10-LT (ratio 100) into the terminal phase, against the UFM with and without bias.

The recipe of the book's chapter 6 ("Your own network") at the scale of the long-tailed
benchmarks. It trains a CIFAR ResNet-18 on CIFAR-10-LT (exponential profile, ratio 100,
12,406 images: 5000, 2997, ..., 50; Cao et al. 2019), well past zero training error, and
analyses the penultimate features with :func:`nclab.analysis.analyze_model` against the
closed-form UFM with bias (Liu 2024) and without (Dang et al. 2023), at fitted strengths.

The published observation it reproduces is *minority collapse* (Fang et al. 2021, PNAS; the
classifier norms of Kang et al. 2020): in the terminal phase of imbalanced training the
classifier rows of the tail classes are shorter than those of the head classes and closer to
each other in angle. The UFM with bias predicts both, and the script checks them, plus the
terminal phase itself and which UFM (with or without bias) matches the network.

Usage::

    python examples/resnet18_cifar10_lt.py --root data --download      # the recipe (GPU)
    python examples/resnet18_cifar10_lt.py --root data --load ckpt.pt   # analyse a checkpoint
    python examples/resnet18_cifar10_lt.py --smoke                      # CPU, generated data

``--download`` needs torchvision (``pip install 'nclab[vision]'``; Colab has it); without
it, unpack cifar-10-python.tar.gz into ``--root``. ``--smoke`` trains a narrow ResNet-18 for
a few epochs on generated images written in CIFAR-10's on-disk format (about a minute on a
CPU); it checks that the whole path runs, not the numbers below. Checkpoints are saved as
state dicts and read back only with ``torch.load(..., weights_only=True)``.

Expected outcome of the full recipe (defaults: MSE loss to one-hot targets, SGD with momentum
0.9, lr 0.05 with a cosine schedule, batch 128, weight decay 5e-4, 200 epochs, no data
augmentation so that the training error reaches zero as in Papyan et al. 2020, automatic
mixed precision on CUDA). **These are expectations to check, not measurements: the recipe was
not run on a GPU while this repository was written**, so read the script's "expectations"
table as hypotheses:

* training error 0 well before the last epoch (expected by about epoch 60), then NC1
  (unweighted) falling by at least 10x from the first zero-error epoch to the end;
* tail rows of ``W`` shorter than head rows: ``|w_10| / |w_1|`` below 0.9, and the UFM with
  bias at the fitted strength predicting a ratio below 1 too;
* tail rows closer in angle: the mean cosine between the rows of the 3 smallest classes above
  that of the 3 largest;
* ``W W^T`` closer to the UFM with bias than to the UFM without bias (the head has a bias).

GPU time (estimated, not measured): 200 epochs of 12,406 images are 2.5 M image passes of
ResNet-18, about 30-50 minutes on Colab's T4 with mixed precision and 10-15 minutes on an
A100; the analysis adds seconds. The script prints the measured time per epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

from nclab import analysis, longtail


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a (projected) shortcut (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 images (3x3 stem, no max-pool), ``width`` channels in the first stage."""

    def __init__(self, K: int = 10, width: int = 64, bias: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for i, stride in enumerate([1, 2, 2, 2]):
            cout = width * 2**i
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, K, bias=bias)  # the features are its input (analysis default)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.blocks(self.stem(x))))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data", help="folder holding cifar-10-batches-py")
    p.add_argument("--download", action="store_true", help="fetch CIFAR-10 with torchvision if missing")
    p.add_argument("--ratio", type=float, default=100.0)
    p.add_argument("--profile", choices=["exp", "step"], default="exp")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=None, help="default 0.05 (mse), 0.1 (ce)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--loss", choices=["mse", "ce"], default="mse")
    p.add_argument("--no-bias", action="store_true", help="train the head without a bias")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--analyze-every", type=int, default=25, help="epochs between NC1 measurements")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="default: cuda if available")
    p.add_argument("--save", default=None, help="save the trained state dict here")
    p.add_argument("--load", default=None, help="analyse this state dict instead of training")
    p.add_argument("--out", default="resnet18_cifar10_lt.json", help="results (JSON)")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run on generated CIFAR-format data")
    if p.parse_args(argv).smoke:  # a narrow ResNet-18, a few epochs, generated images in CIFAR-10's format
        p.set_defaults(ratio=10.0, epochs=6, batch_size=32, width=8, analyze_every=3, device="cpu")
    args = p.parse_args(argv)
    args.lr = args.lr or (0.05 if args.loss == "mse" else 0.1)
    return args


def load_data(args: argparse.Namespace, tmp: str) -> longtail.ImageArrays:
    if args.smoke:
        images, labels = longtail.synthetic_images([20] * 10, seed=args.seed)
        longtail.write_cifar(tmp, images, labels)
        return longtail.long_tailed("cifar10", tmp, ratio=args.ratio, profile=args.profile, seed=args.seed)
    return longtail.long_tailed("cifar10", args.root, ratio=args.ratio, profile=args.profile,
                                seed=args.seed, download=args.download)  # fmt: skip


def batches(X: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The training set in order, as a re-iterable list of (inputs, labels) on their device."""
    return [(X[i : i + size], y[i : i + size]) for i in range(0, len(y), size)]


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> dict:
    """SGD with momentum and a cosine schedule; NC1 every ``analyze_every`` epochs."""
    K, N = model.fc.out_features, len(y)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    steps = args.epochs * math.ceil(N / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    amp = X.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    gen = torch.Generator().manual_seed(args.seed)
    hist: dict[str, list] = {"epoch": [], "loss": [], "train_error": [], "nc1_epoch": [], "nc1": [], "seconds": []}
    for epoch in range(1, args.epochs + 1):
        start, total, wrong = time.perf_counter(), 0.0, 0
        model.train()
        for idx in torch.randperm(N, generator=gen).to(X.device).split(args.batch_size):
            with torch.autocast(X.device.type, dtype=torch.float16, enabled=amp):
                out = model(X[idx])
            out = out.float()
            if args.loss == "mse":
                loss = ((out - nn.functional.one_hot(y[idx], K).float()) ** 2).sum() / (2 * len(idx))
            else:
                loss = nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            total += float(loss.detach()) * len(idx)
            wrong += int((out.argmax(1) != y[idx]).sum())
        if not math.isfinite(total):
            raise RuntimeError(f"training diverged at epoch {epoch}; lower --lr (now {args.lr})")
        hist["epoch"].append(epoch)
        hist["loss"].append(total / N)
        hist["train_error"].append(wrong / N)  # during the epoch, in training mode
        hist["seconds"].append(time.perf_counter() - start)
        if epoch % args.analyze_every == 0 or epoch == args.epochs:
            r = analysis.analyze_model(model, batches(X, y, 512), nc4=False, progress=False)
            hist["nc1_epoch"].append(epoch)
            hist["nc1"].append(r.with_bias["nc1"])
        print(f"epoch {epoch:4d}  loss {total / N:.4g}  train error {wrong / N:.4f}  {hist['seconds'][-1]:.1f} s",
              flush=True)  # fmt: skip
    return hist


def expectations(report: analysis.CollapseReport, hist: dict | None, bias: bool) -> list[tuple[str, float, bool]]:
    """The observations the recipe should reproduce, as (description, measured value, holds)."""
    a = report[bias]
    W, n = report.W, report.n
    order = np.argsort(-n, kind="stable")
    head, tail = order[:3], order[-3:]
    norms = np.linalg.norm(W, axis=1)
    cos = (W @ W.T) / np.outer(norms, norms)

    def mean_cos(group: np.ndarray) -> float:
        return float(cos[np.ix_(group, group)][np.triu_indices(len(group), 1)].mean())

    G = report.with_bias["W_theory_gram"]
    predicted = float(np.sqrt(G[order[-1], order[-1]] / G[order[0], order[0]]))
    out = [
        ("training error at the end (expect 0)", a["train_error"], a["train_error"] == 0),
        ("|w_tail| / |w_head| (expect < 0.9)", norms[order[-1]] / norms[order[0]], norms[order[-1]] < 0.9 * norms[order[0]]),
        ("same ratio, UFM with bias at the fitted strength (expect < 1)", predicted, predicted < 1),
        ("mean cos of tail rows minus head rows (expect > 0)", mean_cos(tail) - mean_cos(head), mean_cos(tail) > mean_cos(head)),
        ("W W^T distance: UFM with bias minus without (expect < 0)",
         report.with_bias["W_theory"] - report.without_bias["W_theory"],
         report.with_bias["W_theory"] < report.without_bias["W_theory"]),
    ]  # fmt: skip
    if hist is not None and 0.0 in hist["train_error"]:
        first = hist["epoch"][hist["train_error"].index(0.0)]
        later = [v for e, v in zip(hist["nc1_epoch"], hist["nc1"]) if e >= first]
        if len(later) >= 2:
            out.append(("NC1 first zero-error measurement / last (expect >= 10)", later[0] / later[-1], later[0] >= 10 * later[-1]))
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        ds = load_data(args, tmp)
    X, y = (t.to(device) for t in ds.tensors())
    print(f"CIFAR-10-LT ({'generated, ' if args.smoke else ''}ratio {args.ratio:g}, {args.profile}): "
          f"{len(y)} images, counts {ds.counts.tolist()}", flush=True)  # fmt: skip
    model = ResNet18(K=10, width=args.width, bias=not args.no_bias).to(device)
    start = time.perf_counter()
    hist = None
    if args.load:
        model.load_state_dict(torch.load(args.load, map_location=device, weights_only=True))
    else:
        hist = train(model, X, y, args)
        if args.save:
            torch.save(model.state_dict(), args.save)
    report = analysis.analyze_model(model, batches(X, y, 512), progress=not args.smoke)
    print(report.table())
    checks = expectations(report, hist, bias=not args.no_bias)
    print("\nexpectations (from the literature and the UFM; see the docstring):")
    for text, value, ok in checks:
        print(f"  {'holds' if ok else 'FAILS'}  {text}: {value:.3g}")
    keys = ("nc1", "nc1_weighted", "nc3", "nc4", "train_error", "lam_eff", "M_theory", "W_theory", "modes", "modes_theory")
    results = {
        "settings": {k: v for k, v in vars(args).items()},
        "counts": ds.counts.tolist(),
        "indices": ds.indices.tolist(),  # the long-tailed subset, reproducible from the seed
        "device": str(device),
        "seconds": time.perf_counter() - start,
        "history": hist,
        "with_bias": {k: report.with_bias[k] for k in keys},
        "without_bias": {k: report.without_bias[k] for k in keys},
        "expectations": [{"what": t, "value": float(v), "holds": bool(ok)} for t, v, ok in checks],
    }
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, default=float)
    print(f"\nresults written to {os.path.abspath(args.out)}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
