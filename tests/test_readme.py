"""README.md runs as written: every Python block, the TOML configuration, every `linsolve` command."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from linsolve.cli import build_parser
from linsolve.sweep import load_config

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()

# Values for the placeholders of the command table's usage lines.
PLACEHOLDERS = {
    "DIR": "out",
    "N": "3",
    "F": "mode",
    "NAME": "saxe_modes",
    "CONFIG.toml": "config.toml",
    "STUDY": "one-hidden-layer",
    "ADDR": "tcp://127.0.0.1:8786",
    "ADDRESS": "tcp://127.0.0.1:8786",
    "AXIS=VALUE": "width=8",
    "B1": "B1",
}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", TEXT, flags=re.S | re.M)


PYTHON = _blocks("python")


def _first_line(code: str) -> str:
    return next(line for line in code.splitlines() if "lns." in line or "linsolve" in line)


def test_readme_has_the_python_blocks():
    assert len(PYTHON) >= 2, "README.md should show the closed-form and the sweep examples"


@pytest.mark.parametrize("code", PYTHON, ids=[f"block{i}" for i in range(len(PYTHON))])
def test_python_block_runs(code, tmp_path):
    """Each block in a fresh interpreter, in an empty working directory, as a reader would run it."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, f"README block failed:\n{code}\n{done.stderr[-3000:]}"
    out = done.stdout
    # Claims the README makes in its comments.
    if "saxe_mode(" in code:  # "~5e-9": the closed form and the simulation agree
        assert float(out.split()[-1]) < 1e-7, out
    if "sweep.classify(" in code:  # the grid's shape, and the three phases
        assert out.startswith("(3, 4)"), out
        for label in ("kernel", "feature learning", "diverged"):
            assert f"'{label}'" in out, out


def test_toml_configuration_loads(tmp_path):
    (block,) = _blocks("toml")
    path = tmp_path / "config.toml"
    path.write_text(block)
    config = load_config(str(path))
    assert config.study.name == "one-hidden-layer"
    axes = config.grid.axes
    assert [len(axes[name]) for name in ("width", "output_exponent", "lr_ratio")] == [4, 5, 5]
    assert config.params["s"] == 1.0


def _commands() -> tuple[list[str], list[str]]:
    """The README's `linsolve ...` commands: (complete usages, from the command table and the bash
    blocks; mentions in the prose, which may leave arguments out)."""
    usages, mentions = [], []
    for line in TEXT.splitlines():
        found = re.findall(r"`(?:python -m )?(linsolve [^`]*)`", line)
        (usages if line.startswith("|") else mentions).extend(found)
    for block in _blocks("bash"):
        for part in re.split(r"&&|\n", block):
            if part.strip().startswith("linsolve "):
                usages.append(part.strip())
    return usages, [m for m in mentions if m != "linsolve ..."]


USAGES, MENTIONS = _commands()


def _subparsers() -> dict:
    (action,) = [a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"]
    return action.choices


def _expand(usage: str) -> list[list[str]]:
    """A usage line -> concrete argument lists: without the optional parts, and with all of them
    (each alternative ``A|B`` in turn); placeholders get the values of PLACEHOLDERS."""
    usage = usage.replace("\\|", "|")
    variants = []
    for keep in (False, True):
        text = re.sub(r"\[([^\]]*)\]", (lambda m: m.group(1)) if keep else "", usage)
        tokens = [t for t in text.split()[1:] if t != "..."]
        choices = max(len(t.split("|")) for t in tokens) if tokens else 1
        for i in range(choices):
            args = []
            for token in tokens:
                options = token.split("|")
                token = options[min(i, len(options) - 1)]
                if token.isupper() or token in PLACEHOLDERS:
                    assert token in PLACEHOLDERS, f"add a value for {token!r} (in {usage!r}) to PLACEHOLDERS"
                    token = PLACEHOLDERS[token]
                args.append(token)
            if args not in variants:
                variants.append(args)
    return variants


def test_readme_names_every_command():
    named = {usage.split()[1] for usage in USAGES}
    missing = sorted(set(_subparsers()) - named)
    assert not missing, f"the command table of README.md misses {missing}"


@pytest.mark.parametrize("usage", sorted(set(USAGES)))
def test_readme_command_parses(usage):
    for args in _expand(usage):
        try:
            build_parser().parse_args(args)
        except SystemExit as exit:  # argparse exits on a bad command line (and with 0 after --version)
            if exit.code == 0:
                continue
            pytest.fail(f"`linsolve {' '.join(args)}` (README: `{usage}`) does not parse: exit {exit.code}")


@pytest.mark.parametrize("mention", sorted(set(MENTIONS)))
def test_readme_mentions_real_options(mention):
    command, *rest = mention.split()[1:]
    if command.startswith("-"):  # an option of `linsolve` itself, e.g. --version
        known = {option for action in build_parser()._actions for option in action.option_strings}
        assert command in known, f"README mentions `linsolve {command}`, which does not exist"
        return
    subparsers = _subparsers()
    assert command in subparsers, f"README mentions `linsolve {command}`, which does not exist"
    known = {option for action in subparsers[command]._actions for option in action.option_strings}
    unknown = [t for t in rest if t.startswith("--") and t.split("=")[0] not in known]
    assert not unknown, f"README's `{mention}`: `linsolve {command}` has no option {unknown}"
