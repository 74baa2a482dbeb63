"""Parse and map the original service's 74k-line mirrored list; run by hand: python bench/parse_map.py.

Prints the best of several runs (these machines are noisy); the target is under 1 s for parse plus map.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Config
from bot.errors import MappingError
from bot.lists import format_mirrored, parse_list
from bot.rules import Mapper

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "upstream" / "upstream-mirrored-images.txt"


def main(runs: int = 5) -> None:
    data = DATA.read_bytes()
    mapper = Mapper(Config())
    best_parse = best_map = best_write = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        parsed = parse_list(data, "mirrored-images.txt")
        parsed_at = time.perf_counter()
        mapped = refused = 0
        for entry in parsed.entries:
            try:
                mapper.target(entry.ref)
                mapped += 1
            except MappingError:
                refused += 1
        mapped_at = time.perf_counter()
        format_mirrored(entry.ref for entry in parsed.entries)
        written_at = time.perf_counter()
        best_parse = min(best_parse, parsed_at - start)
        best_map = min(best_map, mapped_at - parsed_at)
        best_write = min(best_write, written_at - mapped_at)
    print(f"lines: {len(parsed.entries)}  problems: {len(parsed.problems)}  mapped: {mapped}  refused: {refused}")
    print(f"parse {best_parse:.3f} s  map {best_map:.3f} s  parse+map {best_parse + best_map:.3f} s (target < 1 s)")
    print(f"format sorted list {best_write:.3f} s")


if __name__ == "__main__":
    main()
