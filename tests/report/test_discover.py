"""What a run directory holds: captions and sections from file names."""
from __future__ import annotations

from cnnlab.report.discover import caption_from_name, section_of


def test_captions_and_sections_from_file_names() -> None:
    assert caption_from_name("figures/gradcam_chelsea-layer4.png") == "Gradcam chelsea layer4"
    assert caption_from_name("attack/rows.png") == "Rows (attack)"
    assert section_of("figures/confusion.png") == "confusion"
    assert section_of("figures/curves.png") == "curves"
    assert section_of("figures/pgd_toaster.png") == "adversarial"
