import json

import numpy as np
import pytest
from PIL import Image

from face2emoticon.styledata import build, manifest_lines, plan
from face2emoticon.styledata.options import render_job, twemoji_name
from face2emoticon.styledata.people import (
    EXPRESSIONS,
    SKIN_TONES,
    Identity,
    sample_identities,
)
from face2emoticon.styles import STYLES


def test_identities_are_seeded():
    a, b, c = sample_identities(20, seed=1), sample_identities(20, seed=1), sample_identities(20, seed=2)
    assert a == b and a != c
    assert {p.identity_id for p in a} == set(range(20))
    assert all(0 <= p.skin < len(SKIN_TONES) for p in a)


def test_plan_pairs_every_identity_across_styles():
    records = plan(count=5, pairs=2, seed=3)
    assert len(records) == len(STYLES) * (5 + 2 * len(EXPRESSIONS))
    by_id = {}
    for r in records:
        by_id.setdefault(r.identity.identity_id, set()).add(r.style)
    assert all(styles == {s.name for s in STYLES} for styles in by_id.values())
    # The manifest (and so its hash) depends only on the arguments.
    assert manifest_lines(records) == manifest_lines(plan(count=5, pairs=2, seed=3))
    assert manifest_lines(records) != manifest_lines(plan(count=5, pairs=2, seed=4))


def test_options_carry_the_identity_in_every_dicebear_style():
    p = Identity(identity_id=0, seed=7, skin=3, hair_colour="red", hair_length="long", glasses=True, beard=False)
    for s in STYLES:
        job = render_job(s, p, "neutral")
        if s.kind != "dicebear":
            continue
        flat = json.dumps(job["options"])
        assert p.skin_hex in flat, s.name
        assert p.hair_hex in flat or "hair_colour" not in s.carries, s.name
    # Same identity, other expression: only face parts change, the hair cut stays.
    a = render_job("avataaars", p, "neutral")["options"]
    b = render_job("avataaars", p, "happy")["options"]
    assert a["top"] == b["top"] and a["clothesColor"] == b["clothesColor"] and a["mouth"] != b["mouth"]


def test_twemoji_names_follow_the_identity():
    p = Identity(identity_id=0, seed=1, skin=4, hair_colour="blond", hair_length="short", glasses=False, beard=False)
    assert twemoji_name(p) == "man-dark-skin-tone-blond-hair"
    bearded = Identity(**{**p.to_json(), "beard": True})
    assert twemoji_name(bearded) == "man-dark-skin-tone-beard"
    with pytest.raises(ValueError, match="expression"):
        render_job("twemoji", p, "bored")


@pytest.mark.slow
def test_build_renders_images_with_the_identity_colours(tmp_path):
    summary = build(tmp_path, count=2, pairs=1, seed=0, size=64, workers=1)
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len(STYLES) * (2 + len(EXPRESSIONS))
    assert summary["manifest_sha256"] in (tmp_path / "manifest.sha256").read_text()
    for line in lines:
        rec = json.loads(line)
        img = np.asarray(Image.open(tmp_path / rec["path"]).convert("RGB"))
        assert img.shape == (64, 64, 3)
        if rec["style"] in ("avataaars", "micah", "personas", "big-smile"):
            # The identity's exact skin colour covers part of the face.
            hexs = SKIN_TONES[rec["identity"]["skin"]]
            rgb = np.array([int(hexs[i:i + 2], 16) for i in (0, 2, 4)])
            near = (np.abs(img.astype(int) - rgb).sum(-1) < 12).mean()
            assert near > 0.01, (rec["path"], near)
    # A rerun keeps existing files and gives the same manifest.
    again = build(tmp_path, count=2, pairs=1, seed=0, size=64, workers=1)
    assert again["manifest_sha256"] == summary["manifest_sha256"]
