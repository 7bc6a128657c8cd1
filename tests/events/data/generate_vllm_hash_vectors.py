#!/usr/bin/env python3
# Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
"""Regenerates vllm_hash_vectors.json with vLLM's own block-hash functions.

    python3 generate_vllm_hash_vectors.py VLLM_SOURCE_DIR OUTPUT.json

VLLM_SOURCE_DIR is an unpacked vLLM source tree (the folder holding vllm/), e.g. the PyPI sdist:

    pip download --no-deps --no-binary :all: vllm==0.33.0   # or the tarball from files.pythonhosted.org
    tar xzf vllm-0.33.0.tar.gz

Needs cbor2 (pip install cbor2). vLLM itself is not installed: the script loads vLLM's unmodified
vllm/utils/hashing.py and vllm/v1/core/kv_cache_utils.py from the tree, with light stand-ins for
the modules kv_cache_utils imports but the hashing code does not use (configuration, logging,
multimodal helpers, torch). Every hash in the output comes from vLLM's functions:
init_none_hash, hash_block_tokens, get_request_block_hasher, generate_block_hash_extra_keys,
maybe_convert_block_hash and to_event_extra_keys, with sha256_cbor as the hash function.
"""

import hashlib
import importlib.util
import json
import logging
import os
import platform
import sys
import types


def stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Placeholder:
    """Stands for a class kv_cache_utils imports but the hashing path never uses."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("not available in the vector generator")


def not_used(*args, **kwargs):
    raise RuntimeError("not available in the vector generator")


def load_vllm(root):
    for package in ("vllm", "vllm.utils", "vllm.v1", "vllm.v1.core", "vllm.multimodal"):
        stub(package, __path__=[])
    stub("vllm.envs", VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=True)
    sys.modules["vllm"].envs = sys.modules["vllm.envs"]
    stub("vllm.config", VllmConfig=Placeholder)
    stub("vllm.logger", init_logger=logging.getLogger)
    stub("vllm.multimodal.utils", get_mm_features_in_window=not_used)
    stub(
        "vllm.v1.kv_cache_interface",
        KVCacheConfig=Placeholder,
        KVCacheGroupSpec=Placeholder,
        KVCacheSpec=Placeholder,
        MambaSpec=Placeholder,
        UniformTypeKVCacheSpecs=Placeholder,
        iter_layer_specs=not_used,
    )
    stub("vllm.v1.kv_cache_spec_registry", KVCacheSpecRegistry=Placeholder)
    stub("vllm.v1.request", Request=Placeholder)
    stub("vllm.v1.utils", tensor_data=not_used)
    files = {
        "vllm.utils.math_utils": "vllm/utils/math_utils.py",
        "vllm.utils.hashing": "vllm/utils/hashing.py",
        "vllm.v1.core.kv_cache_utils": "vllm/v1/core/kv_cache_utils.py",
    }
    modules = {name: load(name, os.path.join(root, path)) for name, path in files.items()}
    digests = {}
    for path in files.values():
        with open(os.path.join(root, path), "rb") as f:
            digests[path] = hashlib.sha256(f.read()).hexdigest()
    return modules["vllm.utils.hashing"], modules["vllm.v1.core.kv_cache_utils"], digests


def vllm_version(root):
    pkg_info = os.path.join(root, "PKG-INFO")
    if os.path.exists(pkg_info):
        with open(pkg_info) as f:
            for line in f:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    return "unknown"


def request(tokens, lora=None, mm=(), cache_salt=None):
    ns = types.SimpleNamespace
    return ns(
        block_hashes=[],
        all_token_ids=list(tokens),
        num_tokens=len(tokens),
        mm_features=[
            ns(identifier=ident, mm_position=ns(offset=offset, length=length))
            for ident, offset, length in mm
        ],
        lora_request=None if lora is None else ns(lora_name=lora[0], lora_path=lora[1]),
        cache_salt=cache_salt,
        prompt_embeds=None,
        _prompt_embeds_per_block_hashes={},
    )


def tokens(n, seed, vocab=152064):
    state = seed
    out = []
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append((state >> 33) % vocab)
    return out


def jsonable_keys(keys):
    """Extra keys (tuples of str/int/bytes) as JSON: bytes become {"bytes": hex}."""
    if keys is None:
        return None
    out = []
    for key in keys:
        out.append([{"bytes": v.hex()} if isinstance(v, bytes) else v for v in key])
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, output = sys.argv[1], sys.argv[2]
    if "PYTHONHASHSEED" in os.environ:
        sys.exit("unset PYTHONHASHSEED: the vectors use vLLM's default NONE_HASH seed")
    import cbor2

    hashing, kcu, digests = load_vllm(root)
    sha256_cbor = hashing.sha256_cbor

    # NONE_HASH: the default seed, and a seed as PYTHONHASHSEED would give it.
    none_hashes = []
    for seed in (None, "12345", "kvkit"):
        if seed is not None:
            os.environ["PYTHONHASHSEED"] = seed
        kcu.init_none_hash(sha256_cbor)
        none_hashes.append({"seed": kcu.get_none_hash_seed(), "hash": kcu.NONE_HASH.hex()})
        os.environ.pop("PYTHONHASHSEED", None)
    kcu.init_none_hash(sha256_cbor)
    assert kcu.get_none_hash_seed() == kcu.DEFAULT_NONE_HASH_SEED
    none_hash = kcu.NONE_HASH

    # hash_block_tokens on single blocks: first blocks (parent None -> NONE_HASH), chained blocks,
    # every kind of extra key, token ids of every CBOR integer width.
    parent = kcu.hash_block_tokens(sha256_cbor, None, tokens(16, 1))
    embeds = hashlib.sha256(b"prompt embeddings of one block").digest()
    cases = [
        ("first block, 16 tokens", None, tokens(16, 1), None),
        ("chained block", parent, tokens(16, 2), None),
        ("one token", None, [0], None),
        ("integer widths", parent, [0, 23, 24, 255, 256, 65535, 65536, 2**31 - 1], None),
        ("64 tokens", parent, tokens(64, 3), None),
        ("lora", None, tokens(16, 4), (("lora", "sql-adapter", "/adapters/sql"),)),
        ("cache salt, first block", None, tokens(16, 5), (("cache_salt", "tenant-a"),)),
        ("mm inside block", parent, tokens(16, 6), (("mm", "img-hash-1", 4),)),
        ("mm started in an earlier block", parent, tokens(16, 7), (("mm", "img-hash-1", -12),)),
        (
            "lora + two mm + salt",
            None,
            tokens(16, 8),
            (
                ("lora", "a", "/p/a"),
                ("mm", "img-0", 0),
                ("mm", "img-1", 9),
                ("cache_salt", "s"),
            ),
        ),
        ("prompt embeds", parent, tokens(16, 9), (("prompt_embeds", embeds),)),
        ("unicode salt", None, tokens(16, 10), (("cache_salt", "tenant-\u00e9\u4e2d"),)),
    ]
    blocks = []
    for name, parent_hash, toks, extra in cases:
        h = kcu.hash_block_tokens(sha256_cbor, parent_hash, toks, extra)
        preimage = cbor2.dumps(
            (parent_hash if parent_hash else none_hash, tuple(toks), extra), canonical=True
        )
        assert hashlib.sha256(preimage).digest() == h
        blocks.append(
            {
                "name": name,
                "parent": None if parent_hash is None else parent_hash.hex(),
                "tokens": toks,
                "extra_keys": jsonable_keys(extra),
                "cbor": preimage.hex(),
                "hash": h.hex(),
                "external": kcu.maybe_convert_block_hash(h),
            }
        )

    # The request block hasher: every full block of a request, with its extra keys.
    requests = []
    request_cases = [
        ("plain, 3 full blocks + partial", 16, tokens(53, 20), {}),
        ("block size 4", 4, tokens(18, 21), {}),
        ("lora", 16, tokens(48, 22), {"lora": ("sql-adapter", "/adapters/sql")}),
        ("cache salt", 16, tokens(48, 23), {"cache_salt": "tenant-a"}),
        (
            "two images across blocks",
            16,
            tokens(80, 24),
            {"mm": (("img-a", 5, 20), ("img-b", 40, 8))},
        ),
        (
            "lora + image + salt",
            8,
            tokens(40, 25),
            {"lora": ("a", "/p/a"), "mm": (("img-c", 8, 16),), "cache_salt": "t"},
        ),
    ]
    for name, block_size, toks, opts in request_cases:
        req = request(toks, opts.get("lora"), opts.get("mm", ()), opts.get("cache_salt"))
        hasher = kcu.get_request_block_hasher(block_size, sha256_cbor)
        hashes = hasher(req)
        extra, mm_idx = [], 0
        for i in range(len(hashes)):
            keys, mm_idx = kcu.generate_block_hash_extra_keys(
                req, i * block_size, (i + 1) * block_size, mm_idx
            )
            extra.append(keys)
        requests.append(
            {
                "name": name,
                "block_size": block_size,
                "tokens": toks,
                "lora": None if "lora" not in opts else list(opts["lora"]),
                "mm_features": [list(f) for f in opts.get("mm", ())],
                "cache_salt": opts.get("cache_salt"),
                "hashes": [h.hex() for h in hashes],
                "external": [kcu.maybe_convert_block_hash(h) for h in hashes],
                "extra_keys": [jsonable_keys(k) for k in extra],
                "event_extra_keys": json.loads(
                    json.dumps(kcu.to_event_extra_keys(extra), default=bytes.hex)
                ),
            }
        )

    out = {
        "provenance": {
            "generator": "tests/events/data/generate_vllm_hash_vectors.py",
            "vllm_version": vllm_version(root),
            "vllm_files_sha256": digests,
            "hash_function": "vllm.utils.hashing.sha256_cbor",
            "python": platform.python_version(),
            "cbor2": getattr(cbor2, "__version__", None) or _dist_version("cbor2"),
        },
        "none_hash": none_hashes,
        "blocks": blocks,
        "requests": requests,
    }
    with open(output, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def _dist_version(name):
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
