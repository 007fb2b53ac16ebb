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
