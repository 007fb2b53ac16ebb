"""Accuracy under attack on a labelled dataset: clean accuracy, robust accuracy, success rate, norms, speed."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import CnnlabError
from .methods import attack


@dataclass
class AttackEval:
    """What an attack does to a model on a dataset.

    clean_acc / robust_acc are over all n images (an image misclassified before the attack is not
    robust); success_rate is over the images the model got right (the ones attacked); linf and l2
    are the mean (median_linf, median_l2: the median) perturbation norms of the successful adversarial
    examples -- for DeepFool, the median minimal perturbation; images_per_s counts all
    n images over the attack's wall time; passes_per_image counts forward+backward passes.
    """

    method: str
    n: int
    clean_acc: float
    robust_acc: float
    success_rate: float
    linf: float
    l2: float
    images_per_s: float
    passes_per_image: float
    seconds: float
    median_linf: float = 0.0
    median_l2: float = 0.0
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        p = self.params
        eps = p.get("eps")
        eps_s = f"eps {eps * 255:.3g}/255" if isinstance(eps, float) and p.get("norm", "linf") == "linf" else f"eps {eps}"
        return [f"{self.method} ({eps_s}, {p.get('steps')} steps) on {self.n} images of {p.get('data', '?')}",
                f"clean accuracy    {self.clean_acc:7.2%}",
                f"robust accuracy   {self.robust_acc:7.2%}",
                f"success rate      {self.success_rate:7.2%}  (of the {round(self.clean_acc * self.n)} "
                "correctly classified images)",
                f"mean L-inf        {self.linf * 255:7.3f}/255   mean L2 {self.l2:.4f}  (successful examples)",
                f"median L-inf      {self.median_linf * 255:7.3f}/255   median L2 {self.median_l2:.4f}",
                f"speed             {self.images_per_s:7.1f} images/s, {self.passes_per_image:.2f} "
                "forward+backward passes per image"]


def load_eval_data(data, model: torch.nn.Module, limit: int | None = None,  # noqa: ANN001
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(images [N,3,H,W] in [0,1] at the model's input size, labels, name) from a tensor pair, a Dataset,
    or a spec cnnlab.data.load_dataset understands (.npz file, folder, 'cifar10'); a seeded random subset
    of `limit` images (test files are often sorted by class)."""
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        name = "tensors"
        x = torch.as_tensor(x)
        y = torch.as_tensor(y, dtype=torch.long)
        if limit is not None and limit < len(x):
            keep = torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(len(x))[:limit]))
            x, y = x[keep], y[keep]
        if x.dtype == torch.uint8:
            x = x.float() / 255
    else:
        from ..data import ImageArrays, ImageFiles, load_dataset
        ds = data if isinstance(data, (ImageArrays, ImageFiles)) else load_dataset(data, split="test")
        name = Path(str(data)).name if not isinstance(data, (ImageArrays, ImageFiles)) else (ds.name or "data")
        n = len(ds)
        if limit is not None and limit < n:
            ds = ds.subset(np.sort(np.random.default_rng(seed).permutation(n)[:limit]))
        if isinstance(ds, ImageArrays):
            x, y = ds.floats(), ds.y.long()
        else:
            from ..images import load_images
            x, y = load_images(ds.paths, model), torch.as_tensor(ds.y, dtype=torch.long)
        num = getattr(model, "num_classes", None)
        if num is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= num):
            raise CnnlabError(f"Data '{name}' has labels outside 0..{num - 1} (model '{getattr(model, 'name', '?')}' "
                              f"has {num} classes); evaluate with a model trained on these classes.")
    if len(x) == 0:
        raise CnnlabError("The evaluation data holds no images.")
    pre = getattr(model, "preprocessing", None)
    if pre is not None and tuple(x.shape[-2:]) != tuple(model.input_size):
        x = pre.apply_tensor(x)
    return x, y, name


def attack_eval(model: torch.nn.Module, data, method: str = "pgd", *, eps: float | None = 8 / 255,  # noqa: ANN001
                steps: int | None = 10, step_size: float | None = None, target=None,  # noqa: ANN001
                limit: int | None = None, batch_size: int = 256, seed: int = 0) -> AttackEval:
    """Attack the correctly classified images of `data` and measure what survives."""
    x, y, name = load_eval_data(data, model, limit, seed)
    n = len(x)
    device = next((b.device for b in model.buffers()), torch.device("cpu"))
    t0 = time.perf_counter()
    with torch.no_grad():
        was = model.training
        model.eval()
        pred = torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, n, batch_size)])
        model.train(was)
    correct = pred == y
    todo = correct.nonzero()[:, 0]
    fooled, linf, l2, passes, params = 0, [], [], 0, {}
    if target is not None:  # a targeted attack only counts images not already of the target class
        todo = todo[(y[todo] != _target_index(model, target)) if isinstance(target, (int, str)) and
                    target not in ("least-likely", "random") else slice(None)]
    for i in range(0, len(todo), batch_size):
        idx = todo[i:i + batch_size]
        r = attack(model, x[idx], method, y=y[idx] if target is None else None, target=target, eps=eps,
                   steps=steps, step_size=step_size, seed=seed + i)
        ok = r.success
        if target is not None:  # a targeted success must also leave the true class
            ok = ok & (r.final_class != y[idx])
        fooled += int(ok.sum())
        linf.append(r.linf[ok])
        l2.append(r.l2[ok])
        passes += r.passes
        params = r.params
    seconds = time.perf_counter() - t0
    attacked = len(todo)
    robust = int(correct.sum()) - fooled
    cat = (lambda v: float(torch.cat(v).mean()) if v and sum(len(t) for t in v) else 0.0)
    med = (lambda v: float(torch.cat(v).median()) if v and sum(len(t) for t in v) else 0.0)
    params = {**params, "data": name, "limit": limit, "target": target}
    return AttackEval(method=method, n=n, clean_acc=float(correct.float().mean()), robust_acc=robust / n,
                      success_rate=fooled / attacked if attacked else 0.0, linf=cat(linf), l2=cat(l2),
                      images_per_s=n / seconds if seconds > 0 else 0.0, passes_per_image=passes / n,
                      seconds=seconds, median_linf=med(linf), median_l2=med(l2), params=params)


def _target_index(model: torch.nn.Module, target) -> int:  # noqa: ANN001
    return model.class_index(target) if hasattr(model, "class_index") else int(target)
