"""``emoget styles`` and ``emoget expressions``: everything the product offers is listed, with the art's licence."""
from face2emoticon.styles import STYLES
from ui.cli import main
from video_gen.expressions import EXPRESSIONS


def test_expressions_lists_every_expression(capsys):
    assert main(["expressions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(EXPRESSIONS)
    for line, e in zip(lines, EXPRESSIONS.values()):
        assert e.description in line


def test_styles_shows_each_styles_art_licence(capsys):
    assert main(["styles"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("(")]
    names, licences = lines[0::2], lines[1::2]
    assert names and len(names) == len(licences)
    known = {s.name: s for s in STYLES}
    for name_line, licence_line in zip(names, licences):
        name = name_line.split()[0]
        assert name in known, f"{name} is not a registered style"
        assert licence_line.strip() == f"licence: {known[name].attribution}"
