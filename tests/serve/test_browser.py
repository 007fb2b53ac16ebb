"""The explorer in a real browser: headless Chromium (Debian package) driven by Playwright uploads the
cat photo, waits for the top-5, checks a cat class is listed and the overlays and feature maps
rendered, runs an attack, and saves a screenshot."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import cnnlab

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is absent (`make browser` installs the Debian chromium package as root)"),
]


def loaded(page, selector: str, timeout: float = 90_000) -> None:  # noqa: ANN001
    """Wait until the <img> matching selector has decoded a picture."""
    page.wait_for_function(f"() => {{ const i = document.querySelector('{selector}'); "
                           "return i && i.complete && i.naturalWidth > 0; }", timeout=timeout)


def test_upload_cat_see_predictions_overlays_and_attack(lite0, tmp_path: Path) -> None:  # noqa: ANN001
    sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")
    from cnnlab.serve import start_server
    srv = start_server(lite0, port=0)
    console_errors: list[str] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 1000})
                page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: console_errors.append(str(e)))
                page.goto(srv.url)
                page.wait_for_function("() => document.querySelectorAll('#photos button').length > 0")
                assert "efficientnet_lite0" in page.text_content("#model-info")

                page.set_input_files("#file", str(cnnlab.bundled_photo("chelsea")))
                page.wait_for_selector("#predictions li .label", timeout=60_000)
                labels = page.locator("#predictions li .label").all_text_contents()
                probs = page.locator("#predictions li .prob").all_text_contents()
                assert len(labels) == 5 and all(s.endswith("%") for s in probs)
                assert any(lab in ("tiger cat", "Egyptian cat", "tabby") for lab in labels[:2]), labels
                loaded(page, "#input-img")
                loaded(page, "#saliency-img")
                loaded(page, "#gradcam-img")
                loaded(page, "#featmaps-img")
                assert "for “" in page.text_content("#explain-target")

                # choose a target by name and attack
                page.select_option("#attack-method", "fgsm")
                page.fill("#attack-target", "")
                page.click("#attack-run")
                page.wait_for_function("() => /fooled/.test(document.querySelector('#attack-status').textContent)",
                                       timeout=90_000)
                loaded(page, "#adv-img")
                loaded(page, "#pert-img")
                assert page.locator("#adv-predictions li").count() == 5

                # the target picker searches class names as you type; untargeted-only methods disable it
                page.fill("#attack-target", "toas")
                page.wait_for_function("() => [...document.querySelectorAll('#class-options option')]"
                                       ".some(o => o.value === 'toaster')", timeout=30_000)
                page.select_option("#attack-method", "logit-descent")
                assert page.is_disabled("#attack-target")
                page.select_option("#attack-method", "pgd-l2")
                assert "(L2)" in page.text_content("#attack-eps-out") and page.is_enabled("#attack-target")

                # a bad file shows one error and the page keeps working
                bad = tmp_path / "notes.png"
                bad.write_text("this is not an image")
                page.set_input_files("#file", str(bad))
                page.wait_for_selector("#error:not([hidden])", timeout=30_000)
                assert "notes.png" in page.text_content("#error")
                page.click("#photos button[data-photo='coffee']")
                page.wait_for_function("() => document.querySelector('#error').hidden", timeout=30_000)
                page.wait_for_function("() => /cup|espresso|coffee/i.test(document.querySelector('#predictions').textContent)",
                                       timeout=60_000)
                page.set_input_files("#file", str(cnnlab.bundled_photo("chelsea")))
                page.wait_for_function("() => /cat/.test(document.querySelector('#predictions').textContent)",
                                       timeout=60_000)
                loaded(page, "#gradcam-img")
                shot = tmp_path / "explorer.png"
                page.wait_for_timeout(300)
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 50_000
                keep = os.environ.get("CNNLAB_SCREENSHOT")
                if keep:
                    shutil.copy(shot, keep)
            finally:
                browser.close()
    finally:
        srv.stop()
    # the bad upload answered 400 (logged by Chromium as a failed resource); nothing else went wrong
    others = [e for e in console_errors if "400" not in e]
    assert others == [], others
