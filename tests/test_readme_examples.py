"""The README's command lines run as written: every `leanconv ...` line of its
bash blocks parses, every `--resume` line has the settings of the run it
continues, and the surrogate train / resume pair runs at tiny size."""
import re
import shlex
from pathlib import Path

import pytest

from leanconv.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    """Argument lists (after `leanconv` / `-m leanconv`) of the README's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for line in (ln for b in blocks for ln in b.splitlines()):
        words = shlex.split(line, comments=True)
        if words[:1] == ["leanconv"]:
            commands.append(words[1:])
        elif "-m" in words and words[words.index("-m") + 1:][:1] == ["leanconv"]:  # torchrun ... -m leanconv
            commands.append(words[words.index("-m") + 2:])
    return commands


def parse(argv):
    return vars(build_parser().parse_args(argv))


def out_of(args) -> str:
    return args.get("out") or f"runs/{args.get('model')}"  # train-classifier's default --out


def test_readme_has_commands():
    names = {c[0] for c in readme_commands()}
    assert {"simulate", "train", "rollout", "train-classifier", "dataset", "bench"} <= names


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_readme_command_parses(argv):
    args = parse(argv)
    if argv[0] == "bench":  # the benchmark's own arguments
        import importlib

        from leanconv.bench import BENCHMARKS

        importlib.import_module(f"leanconv.bench.{BENCHMARKS[args['name']]}").build_parser().parse_args(args["args"])


def test_readme_resume_lines_repeat_the_settings_of_their_run():
    """`--resume` refuses changed settings, so a README resume line must repeat those of the run it continues."""
    commands = readme_commands()
    checked = 0
    for i, argv in enumerate(commands):
        if "--resume" not in argv:
            continue
        mine = parse(argv)
        earlier = [parse(a) for a in commands[:i] if a[0] == argv[0] and "--resume" not in a]
        runs = [a for a in earlier if out_of(a) == out_of(mine)]
        assert runs, f"no earlier README line starts the run {' '.join(argv)} resumes"
        first = {k: v for k, v in runs[-1].items() if k not in ("resume", "func")}
        again = {k: v for k, v in mine.items() if k not in ("resume", "func")}
        assert again == first, " ".join(argv)
        checked += 1
    assert checked >= 2


def test_readme_train_and_resume_run_at_tiny_size(tmp_path, capsys):
    """The README's factorized train line and its --resume line, on a tiny data set with a tiny U-Net."""
    from leanconv.wave import make_dataset

    data = tmp_path / "data"
    make_dataset(data, samples=12, seed=3, grid=17, steps=48, every=4, shard_size=8)
    tiny = ["--width", "4", "--levels", "2", "--batch-size", "4", "--epochs", "1", "--quiet"]
    train = [a for a in readme_commands() if a[0] == "train" and "--resume" in a][0]
    start = [a for a in train if a != "--resume"]

    def local(argv):
        args = list(argv)
        args[args.index("--data") + 1] = str(data)
        args[args.index("--out") + 1] = str(tmp_path / "run")
        return args + tiny

    assert main(local(start)) == 0
    assert main(local(train)) == 0, capsys.readouterr().err
