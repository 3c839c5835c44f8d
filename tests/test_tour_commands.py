"""The tour report's "reproduce with" commands: valid shell that reruns each section as the tour ran it."""
import re
import shlex
import shutil
import subprocess
import types

import pytest

from jaxgen import runner, tour


def _shell_words(cmd: str) -> list[str]:
    """The words a POSIX shell makes of ``cmd``: shlex with the shell's punctuation (``( ) ; < > | &``)
    as separate tokens, so that an unquoted ``(64,)`` does not pass as part of a word."""
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _reported_command(section, quick: bool) -> str:
    """The command as it appears in the report's markdown for ``section``."""
    result = types.SimpleNamespace(figures=[], metrics={})  # no numbers: the table says so, the command stays
    md = tour._section_md(1, tour._Outcome(section, "runs/x", result, None, 1.0), quick)
    found = re.findall(r"reproduce with `([^`]*)`", md)
    assert len(found) == 1, md
    return found[0]


@pytest.mark.parametrize("quick", [False, True])
def test_reproduce_commands_parse_as_shell_and_give_the_tour_config(quick):
    """Each command goes through a POSIX shell parser (shlex) to the intended argv, and those override
    words, parsed by the CLI's own parser, give the config the tour ran with (an unquoted ``(64,)``
    is a shell syntax error; ``hidden=64,`` style values must come back as the same tuples)."""
    for section in tour.SECTIONS:
        cmd = _reported_command(section, quick)
        assert _shell_words(cmd) == tour.reproduce_argv(section, quick), cmd
        if shutil.which("bash"):  # the shell itself: a syntax check, nothing run
            check = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
            assert check.returncode == 0, (cmd, check.stderr)
        argv = tour.reproduce_argv(section, quick)
        assert argv[:3] == ["jaxgen", "run", section.experiment]
        if quick:
            assert argv[3:] == ["--quick"]
            continue
        experiment = runner.load_experiment(section.experiment)
        from_words = runner.resolve_config(experiment, overrides=argv[3:])
        from_tour = runner.resolve_config(experiment, overrides=dict(section.overrides))
        assert runner.flatten_config(from_words) == runner.flatten_config(from_tour), section.experiment
