import json

import pytest

from ui.cli import build_parser, main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "weights" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_weights_list_json_is_valid(capsys):
    assert main(["weights", "list", "--json"]) == 0
    json.loads(capsys.readouterr().out)


def test_every_command_module_registers():
    parser = build_parser()
    actions = [a for a in parser._subparsers._group_actions]
    assert actions and "weights" in actions[0].choices
