"""``storenode wallet``: the home's identity key, balances, and transactions that
move tokens (``transfer``, ``burn``), signed with the home's key."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storenode.cli.amounts import address_arg, amount_arg, format_amount
from storenode.cli.common import (
    Parents,
    command,
    emit,
    fields,
    home_dir,
    home_of,
    plain,
    to_hex,
    with_client,
)

if TYPE_CHECKING:
    from rich.console import Console

    from storenode.client.ledger import LedgerClient
    from storenode.home import Home


def _cmd_wallet_new(args: argparse.Namespace) -> int:
    from storenode.config import ConfigNotFoundError
    from storenode.home import CONFIG_NAME, write_key_file
    from storenode.identity import Identity, address_hex

    root = home_dir(args)
    try:
        key_file = home_of(args).config.identity_file
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
        fields(console, [("address", doc["address"]), ("public key", doc["public_key"])])
        if not (root / CONFIG_NAME).exists():
            console.print(f"this home has no config yet: run  storenode --home {root} init")

    emit(args, doc, render)
    return 0


def _cmd_wallet_address(args: argparse.Namespace) -> int:
    from storenode.identity import address_hex

    home = home_of(args)
    identity = home.identity()
    doc = {"address": address_hex(identity.address), "public_key": identity.public_key.hex()}
    emit(args, doc, lambda c: c.print(doc["address"]))
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

    doc = with_client(args, work)

    def render(console: Console) -> None:
        fields(
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

    emit(args, doc, render)
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
            "tx": to_hex(tx_id),
            "from": address_hex(identity.address),
            **plain(signed.tx.body),
            "fee": format_amount(fee),
            "nonce": signed.tx.nonce,
            "height": None,
            "index": None,
        }
        if args.wait:
            info = await client.wait_for_tx(tx_id, timeout=args.timeout)
            doc.update(height=info.height, index=info.index)
        return doc

    doc = with_client(args, work)

    def render(console: Console) -> None:
        where = "pending" if doc["height"] is None else f"in block {doc['height']}"
        console.print(f"{what}: transaction {doc['tx']} ({where})")
        if doc["height"] is None and not args.wait:
            console.print(f"check it with  storenode chain tx {doc['tx']}")

    emit(args, doc, render)
    return 0


def _cmd_wallet_transfer(args: argparse.Namespace) -> int:
    from contracts import Amount, Transfer

    what = f"sent {format_amount(args.amount)} tokens to {to_hex(args.to)}"
    return _send(args, lambda: Transfer(args.to, Amount(args.amount)), what)


def _cmd_wallet_burn(args: argparse.Namespace) -> int:
    from contracts import Amount, Burn

    return _send(args, lambda: Burn(Amount(args.amount)), f"burned {format_amount(args.amount)}")


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    printing, sending = parents.printing, parents.sending
    wallet = sub.add_parser("wallet", help="the home's key and tokens")
    wsub = wallet.add_subparsers(dest="wallet_command", required=True)
    command(
        wsub, "new", _cmd_wallet_new, "create the home's identity key (never overwrites)", printing
    )
    command(wsub, "address", _cmd_wallet_address, "print the home's address", printing)
    balance = command(
        wsub, "balance", _cmd_wallet_balance, "an account's balance and standing", printing
    )
    balance.add_argument("address", nargs="?", type=address_arg, help="default: the home's")
    transfer = command(wsub, "transfer", _cmd_wallet_transfer, "send tokens to an address", sending)
    transfer.add_argument("to", type=address_arg, metavar="TO", help="0x address")
    transfer.add_argument("amount", type=amount_arg, metavar="AMOUNT", help="tokens, e.g. 1.5")
    burn = command(wsub, "burn", _cmd_wallet_burn, "burn tokens (builds reputation)", sending)
    burn.add_argument("amount", type=amount_arg, metavar="AMOUNT", help="tokens, e.g. 1.5")
