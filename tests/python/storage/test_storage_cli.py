"""`python -m orchestrator cid` and `... ipfs ...` on the embedded store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main

REPO = Path(__file__).resolve().parents[3]


def test_cid_command_prints_only_the_oracle_cid_on_stdout(make_file, oracle):
    # One real `python -m orchestrator` process: stdout must hold the CID line and nothing else.
    path = make_file(300 * 1024 + 1, seed=41)
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", "cid", str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.stdout == oracle(path)["CIDv0"] + "\n"


def test_cid_version_1_prints_the_oracle_v1(make_file, oracle, capsys):
    path = make_file(300 * 1024 + 1, seed=41)
    assert main(["cid", str(path), "--cid-version", "1"]) == 0
    assert capsys.readouterr().out == oracle(path)["CIDv1"] + "\n"


def test_cid_of_missing_file_exits_1_with_message(tmp_path, capsys):
    assert main(["cid", str(tmp_path / "missing.bin")]) == 1
    assert "missing.bin" in capsys.readouterr().err


def test_ipfs_add_export_gc_import_get_cycle(make_file, tmp_path, capsys, oracle):
    path = make_file(600 * 1024, seed=42)
    data_dir = ["ipfs", "--data-dir", str(tmp_path / "cli-store")]
    assert main([*data_dir, "add", str(path)]) == 0
    cid = capsys.readouterr().out.strip()
    assert cid == oracle(path)["CIDv0"]

    car = tmp_path / "out.car"
    assert main([*data_dir, "export-car", cid, str(car)]) == 0
    assert main([*data_dir, "unpin", cid]) == 0
    assert main([*data_dir, "gc"]) == 0
    assert "removed 4 blocks" in capsys.readouterr().out  # 3 leaves + root
    assert main([*data_dir, "get", cid, "-o", str(tmp_path / "gone")]) == 1
    assert cid in capsys.readouterr().err

    assert main([*data_dir, "import-car", str(car)]) == 0
    assert capsys.readouterr().out.strip() == cid
    assert main([*data_dir, "get", cid, "-o", str(tmp_path / "back.bin")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == path.read_bytes()
    assert main([*data_dir, "pins"]) == 0
    assert capsys.readouterr().out.split() == [cid]


def test_ipfs_uses_orch_ipfs_dir_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORCH_IPFS_DIR", str(tmp_path / "from-env"))
    (tmp_path / "f.txt").write_bytes(b"hello world\n")
    assert main(["ipfs", "add", str(tmp_path / "f.txt")]) == 0
    assert capsys.readouterr().out.strip() == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert (tmp_path / "from-env" / "pins.json").is_file()


@pytest.mark.parametrize(
    "argv", [["cid", "--help"], ["ipfs", "--help"], ["ipfs", "export-car", "--help"]]
)
def test_help_texts_explain_the_commands(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert ("Kubo" in text) or ("ipfs dag import" in text)
