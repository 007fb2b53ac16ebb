"""The explorer's JSON API on real models (the bundled EfficientNet-Lite0 and the pretrained CIFAR-10
ResNet-20): predictions, explanations, feature maps, attacks, class search, and the safety rules
(decoded-image check, size and pixel limits, no paths, one JSON error per bad request, concurrency)."""
from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.serve import Explorer, create_app, is_loopback, start_server
from tests.conftest import shared

H = {"X-Cnnlab": "1"}


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode(uri: str) -> Image.Image:
    head, b64 = uri.split(",", 1)
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.fixture(scope="module")
def lite_client(lite0):
    explorer = Explorer(lite0)
    return create_app(explorer).test_client()


@pytest.fixture(scope="module")
def cifar_client(resnet20):
    return create_app(Explorer(resnet20), max_upload_mb=0.5).test_client()


@pytest.fixture(scope="module")
def cifar_pngs():
    d = np.load(shared("cifar10_test.npz"))
    return [(png_bytes(d["x"][i]), int(d["y"][i])) for i in range(12)]


@pytest.fixture(scope="module")
def chelsea_bytes():
    return cnnlab.bundled_photo("chelsea").read_bytes()


def post(client, path: str, **data):  # noqa: ANN001
    return client.post(path, data=data, headers=H)


@pytest.mark.device
def test_predict_upload_matches_the_library(lite_client, lite0, chelsea_bytes) -> None:  # noqa: ANN001
    r = post(lite_client, "/api/predict", image=(io.BytesIO(chelsea_bytes), "chelsea.png"))
    assert r.status_code == 200, r.json
    top = r.json["top"]
    assert len(top) == 5 and any("cat" in p["label"] for p in top[:2])
    expected = lite0.predict(cnnlab.load_images(cnnlab.bundled_photo("chelsea"), lite0), k=5)[0]
    assert [p["index"] for p in top] == [p.index for p in expected]
    assert [p["prob"] for p in top] == pytest.approx([p.prob for p in expected], abs=1e-5)
    assert decode(r.json["input"]).size == (224, 224)
    by_name = post(lite_client, "/api/predict", photo="chelsea").json
    assert by_name["top"] == top and by_name["source"] == "chelsea"
    assert by_name["image_id"] != r.json["image_id"]  # every image its own id: never shared between clients


@pytest.mark.device
def test_explain_methods_return_overlays_for_the_chosen_class(lite_client, lite0) -> None:  # noqa: ANN001
    iid = post(lite_client, "/api/predict", photo="chelsea").json["image_id"]
    r = post(lite_client, "/api/explain", image_id=iid, method="gradcam")
    assert r.status_code == 200, r.json
    assert r.json["target"]["label"] in ("tiger cat", "Egyptian cat", "tabby")
    assert decode(r.json["overlay"]).size == (224, 224) and decode(r.json["heatmap"]).size == (224, 224)
    # the overlay is the library's map blended over the image (no algorithm of our own)
    x = cnnlab.load_images(cnnlab.bundled_photo("chelsea"), lite0)
    from cnnlab.explain import attribute
    from cnnlab.explain.figures import colorize
    ref = colorize(attribute(lite0, x, target=859, method="gradient").maps[0], "inferno")
    g = post(lite_client, "/api/explain", image_id=iid, method="gradient", target="toaster").json
    assert g["target"] == {"index": 859, "label": "toaster"}
    got = torch.from_numpy(np.array(decode(g["heatmap"]).convert("RGB"))).permute(2, 0, 1).float() / 255
    assert (got - ref).abs().mean() < 0.01
    bad = post(lite_client, "/api/explain", image_id=iid, method="gradient", target="toastr")
    assert bad.status_code == 400 and "toaster" in bad.json["error"]
    bad = post(lite_client, "/api/explain", image_id=iid, method="magic")
    assert bad.status_code == 400 and "gradcam" in bad.json["error"]


@pytest.mark.device
def test_featmaps_of_named_and_relative_layers(lite_client, lite0) -> None:  # noqa: ANN001
    iid = post(lite_client, "/api/predict", photo="coffee").json["image_id"]
    r = post(lite_client, "/api/featmaps", image_id=iid, layer="early", k="4")
    assert r.status_code == 200, r.json
    assert r.json["layer"] == list(lite0.layers())[0] and len(r.json["channels"]) == 4
    assert r.json["size"] == [112, 112]
    late = post(lite_client, "/api/featmaps", image_id=iid, layer="_blocks.15", k="8").json
    assert late["size"] == [7, 7] and len(late["channels"]) == 8
    bad = post(lite_client, "/api/featmaps", image_id=iid, layer="_blocks.99")
    assert bad.status_code == 400 and "_blocks.15" in bad.json["error"]
    assert post(lite_client, "/api/featmaps", image_id=iid, k="0").status_code == 400


