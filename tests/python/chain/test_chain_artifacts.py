"""Build artifacts, error selectors and the deployment manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_utils import keccak

from orchestrator.chain import ArtifactError, ContractRecord, Manifest, error_selectors, load_artifact


def test_load_artifact_reads_abi_and_creation_bytecode(build_dir: Path) -> None:
    artifact = load_artifact("ChainProbe", build_dir)
    raw = json.loads((build_dir / "ChainProbe.json").read_text())
    assert artifact.abi == raw["abi"]
    assert artifact.bytecode.removeprefix("0x") == raw["bytecode"].removeprefix("0x")
    assert artifact.deployable


def test_missing_artifact_error_names_the_contract_and_says_how_to_compile(build_dir: Path) -> None:
    with pytest.raises(ArtifactError) as info:
        load_artifact("NoSuchContract", build_dir)
    assert "NoSuchContract" in str(info.value) and "make setup" in str(info.value)
    assert "ChainProbe" in str(info.value)  # lists what is there


def test_error_selectors_cover_every_artifact_with_types_and_builtins(build_dir: Path) -> None:
    selectors = error_selectors(build_dir)
    rejected = keccak(text="ChainProbeRejected(uint256,bytes32)")[:4]
    assert selectors[rejected][:2] == ("ChainProbeRejected", ("uint256", "bytes32"))
    assert selectors[rejected].arg_names == ("id", "tag")
    assert selectors[bytes.fromhex("08c379a0")].name == "Error"
    assert selectors[bytes.fromhex("4e487b71")].name == "Panic"
    # Every error of every artifact is there, under its independently computed selector.
    for path in build_dir.glob("*.json"):
        for item in json.loads(path.read_text())["abi"]:
            if item["type"] == "error":
                sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                if "tuple" not in sig:
                    assert selectors[keccak(text=sig)[:4]].name == item["name"]


def test_manifest_round_trips_through_an_atomic_write(tmp_path: Path) -> None:
    manifest = Manifest(
        chain_id=1337,
        network="in-process",
        deployer="0x" + "ab" * 20,
        contracts={"Rounds": ContractRecord("0x" + "cd" * 20, "build/contracts/Rounds.json", 7)},
        params={"min_stake": 10, "orgs": ["0x" + "01" * 20]},
    )
    path = Manifest.path_for(1337, tmp_path / "deployments")
    manifest.write(path)
    assert path == tmp_path / "deployments" / "1337.json"
    assert [p.name for p in path.parent.iterdir()] == ["1337.json"]  # no temp file left behind
    data = json.loads(path.read_text())
    assert set(data) == {"chain_id", "network", "deployer", "contracts", "params"}
    rounds = data["contracts"]["Rounds"]
    assert rounds["address"].lower() == "0x" + "cd" * 20 and rounds["address"] != rounds["address"].lower()
    assert (rounds["artifact"], rounds["block"]) == ("build/contracts/Rounds.json", 7)
    again = Manifest.read(path)
    assert again == manifest
    assert again.address("Rounds").lower() == "0x" + "cd" * 20
    assert again.first_block == 7


def test_manifest_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no deployment manifest"):
        Manifest.read(tmp_path / "nothing.json")
    with pytest.raises(ArtifactError, match="'0x1234' is not an address"):
        ContractRecord("0x1234", "x.json", 0)
    manifest = Manifest(chain_id=5, network="", deployer="")
    with pytest.raises(ArtifactError, match="'Rounds' is not in the manifest of chain 5"):
        manifest.address("Rounds")
