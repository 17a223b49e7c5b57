"""When you outgrow MikaGrad: train the digits MLP here, export it to ONNX and run it in
onnxruntime, then move the model and its Adam state to PyTorch and train one more step
there, checking each hand-over against MikaGrad's own numbers.

    pip install -e ".[demo,onnx,torch]" && python -m mikagrad.demo_export [--epochs 10]

A part whose optional package is missing is skipped with the command that installs it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import mikagrad as mg
from mikagrad import nn, optim
from mikagrad.data import DataLoader
from mikagrad.demo import accuracy, load_digits_split


def train(epochs: int, seed: int = 0) -> tuple[nn.Module, optim.Optimizer, tuple]:
    mg.manual_seed(seed)
    data = load_digits_split(seed)
    xtr, xte, ytr, yte = data
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10)).float()
    opt = optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in DataLoader(xtr, ytr, batch_size=64, shuffle=True, seed=seed):
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    model.eval()
    print(f"MikaGrad: trained the digits MLP for {epochs} epochs in "
          f"{time.perf_counter() - t0:.2f} s, test accuracy {accuracy(model, xte, yte):.3f}")
    return model, opt, data


def to_onnx(model: nn.Module, xte: np.ndarray, yte: np.ndarray, folder: Path) -> None:
    try:
        import onnxruntime as ort

        from mikagrad.onnx import export
    except ImportError:
        print("ONNX: skipped (pip install 'mikagrad[onnx]')")
        return
    path = folder / "digits.onnx"
    export(model, mg.tensor(xte[:4]), path, input_names=["image"], output_names=["logits"],
           dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": xte})
    with mg.no_grad():
        ours = model(mg.tensor(xte)).numpy()
    acc = float((logits.argmax(1) == yte).mean())
    print(f"ONNX: wrote {path.name} ({path.stat().st_size:,} bytes); onnxruntime on all "
          f"{len(xte)} test images: accuracy {acc:.3f}, largest difference from MikaGrad's "
          f"logits {np.abs(logits - ours).max():.1e}")


def to_pytorch(model: nn.Module, opt: optim.Optimizer, data: tuple, folder: Path) -> None:
    try:
        import torch

        from mikagrad.interop import to_torch
    except ImportError:
        print("PyTorch: skipped (pip install 'mikagrad[torch]')")
        return
    xtr, _, ytr, _ = data
    mg.save(model.state_dict(), folder / "digits.safetensors")
    tmodel = to_torch(model)
    topt = to_torch(opt, model, tmodel)
    print(f"PyTorch: {type(tmodel).__name__} of {len(tmodel)} modules, Adam at step "
          f"{int(topt.state[tmodel[0].weight]['step'])}; the weights are also in "
          f"digits.safetensors ({', '.join(list(model.state_dict())[:2])}, ...)")
    # One more step on the same batch, there and here.
    xb, yb = xtr[:64], ytr[:64]
    tmodel.train()
    topt.zero_grad()
    loss_t = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(xb)),
                                               torch.from_numpy(yb))
    loss_t.backward()
    topt.step()
    model.train()
    opt.zero_grad()
    loss = mg.functional.cross_entropy(model(mg.tensor(xb)), mg.tensor(yb))
    loss.backward()
    opt.step()
    diff = max(float(np.abs(t.detach().numpy() - model.state_dict()[k]).max())
               for k, t in tmodel.state_dict().items())
    print(f"PyTorch: one more Adam step there, loss {loss_t.item():.4f} (MikaGrad's "
          f"{loss.item():.4f}); the weights then differ from MikaGrad's by at most {diff:.1e}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    model, opt, data = train(args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        to_onnx(model, data[1], data[3], Path(tmp))
        to_pytorch(model, opt, data, Path(tmp))


if __name__ == "__main__":
    main()