@pytest.mark.device
def test_attacks_keep_within_eps_and_report_the_new_prediction(cifar_client, cifar_pngs) -> None:  # noqa: ANN001
    data, label = cifar_pngs[0]
    iid = post(cifar_client, "/api/predict", image=(io.BytesIO(data), "x.png")).json["image_id"]
    r = post(cifar_client, "/api/attack", image_id=iid, method="pgd", eps="8/255", steps="10")
    assert r.status_code == 200, r.json
    j = r.json
    assert j["linf_255"] <= 8.0 + 1e-3 and j["success"] is True
    assert j["top"][0]["index"] == j["final"]["index"] != j["original"]["index"]
    assert decode(j["adversarial"]).size == (32, 32) and decode(j["perturbation"]).size == (32, 32)
    # the PNG the page shows is the adversarial image rounded to 8 bits; saved_png is its prediction
    shown = torch.from_numpy(np.array(decode(j["adversarial"]))).permute(2, 0, 1).float()[None] / 255
    assert j["saved_png"]["index"] == int(cifar_client.application.config["EXPLORER"].model(shown).argmax())
    t = post(cifar_client, "/api/attack", image_id=iid, method="pgd", eps="8/255", steps="20", target="frog").json
    assert t["target"]["label"] == "frog" and t["success"] and t["final"]["label"] == "frog"
    f = post(cifar_client, "/api/attack", image_id=iid, method="fgsm", eps="2/255").json
    assert abs(f["linf_255"] - 2.0) < 1e-3 and f["steps"] == 1
    l2 = post(cifar_client, "/api/attack", image_id=iid, method="pgd-l2", eps="1.5", steps="10").json
    assert l2["l2"] <= 1.5 + 1e-4 and l2["success"], l2.get("error")
    for bad, msg in [({"eps": "lots"}, "not a number"), ({"eps": "2"}, "outside"), ({"steps": "500"}, "between"),
                     ({"method": "nuke"}, "Unknown attack method"),
                     ({"method": "logit-ascent"}, "towards a class"), ({"method": "pgd-l2", "eps": "200"}, "outside")]:
        r = post(cifar_client, "/api/attack", image_id=iid, **{"method": "pgd", **bad})
        assert r.status_code == 400 and msg in r.json["error"], (bad, r.json)


