"""Operations on float image batches [N,3,H,W] in [0,1] that keep the size: affine resampling (rotate,
shift, zoom), flip, centre crop, grayscale, JPEG round trip, Gaussian blur. Attacks, robustness
tables and feature visualization all use these, so each is written once."""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F


def affine(x: torch.Tensor, degrees: float = 0.0, dx: float = 0.0, dy: float = 0.0, scale: float = 1.0,
           padding: str = "zeros") -> torch.Tensor:
    """Rotate about the centre by `degrees` (counter-clockwise), zoom by `scale`, then shift by (dx, dy)
    pixels (right, down), in one bilinear resample; what comes from outside is black ('zeros') or mirrored
    ('reflection')."""
    h, w = x.shape[-2:]
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a) / scale, -math.sin(a) * h / w / scale, -2 * dx / w],
                          [math.sin(a) * w / h / scale, math.cos(a) / scale, -2 * dy / h]], dtype=x.dtype,
                         device=x.device)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def rotate(x: torch.Tensor, degrees: float = 30.0) -> torch.Tensor:
    """Rotate about the centre (counter-clockwise), corners filled with black."""
    return affine(x, degrees).clamp(0, 1)


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def center_crop(x: torch.Tensor, area: float = 0.8) -> torch.Tensor:
    """Keep the central `area` fraction of the image and resize it back to the input size."""
    h, w = x.shape[-2:]
    s = math.sqrt(area)
    ch, cw = max(1, round(h * s)), max(1, round(w * s))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma replicated to three channels."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()


def jpeg(x: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """Encode each image as a JPEG at `quality` with Pillow and decode it again."""
    from PIL import Image
    out = []
    for img in x:
        arr = (img.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)
        out.append(torch.from_numpy(dec.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out).to(x.device)


def gaussian_blur(x: torch.Tensor, sigma: float = 1.0, truncate: float = 3.0) -> torch.Tensor:
    """Separable Gaussian blur of [N,C,H,W] images, kernel radius `truncate` sigmas, reflect padding."""
    r = max(1, int(math.ceil(truncate * sigma)))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
