"""Brownie build artifacts and the deployment manifest.

The orchestrator deploys and talks to contracts from ``build/contracts/<Name>.json`` (what
``brownie compile`` writes) without importing brownie, and records where they went in
``deployments/<chainid>.json``, the same file ``scripts/deploy.py`` writes.
"""

from __future__ import annotations

import json
import os
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from eth_utils import keccak, to_checksum_address

from orchestrator.chain.errors import ArtifactError

#: The project checkout this package runs from (an editable install, or the repository itself).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _project_dir(env: str, relative: str) -> Path:
    """``$env`` if set, else ``relative`` inside the project (so the CLI works from any folder)."""
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return PROJECT_ROOT / relative


DEFAULT_BUILD_DIR = _project_dir("ORCH_BUILD_DIR", "build/contracts")
DEFAULT_DEPLOYMENTS_DIR = _project_dir("ORCH_DEPLOYMENTS_DIR", "deployments")

_COMPILE_HINT = "run `make setup` (or `brownie compile`) in the repository root"


@dataclass(frozen=True)
class Artifact:
    """What deploying and calling a contract needs from its build artifact."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.abi, list):
            raise ArtifactError(f"artifact {self.name}: 'abi' must be a list, got {type(self.abi).__name__}")

    @property
    def deployable(self) -> bool:
        """False for interfaces and abstract contracts (no creation code)."""
        return len(self.bytecode.removeprefix("0x")) > 0


def load_artifact(name: str, build_dir: Path = DEFAULT_BUILD_DIR) -> Artifact:
    """Read ``build_dir/<name>.json``; a missing or broken file raises :class:`ArtifactError`."""
    path = Path(build_dir) / f"{name}.json"
    if not path.is_file():
        available = sorted(p.stem for p in Path(build_dir).glob("*.json")) if Path(build_dir).is_dir() else []
        hint = f" (available: {', '.join(available)})" if available else ""
        raise ArtifactError(f"no build artifact for contract {name!r} at {path}{hint}; {_COMPILE_HINT}")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read build artifact {path}: {exc}; {_COMPILE_HINT}") from exc
    try:
        abi, bytecode = data["abi"], data.get("bytecode", "")
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"build artifact {path} has no 'abi'; is it a brownie artifact? {_COMPILE_HINT}") from exc
    if not isinstance(bytecode, str):
        raise ArtifactError(f"build artifact {path}: 'bytecode' is not a hex string")
    if bytecode and not bytecode.startswith("0x"):
        bytecode = "0x" + bytecode
    if "__" in bytecode:
        raise ArtifactError(f"build artifact {path} needs library linking, which the orchestrator does not do")
    return Artifact(name=name, abi=abi, bytecode=bytecode, path=path)


# --------------------------------------------------------------------------------------------
# custom-error selectors
# --------------------------------------------------------------------------------------------


class ErrorSpec(NamedTuple):
    """A Solidity error: ``(name, input types)`` plus the parameter names for messages."""

    name: str
    types: tuple[str, ...]
    arg_names: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.types)})"


def _abi_type(param: dict[str, Any]) -> str:
    """Canonical ABI type of an ABI input, expanding tuples (structs) to ``(t1,t2)``."""
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", []))
        return f"({inner}){typ[len('tuple'):]}"
    return typ


BUILTIN_ERRORS: dict[bytes, ErrorSpec] = {
    bytes.fromhex("08c379a0"): ErrorSpec("Error", ("string",), ("reason",)),
    bytes.fromhex("4e487b71"): ErrorSpec("Panic", ("uint256",), ("code",)),
}


def selectors_from_abi(abi: list[dict[str, Any]]) -> dict[bytes, ErrorSpec]:
    """4-byte selector -> error, for every ``type: error`` entry of one ABI."""
    out: dict[bytes, ErrorSpec] = {}
    for item in abi:
        if item.get("type") != "error":
            continue
        inputs = item.get("inputs", [])
        spec = ErrorSpec(
            name=str(item["name"]),
            types=tuple(_abi_type(p) for p in inputs),
            arg_names=tuple(str(p.get("name") or f"arg{i}") for i, p in enumerate(inputs)),
        )
        out[keccak(text=spec.signature)[:4]] = spec
    return out


def error_selectors(build_dir: Path = DEFAULT_BUILD_DIR) -> dict[bytes, ErrorSpec]:
    """Selector -> error for every artifact in ``build_dir`` (and ``../interfaces``) and the built-ins.

    Reverts are decoded against ALL artifacts because an error can bubble up from a contract
    other than the one called (e.g. an ERC20 error raised inside ``Staking.stake``).
    """
    build_dir = Path(build_dir)
    out: dict[bytes, ErrorSpec] = dict(BUILTIN_ERRORS)
    dirs = [build_dir, build_dir.parent / "interfaces"]
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            try:
                abi = json.loads(path.read_text()).get("abi", [])
            except (OSError, json.JSONDecodeError, AttributeError):
                continue  # not an artifact (brownie keeps other JSON next to them)
            for selector, spec in selectors_from_abi(abi).items():
                out.setdefault(selector, spec)
    return out


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------


@dataclass
class ContractRecord:
    """Where one contract of a deployment lives."""

    address: str
    artifact: str
    block: int  # brownie may record None when it does not know; read as 0 (scan from genesis)

    def __post_init__(self) -> None:
        try:
            self.address = to_checksum_address(self.address)
        except (ValueError, TypeError) as exc:
            raise ArtifactError(f"manifest: {self.address!r} is not an address") from exc
        block = 0 if self.block is None else self.block
        if not isinstance(block, int) or block < 0:
            raise ArtifactError(f"manifest: deployment block must be an integer >= 0, got {self.block!r}")
        self.block = block


_MANIFEST_KEYS = frozenset({"chain_id", "network", "deployer", "contracts", "params"})


@dataclass
class Manifest:
    """``deployments/<chainid>.json``: what was deployed where (format of scripts/deploy.py)."""

    chain_id: int
    network: str
    deployer: str
    contracts: dict[str, ContractRecord] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    #: Other top-level keys, kept as they are (scripts/deploy.py adds "orgs" on local networks).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if int(self.chain_id) <= 0:
            raise ArtifactError(f"manifest: chain_id must be positive, got {self.chain_id}")
        self.chain_id = int(self.chain_id)
        self.contracts = {
            name: rec if isinstance(rec, ContractRecord) else ContractRecord(**rec)
            for name, rec in self.contracts.items()
        }

    def address(self, name: str) -> str:
        """Address of contract ``name``; a clear error names the contracts that do exist."""
        try:
            return self.contracts[name].address
        except KeyError:
            raise ArtifactError(
                f"contract {name!r} is not in the manifest of chain {self.chain_id} "
                f"(has: {', '.join(sorted(self.contracts)) or 'nothing'})"
            ) from None

    @property
    def orgs(self) -> list[str]:
        """The org accounts of a local deployment (top-level "orgs"), else empty."""
        return [to_checksum_address(a) for a in self.extra.get("orgs", [])]

    @property
    def first_block(self) -> int:
        """Lowest deployment block: where an event scanner of this deployment starts."""
        return min((r.block for r in self.contracts.values()), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "chain_id": self.chain_id,
            "network": self.network,
            "deployer": self.deployer,
            "contracts": {
                name: {"address": r.address, "artifact": r.artifact, "block": r.block}
                for name, r in self.contracts.items()
            },
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        try:
            return cls(
                chain_id=data["chain_id"],
                network=data.get("network", ""),
                deployer=data.get("deployer", ""),
                contracts=data.get("contracts", {}),
                params=data.get("params", {}),
                extra={k: v for k, v in data.items() if k not in _MANIFEST_KEYS},
            )
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"malformed deployment manifest: {exc!r}") from exc

    @staticmethod
    def path_for(chain_id: int, directory: Path = DEFAULT_DEPLOYMENTS_DIR) -> Path:
        return Path(directory) / f"{int(chain_id)}.json"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(
                f"no deployment manifest at {path}; deploy first "
                "(`brownie run scripts/deploy.py` or `python -m orchestrator deploy`)"
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"cannot read deployment manifest {path}: {exc}") from exc
        return cls.from_dict(data)

    def write(self, path: Path) -> Path:
        """Write atomically (temp file + rename) so a reader never sees half a manifest."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.to_dict(), fh, indent=2, sort_keys=False, default=_json_default)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"manifest params: {type(value).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------------------------
# contract names per chain connection (for messages and decoded events)
# --------------------------------------------------------------------------------------------

_NAMES: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def register_contract_name(w3: Any, address: str, name: str) -> None:
    """Remember that ``address`` on ``w3``'s chain is contract ``name`` (deploy and Protocol do this)."""
    _NAMES.setdefault(w3, {})[to_checksum_address(address)] = name


def contract_name(w3: Any, address: str) -> str | None:
    """The registered name of ``address`` on ``w3``'s chain, or None."""
    try:
        return _NAMES.get(w3, {}).get(to_checksum_address(address))
    except (ValueError, TypeError):
        return None
