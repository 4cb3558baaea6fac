"""``storenode chain`` (status, blocks, transactions), ``storenode registry``
(registered works) and ``storenode contracts`` (storage contracts): the chain as
the home's node sees it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from storenode.cli.amounts import address_arg, format_amount, hash_arg
from storenode.cli.common import Parents, command, emit, fields, plain, to_hex, tx_doc, with_client

if TYPE_CHECKING:
    from rich.console import Console

    from storenode.client.ledger import LedgerClient
    from storenode.home import Home
    from storenode.ledger.messages import RoleName


def _cmd_chain_status(args: argparse.Namespace) -> int:
    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        s = await client.call_status()
        return {
            "node": client.where,
            "chain_id": s.chain_id,
            "genesis_hash": to_hex(s.genesis_hash),
            "height": s.height,
            "tip_hash": to_hex(s.tip_hash),
            "tip_time": s.tip_time,
            "state_root": to_hex(s.state_root),
        }

    doc = with_client(args, work)

    def render(console: Console) -> None:
        import datetime

        when = datetime.datetime.fromtimestamp(doc["tip_time"], datetime.UTC)
        fields(
            console,
            [
                ("node", doc["node"]),
                ("chain", f"{doc['chain_id']} (genesis {doc['genesis_hash']})"),
                ("height", doc["height"]),
                ("tip", f"{doc['tip_hash']} at {when:%Y-%m-%d %H:%M:%S} UTC"),
                ("state root", doc["state_root"]),
            ],
        )

    emit(args, doc, render)
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
            "hash": to_hex(block_hash(h)),
            "previous_hash": to_hex(h.previous_hash),
            "time": h.time,
            "producer": address_hex(h.producer_address),
            "tx_root": to_hex(h.tx_root),
            "state_root": to_hex(h.state_root),
            "transactions": [tx_doc(raw) for raw in block.transactions],
        }

    doc = with_client(args, work)

    def render(console: Console) -> None:
        if not doc["found"]:
            console.print(f"no block {args.height} yet")
            return
        fields(
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

    emit(args, doc, render)
    return 0 if doc["found"] else 1


def _cmd_chain_tx(args: argparse.Namespace) -> int:
    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        info = await client.call_get_tx(args.hash)
        doc: dict[str, Any] = {
            "tx": to_hex(args.hash),
            "found": info.found,
            "pending": info.pending,
            "height": info.height if info.found else None,
            "index": info.index if info.found else None,
        }
        if info.raw:
            doc.update({k: v for k, v in tx_doc(info.raw).items() if k != "tx"})
        return doc

    doc = with_client(args, work)

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
        fields(console, rows)

    emit(args, doc, render)
    return 0 if doc["found"] or doc["pending"] else 1


def _cmd_registry_show(args: argparse.Namespace) -> int:
    from storenode.identity import address_hex

    async def work(client: LedgerClient, home: Home) -> dict[str, Any]:
        reply = await client.call_work(args.fingerprint)
        w = reply.work
        if w is None:
            return {"fingerprint": to_hex(args.fingerprint), "found": False}
        return {
            "fingerprint": to_hex(w.fingerprint),
            "found": True,
            "name": w.name,
            "version": w.version,
            "date": w.date,
            "author": w.author,
            "owner": address_hex(w.owner),
            "manifest_hash": to_hex(w.manifest_hash),
            "registered_height": w.registered_height,
            "registered_time": w.registered_time,
        }

    doc = with_client(args, work)

    def render(console: Console) -> None:
        if not doc["found"]:
            console.print(f"no work is registered under {doc['fingerprint']}")
            return
        fields(console, [(k.replace("_", " "), v) for k, v in doc.items() if k != "found"])

    emit(args, doc, render)
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
            row = plain(c)
            row["publisher"] = address_hex(c.publisher)
            row["host"] = address_hex(c.host)
            for key in ("price_per_window", "escrow", "collateral"):
                row[key] = format_amount(int(getattr(c, key)))
            rows.append(row)
        return {"height": height, "contracts": rows}

    doc = with_client(args, work)

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

    emit(args, doc, render)
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    printing = parents.printing
    chain = sub.add_parser("chain", help="the chain as the node sees it")
    csub = chain.add_subparsers(dest="chain_command", required=True)
    command(csub, "status", _cmd_chain_status, "height, tip and state root", printing)
    block = command(csub, "block", _cmd_chain_block, "one block and its transactions", printing)
    block.add_argument("height", type=int, metavar="N")
    tx = command(csub, "tx", _cmd_chain_tx, "where a transaction is", printing)
    tx.add_argument("hash", type=hash_arg, metavar="HASH")

    registry = sub.add_parser("registry", help="registered works")
    rsub = registry.add_subparsers(dest="registry_command", required=True)
    show = command(rsub, "show", _cmd_registry_show, "a work by its fingerprint", printing)
    show.add_argument("fingerprint", type=hash_arg, metavar="FINGERPRINT")

    contracts = sub.add_parser("contracts", help="storage contracts")
    ksub = contracts.add_subparsers(dest="contracts_command", required=True)
    klist = command(
        ksub, "list", _cmd_contracts_list, "contracts of an address (default: the home's)", printing
    )
    who = klist.add_mutually_exclusive_group()
    who.add_argument("--host", type=address_arg, metavar="ADDR", help="contracts ADDR hosts")
    who.add_argument("--publisher", type=address_arg, metavar="ADDR", help="ADDR publishes")
