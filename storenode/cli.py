"""The ``storenode`` command.

Sub-commands import their modules lazily, so ``storenode --help`` stays fast.
Every command takes ``--home DIR`` (before or after its name; default
``$STORENODE_HOME``, else ``~/.storenode``); those that print take ``--json``
(one JSON object on stdout) and otherwise print for a person (rich).

Token amounts are read and shown as decimals of whole tokens (``1.5`` is
1.5 × 10^18 base units), exactly, never through a float. Exit codes: 0 done,
1 failed (the node refused, is unreachable, or has no such thing), 2 bad
input (arguments, config, key or genesis file).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from storenode.client.ledger import LedgerClient
    from storenode.home import Home
    from storenode.ledger.messages import RoleName

DECIMALS = 18
"""The contracts' ``DECIMALS`` (not imported: ``contracts`` is slow to import)."""
TOKEN: int = 10**DECIMALS
MAX_UNITS: int = 2**256 - 1
MAX_WHOLE_DIGITS = len(str(MAX_UNITS // TOKEN))
_AMOUNT = re.compile(r"([0-9]*)(?:\.([0-9]+))?", re.ASCII)
_HEX = re.compile(r"(?:0x)?([0-9a-fA-F]*)", re.ASCII)


# -- amounts, addresses and hashes ------------------------------------------------------------


class AmountInvalidError(ValueError):
    """Text that is not an amount of tokens."""


def parse_amount(text: str) -> int:
    """Base units of a decimal amount of tokens (``"1.5"``, ``"2"``, ``".25"``):
    at most 18 decimals, at most 2**256 - 1 base units; exact."""
    m = _AMOUNT.fullmatch(text.strip())
    if m is None or not (m.group(1) or m.group(2)):
        raise AmountInvalidError(
            f"{text!r} is not an amount of tokens: write a decimal number such as 1.5"
        )
    whole: str = (m.group(1) or "").lstrip("0") or "0"
    frac: str = m.group(2) or ""
    if len(frac) > DECIMALS:
        raise AmountInvalidError(
            f"{text!r} has {len(frac)} decimals; a token has at most {DECIMALS}"
        )
    too_large = AmountInvalidError(f"{text!r} is more tokens than can exist")
    if len(whole) > MAX_WHOLE_DIGITS:
        raise too_large
    units = int(whole) * TOKEN + int(frac.ljust(DECIMALS, "0"))
    if units > MAX_UNITS:
        raise too_large
    return units


def format_amount(units: int) -> str:
    """Base units as a decimal of tokens, without trailing zeros (``1.5``, ``2``)."""
    if units < 0:
        raise ValueError("an amount is not negative")
    whole, frac = divmod(units, TOKEN)
    digits = f"{frac:0{DECIMALS}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def parse_hex(text: str, size: int, what: str) -> bytes:
    m = _HEX.fullmatch(text.strip())
    if m is None or len(m.group(1)) != 2 * size:
        raise ValueError(f"{text!r} is not {what}: expected 0x and {2 * size} hex digits")
    return bytes.fromhex(m.group(1))


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` that reports ``parse``'s ValueError as a usage error (exit 2)."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    convert.__name__ = parse.__name__
    return convert


amount_arg = _arg(parse_amount)
address_arg = _arg(lambda t: parse_hex(t, 20, "an address"))
hash_arg = _arg(lambda t: parse_hex(t, 32, "a hash"))


# -- output --------------------------------------------------------------------------------


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160  # piped: leave addresses and hashes whole
    return console


def _emit(args: argparse.Namespace, doc: dict[str, Any], render: Callable[[Console], None]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        render(_console())


def _fields(console: Console, rows: Sequence[tuple[str, object]]) -> None:
    from rich.text import Text

    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        console.print(Text.assemble((label.ljust(width), "bold"), str(value)))


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def _plain(value: Any) -> Any:
    """A transaction body's value as JSON: addresses and hashes as 0x hex,
    amounts as decimals of tokens, records as objects."""
    import msgspec

    from contracts import Amount

    if isinstance(value, Amount):
        return format_amount(value)
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, msgspec.Struct):
        return {f: _plain(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _tx_doc(raw: bytes) -> dict[str, Any]:
    from contracts import decode_tx, tx_id
    from storenode.identity import address_hex, address_of

    signed = decode_tx(raw)
    tx = signed.tx
    kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(tx.body).__name__).lower()
    return {
        "tx": _hex(tx_id(tx)),
        "type": kind,
        "sender": address_hex(address_of(tx.sender)),
        "nonce": tx.nonce,
        "fee": format_amount(tx.fee),
        "body": _plain(tx.body),
    }


# -- homes and nodes -----------------------------------------------------------------------


def _home_dir(args: argparse.Namespace) -> Path:
    from storenode.home import default_home

    return Path(args.home).expanduser() if args.home else default_home()


def _home(args: argparse.Namespace) -> Home:
    from storenode.home import open_home

    return open_home(_home_dir(args))


def _with_client(args: argparse.Namespace, work: Callable[[LedgerClient, Home], Any]) -> Any:
    """Run ``await work(client, home)`` with a client of the node the home talks to."""
    import trio

    from storenode.client.ledger import open_home_client

    home = _home(args)

    async def main() -> Any:
        async with open_home_client(home) as client:
            return await work(client, home)

    return trio.run(main)


# -- init, ledger, localnet ----------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    from storenode.config import Config, PeerSpec
    from storenode.home import init_home
    from storenode.identity import address_hex

    peers = []
    for text in args.peer:
        try:
            peers.append(PeerSpec.parse(text))
        except ValueError as exc:
            raise _usage(args, f"--peer {text!r}: {exc}") from None
    default = Config()
    config = Config(
        listen_host=args.host or default.listen_host,
        listen_port=args.port or default.listen_port,
        peers=tuple(peers),
        genesis_file=Path(args.genesis).absolute() if args.genesis else default.genesis_file,
    )
    home, wrote_key = init_home(_home_dir(args), config)
    identity = home.identity()
    doc = {
        "home": str(home.root),
        "config": str(home.config_path),
        "key_file": str(home.config.identity_file),
        "key_created": wrote_key,
        "address": address_hex(identity.address),
        "public_key": identity.public_key.hex(),
        "wire": f"{config.listen_host}:{config.listen_port}",
    }

    def render(console: Console) -> None:
        console.print(f"created the storenode home {home.root}")
        _fields(
            console,
            [
                ("config", home.config_path),
                ("identity key", f"{doc['key_file']} ({'new' if wrote_key else 'kept'})"),
                ("address", doc["address"]),
                ("public key", doc["public_key"]),
                ("listens on", doc["wire"]),
            ],
        )
        genesis = home.config.genesis_file
        if not genesis.exists():
            console.print(f"next: put the chain's genesis file at {genesis}, then run")
        else:
            console.print("next: run")
        console.print(f"  storenode --home {home.root} ledger")

    _emit(args, doc, render)
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    import trio

    from storenode.node import run_ledger_node

    home = _home(args)
    level = getattr(logging, home.config.log_level.upper())
    if args.verbose:
        level = min(level, logging.INFO)
    logging.getLogger().setLevel(level)
    trio.run(run_ledger_node, home.root)
    return 0


def _cmd_localnet_init(args: argparse.Namespace) -> int:
    from storenode.localnet import init_localnet

    net = init_localnet(
        Path(args.dir),
        validators=args.validators,
        followers=args.followers,
        block_time=args.block_time,
        window_blocks=args.window_blocks,
    )

    def render(console: Console) -> None:
        from rich.table import Table

        g = net.genesis
        console.print(
            f"localnet written to {net.genesis_file.parent}: chain {g.chain_id}, "
            f"a block every {g.block_time} s, windows of {g.window_blocks} blocks, "
            f"burn {g.params.burn_bps / 100:g}% of payouts, penalty "
            f"{g.params.penalty_bps / 100:g}% of collateral"
        )
        table = Table("name", "role", "address", "wire", "home")
        for h in net.homes:
            table.add_row(h.name, h.role, h.address, h.wire or "-", str(h.home))
        console.print(table, soft_wrap=False)
        console.print("start each node with  storenode --home <home> ledger")

    _emit(args, net.to_json(), render)
    return 0


# -- wallet --------------------------------------------------------------------------------


def _cmd_wallet_new(args: argparse.Namespace) -> int:
    from storenode.config import ConfigNotFoundError
    from storenode.home import CONFIG_NAME, write_key_file
    from storenode.identity import Identity, address_hex

    root = _home_dir(args)
    try:
        key_file = _home(args).config.identity_file
    except ConfigNotFoundError:
        key_file = (root / "identity.key").absolute()
    identity = Identity.generate()
    write_key_file(key_file, identity)
    doc = {
        "address": address_hex(identity.address),
        "public_key": identity.public_key.hex(),
        "key_file": str(key_file),
    }

    def render(console: Console) -> None:
        console.print(f"created a new identity key in {key_file} (mode 0600)")
        _fields(console, [("address", doc["address"]), ("public key", doc["public_key"])])
        if not (root / CONFIG_NAME).exists():
            console.print(f"this home has no config yet: run  storenode --home {root} init")

    _emit(args, doc, render)
    return 0


def _cmd_wallet_address(args: argparse.Namespace) -> int:
    from storenode.identity import address_hex

    home = _home(args)
    identity = home.identity()
    doc = {"address": address_hex(identity.address), "public_key": identity.public_key.hex()}
    _emit(args, doc, lambda c: c.print(doc["address"]))
    return 0


def _cmd_wallet_balance(args: argparse.Namespace) -> int:
    from storenode.identity import address_hex

    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        address = args.address if args.address is not None else home.identity().address
        info = await client.call_account(address)
        return {
            "address": address_hex(info.address),
            "height": info.height,
            "balance": format_amount(int(info.balance)),
            "nonce": info.nonce,
            "next_nonce": info.next_nonce,
            "burned": format_amount(int(info.burned)),
            "reputation": format_amount(int(info.reputation)),
            "windows_proven": info.windows_proven,
            "windows_missed": info.windows_missed,
        }

    doc = _with_client(args, work)

    def render(console: Console) -> None:
        _fields(
            console,
            [
                ("address", doc["address"]),
                ("balance", f"{doc['balance']} tokens (at block {doc['height']})"),
                ("nonce", f"{doc['nonce']} (next {doc['next_nonce']})"),
                ("burned", f"{doc['burned']} tokens"),
                ("reputation", doc["reputation"]),
                ("windows", f"{doc['windows_proven']} proven, {doc['windows_missed']} missed"),
            ],
        )

    _emit(args, doc, render)
    return 0


def _send(args: argparse.Namespace, make_body: Callable[[], Any], what: str) -> int:
    """Sign ``make_body()`` with the home's key, submit it, maybe wait for its block."""
    from contracts import Params
    from storenode.identity import address_hex
    from storenode.ledger import GenesisInvalidError, load_genesis

    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        identity = home.identity()
        fee = args.fee
        if fee is None:
            try:
                fee = int(load_genesis(home.config.genesis_file).params.min_fee)
            except GenesisInvalidError:
                fee = int(Params(chain_id="x").min_fee)
        signed = await client.sign(identity, make_body(), fee=fee)
        tx_id = await client.submit(signed)
        doc: dict[str, Any] = {
            "tx": _hex(tx_id),
            "from": address_hex(identity.address),
            **_plain(signed.tx.body),
            "fee": format_amount(fee),
            "nonce": signed.tx.nonce,
            "height": None,
            "index": None,
        }
        if args.wait:
            info = await client.wait_for_tx(tx_id, timeout=args.timeout)
            doc.update(height=info.height, index=info.index)
        return doc

    doc = _with_client(args, work)

    def render(console: Console) -> None:
        where = "pending" if doc["height"] is None else f"in block {doc['height']}"
        console.print(f"{what}: transaction {doc['tx']} ({where})")
        if doc["height"] is None and not args.wait:
            console.print(f"check it with  storenode chain tx {doc['tx']}")

    _emit(args, doc, render)
    return 0


def _cmd_wallet_transfer(args: argparse.Namespace) -> int:
    from contracts import Amount, Transfer

    what = f"sent {format_amount(args.amount)} tokens to {_hex(args.to)}"
    return _send(args, lambda: Transfer(args.to, Amount(args.amount)), what)


def _cmd_wallet_burn(args: argparse.Namespace) -> int:
    from contracts import Amount, Burn

    return _send(args, lambda: Burn(Amount(args.amount)), f"burned {format_amount(args.amount)}")


# -- chain, registry, contracts ------------------------------------------------------------


def _cmd_chain_status(args: argparse.Namespace) -> int:
    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        s = await client.call_status()
        return {
            "node": client.where,
            "chain_id": s.chain_id,
            "genesis_hash": _hex(s.genesis_hash),
            "height": s.height,
            "tip_hash": _hex(s.tip_hash),
            "tip_time": s.tip_time,
            "state_root": _hex(s.state_root),
        }

    doc = _with_client(args, work)

    def render(console: Console) -> None:
        import datetime

        when = datetime.datetime.fromtimestamp(doc["tip_time"], datetime.UTC)
        _fields(
            console,
            [
                ("node", doc["node"]),
                ("chain", f"{doc['chain_id']} (genesis {doc['genesis_hash']})"),
                ("height", doc["height"]),
                ("tip", f"{doc['tip_hash']} at {when:%Y-%m-%d %H:%M:%S} UTC"),
                ("state root", doc["state_root"]),
            ],
        )

    _emit(args, doc, render)
    return 0


def _cmd_chain_block(args: argparse.Namespace) -> int:
    from storenode.identity import address_hex
    from storenode.ledger import block_hash, decode_block

    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        info = await client.call_get_block(args.height)
        if not info.found:
            return {"height": args.height, "found": False}
        block = decode_block(info.raw)
        h = block.header
        return {
            "height": h.height,
            "found": True,
            "hash": _hex(block_hash(h)),
            "previous_hash": _hex(h.previous_hash),
            "time": h.time,
            "producer": address_hex(h.producer_address),
            "tx_root": _hex(h.tx_root),
            "state_root": _hex(h.state_root),
            "transactions": [_tx_doc(raw) for raw in block.transactions],
        }

    doc = _with_client(args, work)

    def render(console: Console) -> None:
        if not doc["found"]:
            console.print(f"no block {args.height} yet")
            return
        _fields(
            console,
            [
                ("block", doc["height"]),
                ("hash", doc["hash"]),
                ("previous", doc["previous_hash"]),
                ("time", doc["time"]),
                ("producer", doc["producer"]),
                ("state root", doc["state_root"]),
                ("transactions", len(doc["transactions"])),
            ],
        )
        for tx in doc["transactions"]:
            console.print(f"  {tx['tx']}  {tx['type']} from {tx['sender']}")

    _emit(args, doc, render)
    return 0 if doc["found"] else 1


def _cmd_chain_tx(args: argparse.Namespace) -> int:
    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        info = await client.call_get_tx(args.hash)
        doc: dict[str, Any] = {
            "tx": _hex(args.hash),
            "found": info.found,
            "pending": info.pending,
            "height": info.height if info.found else None,
            "index": info.index if info.found else None,
        }
        if info.raw:
            doc.update({k: v for k, v in _tx_doc(info.raw).items() if k != "tx"})
        return doc

    doc = _with_client(args, work)

    def render(console: Console) -> None:
        if doc["found"]:
            state = f"in block {doc['height']} (position {doc['index']})"
        elif doc["pending"]:
            state = "pending (not in a block yet)"
        else:
            console.print(f"transaction {doc['tx']} is unknown to this node")
            return
        rows: list[tuple[str, object]] = [("transaction", doc["tx"]), ("status", state)]
        rows += [("type", doc["type"]), ("sender", doc["sender"]), ("nonce", doc["nonce"])]
        rows += [("fee", doc["fee"])] + [(k, v) for k, v in doc["body"].items()]
        _fields(console, rows)

    _emit(args, doc, render)
    return 0 if doc["found"] or doc["pending"] else 1


def _cmd_registry_show(args: argparse.Namespace) -> int:
    from storenode.identity import address_hex

    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        reply = await client.call_work(args.fingerprint)
        w = reply.work
        if w is None:
            return {"fingerprint": _hex(args.fingerprint), "found": False}
        return {
            "fingerprint": _hex(w.fingerprint),
            "found": True,
            "name": w.name,
            "version": w.version,
            "date": w.date,
            "author": w.author,
            "owner": address_hex(w.owner),
            "manifest_hash": _hex(w.manifest_hash),
            "registered_height": w.registered_height,
            "registered_time": w.registered_time,
        }

    doc = _with_client(args, work)

    def render(console: Console) -> None:
        if not doc["found"]:
            console.print(f"no work is registered under {doc['fingerprint']}")
            return
        _fields(console, [(k.replace("_", " "), v) for k, v in doc.items() if k != "found"])

    _emit(args, doc, render)
    return 0 if doc["found"] else 1


def _cmd_contracts_list(args: argparse.Namespace) -> int:
    from storenode.identity import address_hex

    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        if args.host is not None:
            asks: list[tuple[bytes, RoleName]] = [(args.host, "host")]
        elif args.publisher is not None:
            asks = [(args.publisher, "publisher")]
        else:
            me = home.identity().address
            asks = [(me, "host"), (me, "publisher")]
        found: dict[bytes, Any] = {}
        for address, role in asks:
            for c in await client.all_contracts(address, role):
                found.setdefault(c.contract_id, c)
        height = (await client.call_status()).height
        rows = []
        for c in found.values():
            row = _plain(c)
            row["publisher"] = address_hex(c.publisher)
            row["host"] = address_hex(c.host)
            for key in ("price_per_window", "escrow", "collateral"):
                row[key] = format_amount(int(getattr(c, key)))
            rows.append(row)
        return {"height": height, "contracts": rows}

    doc = _with_client(args, work)

    def render(console: Console) -> None:
        from rich.table import Table

        if not doc["contracts"]:
            console.print(f"no storage contracts (at block {doc['height']})")
            return
        table = Table("contract", "status", "publisher", "host", "window", "proven", "escrow")
        for c in doc["contracts"]:
            window = {"pending": 0, "active": c["window"] + 1}.get(c["status"], c["windows"])
            table.add_row(
                c["contract_id"][:18] + "…",
                c["status"],
                c["publisher"][:12] + "…",
                c["host"][:12] + "…",
                f"{window}/{c['windows']}",
                f"{c['windows_proven']} ({c['windows_missed']} missed)",
                c["escrow"],
            )
        console.print(table, soft_wrap=False)

    _emit(args, doc, render)
    return 0


# -- demo and bench ------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from storenode.demo import run_demo

    return run_demo(workdir=args.dir, keep=args.keep)


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    bench = importlib.import_module(f"storenode.bench.{args.what}")
    rc: int = bench.main(json_out=args.json, quick=args.quick)
    return rc


# -- the parser ----------------------------------------------------------------------------


class _UsageError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


def _usage(args: argparse.Namespace, message: str) -> _UsageError:
    return _UsageError(args.parser, message)


def build_parser() -> argparse.ArgumentParser:
    from storenode import __version__

    home_help = "the node's home directory (default: $STORENODE_HOME, else ~/.storenode)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", default=argparse.SUPPRESS, metavar="DIR", help=home_help)
    printing = argparse.ArgumentParser(add_help=False, parents=[common])
    printing.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sending = argparse.ArgumentParser(add_help=False, parents=[printing])
    sending.add_argument(
        "--fee", type=amount_arg, default=None, help="fee in tokens (default: the chain's minimum)"
    )
    sending.add_argument("--wait", action="store_true", help="wait until it is in a block")
    sending.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="how long --wait waits (60 s)"
    )

    p = argparse.ArgumentParser(
        prog="storenode",
        description="storenode: decentralized storage and streaming for music and other media",
    )
    p.add_argument("--version", action="version", version=f"storenode {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens (INFO)")
    p.add_argument("--home", default=None, metavar="DIR", help=home_help)
    sub = p.add_subparsers(dest="command", required=True)

    def command(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        base: argparse.ArgumentParser = printing,
    ) -> argparse.ArgumentParser:
        cmd = parent.add_parser(name, help=help, description=help, parents=[base])
        cmd.set_defaults(func=func, parser=cmd)
        return cmd

    init = command(sub, "init", _cmd_init, "create a node home: identity key and config.toml")
    init.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    init.add_argument("--port", type=int, help="port to listen on (default 7400)")
    init.add_argument("--genesis", metavar="FILE", help="the chain's genesis file")
    init.add_argument(
        "--peer", action="append", default=[], metavar="KEY@HOST:PORT", help="a peer (repeat)"
    )
    command(sub, "ledger", _cmd_ledger, "run the ledger node of the home", common)

    localnet = sub.add_parser("localnet", help="a local network on 127.0.0.1")
    lsub = localnet.add_subparsers(dest="localnet_command", required=True)
    linit = command(
        lsub, "init", _cmd_localnet_init, "write a genesis and the homes of a local network"
    )
    linit.add_argument("--dir", required=True, help="a new or empty directory")
    linit.add_argument("--validators", type=int, default=1, metavar="N", help="default 1")
    linit.add_argument("--followers", type=int, default=1, metavar="M", help="default 1")
    linit.add_argument(
        "--block-time", type=int, default=2, metavar="S", help="seconds between blocks (2)"
    )
    linit.add_argument(
        "--window-blocks", type=int, default=None, metavar="W", help="storage window length (20)"
    )

    wallet = sub.add_parser("wallet", help="the home's key and tokens")
    wsub = wallet.add_subparsers(dest="wallet_command", required=True)
    command(wsub, "new", _cmd_wallet_new, "create the home's identity key (never overwrites)")
    command(wsub, "address", _cmd_wallet_address, "print the home's address")
    balance = command(wsub, "balance", _cmd_wallet_balance, "an account's balance and standing")
    balance.add_argument("address", nargs="?", type=address_arg, help="default: the home's")
    transfer = command(wsub, "transfer", _cmd_wallet_transfer, "send tokens to an address", sending)
    transfer.add_argument("to", type=address_arg, metavar="TO", help="0x address")
    transfer.add_argument("amount", type=amount_arg, metavar="AMOUNT", help="tokens, e.g. 1.5")
    burn = command(wsub, "burn", _cmd_wallet_burn, "burn tokens (builds reputation)", sending)
    burn.add_argument("amount", type=amount_arg, metavar="AMOUNT", help="tokens, e.g. 1.5")

    chain = sub.add_parser("chain", help="the chain as the node sees it")
    csub = chain.add_subparsers(dest="chain_command", required=True)
    command(csub, "status", _cmd_chain_status, "height, tip and state root")
    block = command(csub, "block", _cmd_chain_block, "one block and its transactions")
    block.add_argument("height", type=int, metavar="N")
    tx = command(csub, "tx", _cmd_chain_tx, "where a transaction is")
    tx.add_argument("hash", type=hash_arg, metavar="HASH")

    registry = sub.add_parser("registry", help="registered works")
    rsub = registry.add_subparsers(dest="registry_command", required=True)
    show = command(rsub, "show", _cmd_registry_show, "a work by its fingerprint")
    show.add_argument("fingerprint", type=hash_arg, metavar="FINGERPRINT")

    contracts = sub.add_parser("contracts", help="storage contracts")
    ksub = contracts.add_subparsers(dest="contracts_command", required=True)
    klist = command(
        ksub, "list", _cmd_contracts_list, "contracts of an address (default: the home's)"
    )
    who = klist.add_mutually_exclusive_group()
    who.add_argument("--host", type=address_arg, metavar="ADDR", help="contracts ADDR hosts")
    who.add_argument("--publisher", type=address_arg, metavar="ADDR", help="ADDR publishes")

    demo = sub.add_parser(
        "demo", help="code a small catalogue into a LevelDB store, lose chunks, recover it"
    )
    demo.add_argument("--dir", default=None, help="work in DIR (default: a temporary folder)")
    demo.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="measure speed, side by side with a peer")
    bench.add_argument(
        "what", choices=["coding", "wire", "dht", "ledger"], help="which part to measure"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.add_argument("--quick", action="store_true", help="shorter runs (for smoke tests)")
    bench.set_defaults(func=_cmd_bench)
    return p


# -- errors --------------------------------------------------------------------------------


def _exit_code(exc: Exception) -> int | None:
    """2 for bad input, 1 for a failure, None for a bug (re-raised)."""
    from storenode.client.ledger import ClientError
    from storenode.config import ConfigError
    from storenode.home import HomeError, KeyFileError, KeyFileExistsError
    from storenode.ledger import ChainStoreError, GenesisInvalidError
    from storenode.localnet import LocalnetError, LocalnetParamsError
    from storenode.node import NodeError

    if isinstance(exc, KeyFileExistsError):
        return 1
    if isinstance(exc, ConfigError | KeyFileError | GenesisInvalidError | LocalnetParamsError):
        return 2
    if isinstance(exc, ClientError | HomeError | ChainStoreError | LocalnetError | NodeError):
        return 1
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from storenode.tuning import tune_allocator

    tune_allocator()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.home = getattr(args, "home", None)
    args.json = getattr(args, "json", False)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        rc: int = args.func(args)
    except _UsageError as exc:
        exc.parser.error(str(exc))  # exits 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            raise
        sys.stderr.write(f"storenode: error: {exc}\n")
        return code
    return rc


if __name__ == "__main__":
    sys.exit(main())
