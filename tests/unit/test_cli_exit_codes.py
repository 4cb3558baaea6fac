"""storenode.cli.common.exit_code: which failures exit 1, which 2, which are bugs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from storenode.cli.common import OutputExistsError, exit_code
from storenode.client.content import ContentNotFoundError, PaymentRequiredError
from storenode.client.ledger import ClientError
from storenode.client.via_node import OutputWriteError
from storenode.coding.errors import GfBackendUnavailableError
from storenode.config import ConfigError
from storenode.home import HomeError, KeyFileError, KeyFileExistsError
from storenode.ledger import ChainStoreError, GenesisInvalidError
from storenode.localnet import LocalnetError, LocalnetParamsError
from storenode.node import NodeError


def _instance(cls: type[Exception]) -> Exception:
    return cls.__new__(cls)  # the class is what counts, not its arguments


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (OutputExistsError, 1),
        (KeyFileExistsError, 1),  # before KeyFileError, its base, which is 2
        (OutputWriteError, 1),
        (ConfigError, 2),
        (GfBackendUnavailableError, 2),  # STORENODE_GF_BACKEND names no kernel that loads
        (KeyFileError, 2),
        (GenesisInvalidError, 2),
        (LocalnetParamsError, 2),  # before LocalnetError, its base, which is 1
        (ContentNotFoundError, 1),
        (PaymentRequiredError, 1),
        (ClientError, 1),
        (HomeError, 1),
        (ChainStoreError, 1),
        (LocalnetError, 1),
        (NodeError, 1),
        (RuntimeError, None),  # a bug: re-raised with its traceback
        (KeyError, None),
    ],
)
def test_each_failure_has_its_exit_code(cls: type[Exception], code: int | None) -> None:
    assert exit_code(_instance(cls)) == code


def test_a_failing_command_imports_nothing_to_find_its_exit_code() -> None:
    """The modules of failures that were never raised stay unimported (importing
    them all made a failing fetch through the node ~0.4 s slower)."""
    script = (
        "import sys; from storenode.cli.common import exit_code;"
        "from storenode.client.content import ContentNotFoundError as E;"
        "assert exit_code(E('gone')) == 1 and exit_code(RuntimeError()) is None;"
        "print(sorted(m for m in ('storenode.node', 'storenode.ledger', 'storenode.localnet',"
        " 'storenode.client.ledger', 'trio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