def test_class_search_puts_whole_words_first(lite_client) -> None:  # noqa: ANN001
    got = [c["label"] for c in lite_client.get("/api/classes?q=cat").json["classes"]]
    assert got[0] in ("tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "Madagascar cat")
    assert got.index("catamaran") > got.index("Egyptian cat")
    assert lite_client.get("/api/classes?q=toaster").json["classes"][0] == {"index": 859, "label": "toaster"}
    assert len(lite_client.get("/api/classes?q=&limit=7").json["classes"]) == 7
    assert lite_client.get("/api/classes?limit=x").status_code == 400


def test_model_and_photos_describe_what_the_page_offers(lite_client) -> None:  # noqa: ANN001
    info = lite_client.get("/api/model").json
    assert info["num_classes"] == 1000 and info["input_size"] == [224, 224]
    assert {"gradient", "gradcam"} <= set(info["explain_methods"])
    assert {"fgsm", "pgd"} <= {a["name"] for a in info["attack_methods"]}
    photos = lite_client.get("/api/photos").json["photos"]
    assert "chelsea" in [p["name"] for p in photos] and max(decode(photos[0]["thumb"]).size) <= 96
    page = lite_client.get("/")
    assert page.status_code == 200 and b'id="predictions"' in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert lite_client.get("/static/app.js").status_code == 200


def _bomb() -> bytes:
    """A tiny PNG that claims 9000 x 9000 pixels (81 M > the 64 M limit)."""
    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_requests_get_one_json_error_and_the_server_keeps_serving(cifar_client, cifar_pngs) -> None:  # noqa: ANN001
    good, _ = cifar_pngs[1]
    truncated = good[: len(good) // 2]
    bomb = _bomb()
    assert len(bomb) < 100_000
    cases = [
        ({"image": (io.BytesIO(b"GIF89a not really"), "cat.gif")}, 400, "cat.gif"),
        ({"image": (io.BytesIO(b"#!/bin/sh\nrm -rf /\n"), "cat.png")}, 400, "not an image"),
        ({"image": (io.BytesIO(b""), "empty.jpg")}, 400, "empty"),
        ({"image": (io.BytesIO(truncated), "half.png")}, 400, "truncated"),
        ({"image": (io.BytesIO(bomb), "bomb.png")}, 400, "decompression bomb"),
        ({"image": (io.BytesIO(b"\0" * 600_000), "huge.png")}, 413, "limit"),
        ({"photo": "../../../etc/passwd"}, 400, "Unknown bundled photo"),
        ({"photo": "/etc/passwd"}, 400, "Unknown bundled photo"),
        ({"image_id": "0123456789"}, 410, "upload it again"),
        ({}, 400, "Send an image"),
    ]
    for data, status, words in cases:
        r = cifar_client.post("/api/predict", data=data, headers=H)
        assert r.status_code == status, (data, r.json)
        assert r.is_json and set(r.json) == {"error", "code"} and words in r.json["error"], r.json
        assert "\n" not in r.json["error"]
    assert cifar_client.post("/api/predict", data={"photo": "chelsea"}).status_code == 403  # no header
    assert cifar_client.get("/api/predict").status_code == 405
    assert cifar_client.get("/api/nothing").json["code"] == "not_found"
    assert cifar_client.get("/api/model", headers={"Host": "evil.example:8000"}).status_code == 403
    ok = cifar_client.post("/api/predict", data={"image": (io.BytesIO(good), "ok.png")}, headers=H)
    assert ok.status_code == 200 and len(ok.json["top"]) == 5


def test_concurrent_requests_do_not_mix_results(resnet20, cifar_pngs) -> None:  # noqa: ANN001
    """A real threaded server: 12 images posted at once from 6 threads, each answer is its own image's."""
    expected = {}
    for data, _ in cifar_pngs:
        x = cnnlab.load_images(data, resnet20)
        expected[data] = [p.index for p in resnet20.predict(x, k=5)[0]]
    srv = start_server(resnet20, port=0)
    try:
        assert srv.url.startswith("http://127.0.0.1:")
        results, errors = {}, []

        def worker(items):  # noqa: ANN001
            for data, _ in items:
                try:
                    body = _http_predict(srv.url, data)
                    fm = _http_post(srv.url + "api/featmaps", {"image_id": body["image_id"], "layer": "late", "k": "3"})
                    results[data] = ([p["index"] for p in body["top"]], fm["size"])
                except Exception as e:  # noqa: BLE001 - collected and asserted below
                    errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(cifar_pngs[i::6],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert {d: r[0] for d, r in results.items()} == expected
        assert all(r[1] == [8, 8] for r in results.values())
        with pytest.raises(urllib.error.HTTPError) as e:  # a bad request over HTTP ...
            _http_predict(srv.url, b"junk")
        assert e.value.code == 400 and "not an image" in json.loads(e.value.read())["error"]
        assert _http_predict(srv.url, cifar_pngs[0][0])["top"]  # ... and it still serves
    finally:
        srv.stop()


def _http_post(url: str, fields: dict, files: dict | None = None) -> dict:
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, (name, data) in (files or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Cnnlab": "1"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _http_predict(base: str, data: bytes) -> dict:
    return _http_post(base + "api/predict", {}, {"image": ("img.png", data)})


def test_loopback_detection_and_busy_port(resnet20) -> None:  # noqa: ANN001
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    srv = start_server(resnet20, port=0)
    try:
        port = int(srv.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(cnnlab.CnnlabError, match="choose another --port"):
            start_server(resnet20, port=port)
    finally:
        srv.stop()


def test_a_bare_torchvision_module_is_served_like_the_wrapped_one(chelsea_bytes: bytes) -> None:
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v3_small(weights=None)
    client = create_app(Explorer(net)).test_client()
    info = client.get("/api/model").json
    assert info["num_classes"] == 1000 and info["input_size"] == [224, 224] and info["layers"]
    r = post(client, "/api/predict", image=(io.BytesIO(chelsea_bytes), "chelsea.png"))
    assert r.status_code == 200, r.json
    expected = cnnlab.wrap(net).predict(cnnlab.load_images(cnnlab.bundled_photo("chelsea"), cnnlab.wrap(net)), k=5)[0]
    assert [p["index"] for p in r.json["top"]] == [p.index for p in expected]
