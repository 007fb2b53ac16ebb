"""The tour's explain section: feature maps, saliency and Grad-CAM of its photos from one pass."""
from __future__ import annotations

from cnnlab.explain.tour import tour_section


def test_tour_section(lite0, tmp_path):
    import json

    import cnnlab
    photos = {n: cnnlab.load_images(cnnlab.bundled_photo(n), lite0) for n in ("chelsea", "coffee")}
    out = tour_section(lite0, photos, tmp_path)
    json.dumps(out)
    assert set(out["featmaps"]) == {"chelsea", "coffee"}
    assert out["saliency"]["chelsea"]["target"] in ("tiger cat", "Egyptian cat", "tabby")
    assert out["gradcam"]["coffee"]["layer"] == list(lite0.layers())[-1]
    for f in out["figures"]:
        assert (tmp_path / f).stat().st_size > 5000
