"""`leanconv simulate` and `leanconv dataset verify|info`."""
import subprocess
import sys


from leanconv.cli import main

ARGS = ["--samples", "6", "--grid", "12", "--steps", "12", "--every", "4", "--shard-size", "4", "--quiet"]


def test_simulate_verify_info(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["simulate", "--out", str(out), *ARGS, "--preview", "--media", "layered,random"]) == 0
    printed = capsys.readouterr().out
    assert "6 trajectories x 4 frames of 12x12" in printed
    assert (out / "preview.png").stat().st_size > 1000
    assert main(["dataset", "verify", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["dataset", "info", str(out)]) == 0
    assert '"media": ["layered", "random"]' in capsys.readouterr().out
    # a rerun with the same arguments finds everything done
    assert main(["simulate", "--out", str(out), *ARGS, "--media", "layered,random"]) == 0
    (out / "shard-00001.frames.npy").write_bytes(b"garbage")
    assert main(["dataset", "verify", str(out)]) == 1
    assert "BAD  shard-00001.frames.npy: truncated" in capsys.readouterr().out


def test_simulate_reports_bad_arguments(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x"), *ARGS, "--media", "granite"]) == 2
    assert "media must be a non-empty subset" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "y"), *ARGS, "--courant", "1.5"]) == 2
    assert "courant must be in (0, 1]" in capsys.readouterr().err


def test_progress_bar_and_entry_point(tmp_path):
    args = [a for a in ARGS if a != "--quiet"]
    r = subprocess.run([sys.executable, "-m", "leanconv", "simulate", "--out", str(tmp_path / "d"), *args],
                       capture_output=True, text=True, check=True)
    assert "traj" in r.stderr and "100%" in r.stderr  # tqdm bar
