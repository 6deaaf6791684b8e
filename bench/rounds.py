"""What the wrk benchmarks share: their round options and a free port on 127.0.0.1."""

from __future__ import annotations

import argparse
import socket


def add_round_options(parser: argparse.ArgumentParser, *, other: str) -> None:
    """--rounds, --seconds, --warmup, --connections; ``other`` names the server measured against bare."""
    parser.add_argument("--rounds", type=int, default=5, help=f"rounds of bare + {other} (default: 5)")
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds per server and round (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each measurement (default: 1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default: 32)")


def check_round_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.rounds < 1 or args.seconds < 1 or args.warmup < 0 or args.connections < 1:
        parser.error("--rounds, --seconds and --connections must be at least 1, --warmup at least 0")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
