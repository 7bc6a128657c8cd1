#!/usr/bin/env python3
# Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
"""Turns a Mooncake trace (hash ids of 512-token blocks) into a token-id trace.

    python3 benchmarks/tools/mooncake_to_tokens.py \
        ../shared/traces/mooncake_synthetic_trace.jsonl /tmp/mooncake_tokens.jsonl

Each Mooncake hash id stands for one block of `--trace-block-size` (512) input tokens and already
encodes everything before it, so two requests share a prefix of k blocks exactly when their first
k hash ids are equal. Here every hash id becomes the same `--trace-block-size` pseudo-random token
ids wherever it appears (SHAKE-128 of the id and `--seed`, reduced modulo `--vocabulary`), and a
request's prompt is its blocks' tokens cut at `input_length` (a partial last block keeps the
leading tokens of its block). The token trace therefore shares exactly what the Mooncake trace
shares, token for token: multi-turn conversations and shared system prompts reuse their earlier
turns' blocks, and a request whose last block is shorter or longer than another's with the same
ids shares the leading tokens of that block.

Output, one JSON object a line (the token format of kvkit-replay and
benchmarks/tools/vllm_kv_manager_replay.py):
    {"timestamp": ms, "output_length": m, "tokens": [...]}
Only the Python standard library is needed.
"""

import argparse
import hashlib
import json
import struct
import sys


def block_tokens(hash_id, size, vocabulary, seed, cache):
    """The token ids of the block with this hash id, as a list (memoised)."""
    toks = cache.get(hash_id)
    if toks is None:
        raw = hashlib.shake_128(struct.pack("<qQ", hash_id, seed)).digest(4 * size)
        toks = [v % vocabulary for v in struct.unpack(f"<{size}I", raw)]
        cache[hash_id] = toks
    return toks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mooncake", help="Mooncake trace (JSON lines with hash_ids)")
    parser.add_argument("output", help="token trace to write (JSON lines with tokens)")
    parser.add_argument("--trace-block-size", type=int, default=512,
                        help="tokens per Mooncake hash id (default 512)")
    parser.add_argument("--vocabulary", type=int, default=128000,
                        help="token ids are below this (default 128000)")
    parser.add_argument("--seed", type=int, default=1, help="changes every token (default 1)")
    parser.add_argument("--limit", type=int, default=0,
                        help="convert only the first N requests (default: all)")
    parser.add_argument("--no-output", action="store_true",
                        help="write output_length 0 (prompts only: the form "
                             "vllm_kv_manager_replay.py replays)")
    args = parser.parse_args()
    if args.trace_block_size < 1 or args.vocabulary < 2 or args.vocabulary > 2**31:
        sys.exit("mooncake_to_tokens: --trace-block-size must be >= 1 and --vocabulary in "
                 "[2, 2^31]")

    cache = {}
    requests = 0
    tokens = 0
    with open(args.mooncake) as src, open(args.output, "w") as dst:
        for number, line in enumerate(src, 1):
            if not line.strip():
                continue
            if args.limit and requests >= args.limit:
                break
            try:
                r = json.loads(line)
                ids = r["hash_ids"]
                length = int(r["input_length"])
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"{args.mooncake}:{number}: not a Mooncake request ({e})")
            need = (length + args.trace_block_size - 1) // args.trace_block_size
            if length < 1 or len(ids) != need:
                sys.exit(f"{args.mooncake}:{number}: input_length {length} needs {need} hash ids, "
                         f"got {len(ids)}")
            prompt = []
            for h in ids:
                prompt.extend(block_tokens(int(h), args.trace_block_size, args.vocabulary,
                                           args.seed, cache))
            del prompt[length:]
            out = {"timestamp": r.get("timestamp", 0),
                   "output_length": 0 if args.no_output else int(r.get("output_length", 0)),
                   "tokens": prompt}
            dst.write(json.dumps(out, separators=(",", ":")))
            dst.write("\n")
            requests += 1
            tokens += length
    print(f"mooncake_to_tokens: {requests} requests, {tokens} prompt tokens, "
          f"{len(cache)} distinct blocks of {args.trace_block_size} -> {args.output}")


if __name__ == "__main__":
    main()
