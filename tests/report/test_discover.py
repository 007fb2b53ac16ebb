"""What a run directory holds: captions and sections from file names."""
from __future__ import annotations

from cnnlab.report.discover import (
    caption_from_name,
    caption_of,
    figure_order,
    section_of,
)


def test_captions_and_sections_from_file_names() -> None:
    assert caption_from_name("figures/gradcam_chelsea-layer4.png") == "Gradcam chelsea layer4"
    assert caption_from_name("attack/rows.png") == "Rows (attack)"
    assert section_of("figures/confusion.png") == "confusion"
    assert section_of("figures/curves.png") == "curves"
    assert section_of("figures/pgd_toaster.png") == "adversarial"


def test_captions_say_what_a_figure_shows() -> None:
    assert caption_of("figures/filters.png").startswith("The first convolution's filters")
    assert caption_of("figures/featmaps_motorcycle_left.png").startswith("motorcycle left: the most active channels")
    assert caption_of("figures/mystery_plot.png") == "Mystery plot"
    order = sorted(["chelsea_adversarial.png", "figures/robustness.png", "figures/attack.png",
                    "figures/difference.png"], key=figure_order)
    assert order == ["figures/attack.png", "figures/difference.png", "figures/robustness.png",
                     "chelsea_adversarial.png"]


def test_links_out_of_the_run_directory_are_never_read(tmp_path) -> None:
    """`ln -s ~/secret.json RUN/notes.json` must not put the secret into a report of RUN."""
    from cnnlab.report import build_report, discover
    secret = tmp_path / "home" / "secret.json"
    secret.parent.mkdir()
    secret.write_text('{"api_key": "hunter2-SECRET"}')
    outside_png = tmp_path / "home" / "private.png"
    outside_png.write_bytes(b"\x89PNG private")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n')
    (run / "eval.json").write_text('{"top1": 0.5}')
    (run / "notes.json").symlink_to(secret)
    (run / "figures").mkdir()
    (run / "figures" / "private.png").symlink_to(outside_png)
    (run / "home").symlink_to(secret.parent, target_is_directory=True)
    (run / "also_eval.json").symlink_to(run / "eval.json")  # a link inside the run is fine
    found = discover(run)
    assert [d.rel for d in found.docs] == ["also_eval.json", "eval.json"] and found.figures == []
    assert {n.split()[0] for n in found.notes if "links outside the run directory" in n} == \
        {"notes.json", "figures/private.png", "home"}
    html = build_report(run).read_text()
    assert "hunter2" not in html and __import__("base64").b64encode(outside_png.read_bytes()).decode() not in html


def test_json_nested_beyond_reason_is_a_note_not_a_traceback(tmp_path) -> None:
    from cnnlab.report import build_report, discover
    run = tmp_path / "run"
    run.mkdir()
    (run / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (run / "deep_dict.json").write_text('{"a": ' * 500 + "1" + "}" * 500)
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n' + "[" * 50_000 + "]" * 50_000 + "\n")
    found = discover(run)
    assert {d.rel: d.error for d in found.docs} == {"deep.json": "not valid JSON (nested deeper than 64 levels)",
                                                     "deep_dict.json": "not valid JSON (nested deeper than 64 levels)"}
    assert len(found.metrics) == 1 and "nested deeper" in found.metrics_errors[0]
    assert "nested deeper than 64 levels" in build_report(run).read_text()


def test_metric_keys_and_names_with_dollar_signs_are_drawn_as_written(tmp_path) -> None:
    """matplotlib reads '$...$' as math and fails on '$x_$'; the report's charts show it as text."""
    from cnnlab.report import build_report
    run = tmp_path / "$cost_$ run"
    run.mkdir()
    rows = [{"epoch": e, "train_loss": 1.0 / e, "$x_$_loss": 0.5 / e, "val_top1": 0.1 * e, "lr": 0.1} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    (run / "eval.json").write_text('{"confusion": [[3, 1], [0, 4]], "labels": ["$a_$", "b$^"], "top1": 0.875}')
    html = build_report(run).read_text()
    assert "$x_$_loss" in html and html.count("data:image/png;base64,") >= 2
