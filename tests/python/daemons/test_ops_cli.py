"""The everyday commands and the CLI's manners (issue 12): fast start, one-line errors, no secrets.

Subprocesses run the CLI as a user would, from a folder outside the project (what the
``ledgerlora`` console script does: ``orchestrator.cli:main``), against a real anvil or a real
local HTTP server that answers 401/404 like a misconfigured RPC provider.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.chain.anvil import AnvilProcess
from orchestrator.chain.connection import connect, funded_accounts
from orchestrator.cli import _OWNER, _SUMMARY, main
from orchestrator.storage.codec import parse_cid
from orchestrator.storage.embedded import EmbeddedStore

ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cr3t-planted"
ENTRY = "import sys; from orchestrator.cli import main; sys.exit(main())"  # the console script's entry point


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")} | {"PYTHONPATH": str(ROOT)} | env
    return subprocess.run([sys.executable, "-c", ENTRY, *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout)


def _one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()  # a daemon may log its start (INFO) before failing
    assert "Traceback" not in out.stderr and lines[-1].startswith("error: "), out.stderr
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], out.stderr
    for needle in needles:
        assert needle in lines[-1], out.stderr
    assert SECRET not in out.stdout + out.stderr
    return lines[-1]


def test_help_and_version_start_without_torch_from_any_folder(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", ENTRY, "--help"], cwd=tmp_path,
                         env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "request-unlearning" in out.stdout
    assert " torch" not in out.stderr and "orchestrator.learning" not in out.stderr
    for command in ("org", "status", "daemon"):
        sub = subprocess.run([sys.executable, "-X", "importtime", "-c", ENTRY, command, "--help"], cwd=tmp_path,
                             env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
        assert sub.returncode == 0 and " torch" not in sub.stderr, command
    version = _run(["--version"], {}, tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("ledgerlora ")
    assert set(_SUMMARY) == set(_OWNER)  # the fast top-level help lists every command


def test_bad_input_gives_one_line_errors(tmp_path: Path) -> None:
    _one_line_error(_run(["deploy", "--rpc-url", "http://127.0.0.1:9", "--org", "0x1234", "--dev"], {}, tmp_path),
                    "--org '0x1234' is not an address")
    _one_line_error(_run(["org", "decrypt-adapter", "bafkqaaa", "-o", str(tmp_path / "out"), "--address",
                          "0x" + "11" * 20], {"ORCH_ENC_KEY": "zz" * 32}, tmp_path), "ORCH_ENC_KEY is not hex")


class _Refusing(http.server.BaseHTTPRequestHandler):
    status = 401

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"no")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def refusing_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.parametrize("status", [401, 404])
def test_an_rpc_answering_an_http_error_is_one_line_without_the_credentials(
        tmp_path: Path, refusing_server: http.server.HTTPServer, status: int) -> None:
    _Refusing.status = status
    url = f"http://operator:{SECRET}@127.0.0.1:{refusing_server.server_port}/v3/?apikey={SECRET}"
    for args in (["status", "--rpc-url", url], ["daemon", "--role", "trainer", "--org", "sport", "--rpc-url", url,
                                                 "--state-dir", str(tmp_path)]):
        err = _one_line_error(_run(args, {"ORCH_PRIVATE_KEY": "0x" + "11" * 32}, tmp_path), f"HTTP {status}")
        assert "operator" not in err and "apikey=***" in err


def test_deploy_join_stake_status_and_leave_on_anvil_keep_secrets_out_of_manifest_and_output(tmp_path: Path) -> None:
    with AnvilProcess() as node:
        w3 = connect(node.url)
        deployer, org = funded_accounts(w3, 2)
        secret_url = node.url.replace("http://", f"http://operator:{SECRET}@") + f"/?apikey={SECRET}"
        env = {"ORCH_DEPLOYMENTS_DIR": str(tmp_path / "deployments"), "ORCH_IPFS_DIR": str(tmp_path / "ipfs")}
        outputs = [_run(["deploy", "--rpc-url", secret_url, "--dev", "--org", org.address],
                        env | {"ORCH_PRIVATE_KEY": deployer.key.hex()}, tmp_path)]
        assert outputs[-1].returncode == 0, outputs[-1].stderr
        manifest = (tmp_path / "deployments" / f"{w3.eth.chain_id}.json").read_text()
        assert SECRET not in manifest and "operator" not in manifest
        assert json.loads(manifest)["network"].startswith("http://***@127.0.0.1")
        org_env = env | {"ORCH_PRIVATE_KEY": org.key.hex(), "ORCH_ENC_KEY": "22" * 32}
        outputs.append(_run(["org", "join", "--name", "sport", "--rpc-url", secret_url], org_env, tmp_path))
        assert outputs[-1].returncode == 0 and "joined as sport" in outputs[-1].stdout, outputs[-1].stderr
        outputs.append(_run(["org", "stake", "5", "--rpc-url", secret_url], org_env, tmp_path))
        assert outputs[-1].returncode == 0, outputs[-1].stderr
        status_cmd = ["status", "--json", "--rpc-url", secret_url, "--state-dir", str(tmp_path / "none")]
        outputs.append(_run(status_cmd, env, tmp_path))
        assert outputs[-1].returncode == 0, outputs[-1].stderr
        status = json.loads(outputs[-1].stdout)
        outputs.append(_run(["org", "leave", "--rpc-url", secret_url], org_env, tmp_path))
        assert outputs[-1].returncode == 0 and "left" in outputs[-1].stdout, outputs[-1].stderr
        outputs.append(_run(status_cmd, env, tmp_path))
        assert json.loads(outputs[-1].stdout)["members"] == []  # left: no longer a member
    (member,) = status["members"]
    assert member["address"] == org.address and member["name"] == "ledgerlora://org/sport"
    assert member["stake"] == (100 + 5) * 10**18  # the minimum stake from join, then 5 more
    assert status["rounds"] == [] and status["unlearning_open"] == [] and status["model"]["version"] == 0
    for out in outputs:
        assert SECRET not in out.stdout + out.stderr and deployer.key.hex()[2:] not in out.stdout + out.stderr


def test_ipfs_get_refuses_to_overwrite_and_verify_repair_readd_and_gc_recover_a_corrupt_block(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = EmbeddedStore(tmp_path / "ipfs")
    content = os.urandom(300_000)  # two leaves and a root
    cid = store.add_bytes(content)
    ipfs = ["ipfs", "--data-dir", str(tmp_path / "ipfs")]
    existing = tmp_path / "existing.bin"
    existing.write_bytes(b"keep me")
    assert main([*ipfs, "get", cid, "-o", str(existing)]) == 1
    assert existing.read_bytes() == b"keep me" and "--force" in capsys.readouterr().err
    assert main([*ipfs, "get", cid, "-o", str(existing), "--force"]) == 0 and existing.read_bytes() == content

    block = store._block_path(parse_cid(cid).digest)
    block.write_bytes(b"\x00" + block.read_bytes()[1:])  # bit rot
    assert main([*ipfs, "verify"]) == 1 and "corrupt block" in capsys.readouterr().out
    assert main([*ipfs, "gc"]) == 0  # before: gc refused for the whole store
    assert "removed" in capsys.readouterr().out
    assert main([*ipfs, "verify", "--repair"]) == 0 and not block.exists()
    assert store.add_bytes(content) == cid  # re-adding writes the block again
    assert main([*ipfs, "verify", cid]) == 0 and store.cat(cid) == content


def test_the_systemd_units_run_valid_daemon_command_lines() -> None:
    import shlex

    from orchestrator.cli import build_parser

    units = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"ledgerlora-trainer@.service", "ledgerlora-aggregator.service",
                                       "ledgerlora-unlearner.service", "ledgerlora-relayer.service"}
    for unit in units:
        text = unit.read_text()
        assert "Restart=on-failure" in text and "EnvironmentFile=" in text and "PRIVATE_KEY=0x" not in text.replace(
            "ORCH_PRIVATE_KEY=0x...", "")
        (line,) = [x for x in text.splitlines() if x.startswith("ExecStart=")]
        argv = shlex.split(line.removeprefix("ExecStart=").replace("%i", "sport"))[1:]
        args = build_parser(argv).parse_args(argv)
        assert args.command == "daemon" and args.action == "run" and args.state_dir and args.manifest, unit.name
