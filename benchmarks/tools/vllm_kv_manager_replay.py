#!/usr/bin/env python3
# Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
"""Replays a token trace through vLLM's own KV cache manager (the v1 engine's KVCacheManager).

The peer figure beside `kvkit-replay --format tokens --sequential`: the same trace, the same block
size and the same pool capacity, one request at a time, driven the way vLLM's scheduler drives its
manager for a request that prefills in one step and produces no output:

    get_computed_blocks(request)                     # the cached prefix (match)
    allocate_slots(request, uncached, hit, blocks)   # take hit blocks, allocate the rest, and
                                                     # register the full prompt blocks (commit)
    free(request)                                    # release, tail first

Needs vLLM 0.33.0 in a virtual environment (not a kvkit dependency; CI does not install it). The
manager imports without a GPU; pip brings the whole stack (torch from PyPI, several GB):

    python3 -m venv /tmp/vllm-venv
    /tmp/vllm-venv/bin/pip install vllm==0.33.0
    python3 benchmarks/tools/mooncake_to_tokens.py \\
        ../shared/traces/mooncake_synthetic_trace.jsonl /tmp/mooncake_tokens.jsonl
    /tmp/vllm-venv/bin/python benchmarks/tools/vllm_kv_manager_replay.py \\
        /tmp/mooncake_tokens.jsonl --capacity 200000

Input: the token format of kvkit-replay (one JSON object a line with "tokens"; other fields are
ignored: output lengths count as 0). Output: requests, prompt tokens, hit tokens (vLLM's
num_computed_tokens from get_computed_blocks, at most prompt - 1 rounded down to whole blocks,
as kvkit's cached_tokens without partial reuse), rejected requests (larger than the pool), and
prompt tokens per second (of wall time, and of the thread's CPU time, steadier on a busy machine),
of the manager calls alone and with vLLM's block hashing (SHA-256 of the chained blocks, vLLM's
default, computed when a Request is made) included. kvkit hashes inside admit(), so the figure
with hashing is the like-for-like one; the manager alone is vLLM's best case.
"""

import argparse
import json
import sys
import time


def load(path, limit):
    """The prompts of a token trace, as lists of ints."""
    prompts = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            if limit and len(prompts) >= limit:
                break
            try:
                toks = json.loads(line)["tokens"]
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"{path}:{number}: not a token-trace request ({e})")
            if not isinstance(toks, list) or not toks:
                sys.exit(f"{path}:{number}: \"tokens\" must be a non-empty list of token ids")
            prompts.append(toks)
    return prompts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", help="token trace (JSON lines with \"tokens\")")
    parser.add_argument("--capacity", type=int, required=True,
                        help="blocks in the pool (kvkit-replay --capacity)")
    parser.add_argument("--block-size", type=int, default=16, help="tokens per block (16)")
    parser.add_argument("--hash", default="sha256",
                        help="vLLM's prefix-caching hash (sha256, its default; sha256_cbor, "
                             "xxhash, xxhash_cbor)")
    parser.add_argument("--limit", type=int, default=0,
                        help="replay only the first N requests (default: all)")
    args = parser.parse_args()
    if args.capacity < 2 or args.block_size < 1:
        sys.exit("vllm_kv_manager_replay: --capacity must be >= 2 and --block-size >= 1")

    try:
        import torch
        from vllm.sampling_params import SamplingParams
        from vllm.utils.hashing import get_hash_fn_by_name
        from vllm.v1.core.kv_cache_manager import KVCacheManager
        from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
        from vllm.v1.kv_cache_interface import (FullAttentionSpec, KVCacheConfig,
                                                KVCacheGroupSpec)
        from vllm.v1.request import Request
        import vllm
    except ImportError as e:
        sys.exit(f"vllm_kv_manager_replay: cannot import vLLM ({e}); install it in a virtual "
                 "environment: python3 -m venv /tmp/vllm-venv && "
                 "/tmp/vllm-venv/bin/pip install vllm==0.33.0")

    prompts = load(args.trace, args.limit)
    bs = args.block_size
    longest = max(len(p) for p in prompts)
    hash_fn = get_hash_fn_by_name(args.hash)
    init_none_hash(hash_fn)
    block_hasher = get_request_block_hasher(bs, hash_fn)
    # The pool: vLLM keeps one block aside (its null block), so it gets one more than kvkit's.
    spec = FullAttentionSpec(block_size=bs, num_kv_heads=1, head_size=64, dtype=torch.bfloat16)
    config = KVCacheConfig(num_blocks=args.capacity + 1, kv_cache_tensors=[],
                           kv_cache_groups=[KVCacheGroupSpec(["layer.0"], spec)])
    manager = KVCacheManager(config, max_model_len=longest + bs, scheduler_block_size=bs,
                             hash_block_size=bs, enable_caching=True)
    params = SamplingParams(max_tokens=1)

    requests = prompt_tokens = hit_tokens = rejected = 0
    manager_s = hashing_s = manager_cpu = hashing_cpu = 0.0
    wall, cpu = time.perf_counter, time.thread_time
    for i, prompt in enumerate(prompts):
        t0, c0 = wall(), cpu()
        request = Request(str(i), prompt, params, None, block_hasher=block_hasher)
        t1, c1 = wall(), cpu()
        blocks, hit, _ = manager.get_computed_blocks(request)
        new = manager.allocate_slots(request, len(prompt) - hit, hit, blocks)
        if new is None:
            rejected += 1
        else:
            manager.free(request)
        t2, c2 = wall(), cpu()
        hashing_s += t1 - t0
        manager_s += t2 - t1
        hashing_cpu += c1 - c0
        manager_cpu += c2 - c1
        if new is not None:
            requests += 1
            prompt_tokens += len(prompt)
            hit_tokens += hit
    total_s = manager_s + hashing_s
    total_cpu = manager_cpu + hashing_cpu
    print(f"vllm {vllm.__version__} KVCacheManager, block size {bs}, capacity {args.capacity} "
          f"blocks, hash {args.hash}")
    print(f"requests {requests}  rejected {rejected}  prompt_tokens {prompt_tokens}  "
          f"hit_tokens {hit_tokens}  hit_blocks {hit_tokens // bs}")
    for label, w, c in (("manager", manager_s, manager_cpu),
                        ("manager+hashing", total_s, total_cpu)):
        print(f"{label}: {w:.3f} s, {prompt_tokens / w / 1e6:.3f} M prompt tokens/s "
              f"(CPU time {c:.3f} s: {prompt_tokens / c / 1e6:.3f} M/s)")


if __name__ == "__main__":
    main()
