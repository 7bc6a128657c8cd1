#!/usr/bin/env python3
# Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
"""A KV-event subscriber that knows nothing of kvkit: it decodes vLLM's KV-event batches with
msgspec Structs declared as vLLM v0.33.0 declares them (vllm/distributed/kv_events.py), follows the
sequence numbers, fills gaps from the replay socket, and rebuilds the set of stored blocks the way
a KV-aware router does.

    vllm_subscriber.py --pub ENDPOINT --replay ENDPOINT --topic TOPIC [--drop-live SEQ,...]
                       [--rcvhwm N]

Protocol with the test that runs it: prints "ready" once its sockets are connected; after that,
the line "sync" on stdin makes it print "synced <seq>" as soon as it holds every batch up to a
live batch <seq>; the line "end <last seq>" makes it fetch whatever it still misses up to
<last seq> from the replay socket, print one JSON object with what it rebuilt, and exit.
--drop-live ignores the listed batches when they arrive live (as if the network lost them).
KVKIT_SUBSCRIBER_TRACE=1 in the environment prints progress to stderr.
"""

import argparse
import json
import os
import sys
import time
from typing import Any

import msgspec
import zmq

# ---- vLLM's schema, v0.33.0 --------------------------------------------------------------------
ExternalBlockHash = bytes | int


class EventBatch(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    ts: float
    events: list[Any]
    data_parallel_rank: int | None = None


class KVCacheEvent(msgspec.Struct, omit_defaults=True, gc=False, tag=True):
    pass


class BlockStored(KVCacheEvent):
    block_hashes: list[ExternalBlockHash]
    parent_block_hash: ExternalBlockHash | None
    token_ids: list[int]
    block_size: int
    lora_id: int | None
    medium: str | None
    lora_name: str | None
    extra_keys: list[tuple[Any, ...] | None] | None = None
    group_idx: int | None = None
    kv_cache_spec_kind: str | None = None
    kv_cache_spec_sliding_window: int | None = None
    locality: str | None = None
    ownership: str | None = None
    session_id: str | None = None
    lookahead_token_ids: list[list[int]] | None = None


class BlockRemoved(KVCacheEvent):
    block_hashes: list[ExternalBlockHash]
    medium: str | None
    group_idx: int | None = None
    locality: str | None = None
    ownership: str | None = None


class AllBlocksCleared(KVCacheEvent):
    pass


class KVEventBatch(EventBatch):
    events: list[BlockStored | BlockRemoved | AllBlocksCleared]


END_SEQ = (-1).to_bytes(8, "big", signed=True)

# KVKIT_SUBSCRIBER_TRACE=1 prints progress to stderr.
TRACE = os.environ.get("KVKIT_SUBSCRIBER_TRACE") == "1"
START = time.monotonic()


def trace(message):
    if TRACE:
        print(f"subscriber {time.monotonic() - START:8.3f}s {message}", file=sys.stderr, flush=True)


class Index:
    """What a router knows about one engine: stored blocks by hash."""

    def __init__(self):
        self.blocks = {}  # hash -> {"parent", "tokens", "extra_keys", "copies"}
        self.decoder = msgspec.msgpack.Decoder(type=KVEventBatch)
        self.encoder = msgspec.msgpack.Encoder()
        self.batches = 0
        self.events = 0
        self.byte_identical = 0
        self.data_parallel_ranks = set()
        self.group_idx = set()
        self.media = set()

    def apply(self, payload):
        batch = self.decoder.decode(payload)
        self.batches += 1
        # vLLM's own encoder writes the decoded batch back to the very same bytes.
        if self.encoder.encode(batch) == payload:
            self.byte_identical += 1
        self.data_parallel_ranks.add(batch.data_parallel_rank)
        for event in batch.events:
            self.events += 1
            if isinstance(event, BlockStored):
                self.media.add(event.medium)
                self.group_idx.add(event.group_idx)
                size = event.block_size
                extra = event.extra_keys or [None] * len(event.block_hashes)
                assert len(event.token_ids) == size * len(event.block_hashes), event
                assert len(extra) == len(event.block_hashes), event
                parent = event.parent_block_hash
                for i, h in enumerate(event.block_hashes):
                    entry = self.blocks.get(h)
                    if entry is None:
                        entry = self.blocks[h] = {
                            "parent": parent,
                            "tokens": event.token_ids[i * size : (i + 1) * size],
                            "extra_keys": None if extra[i] is None else list(extra[i]),
                            "copies": 0,
                        }
                    entry["copies"] += 1
                    parent = h
            elif isinstance(event, BlockRemoved):
                self.media.add(event.medium)
                self.group_idx.add(event.group_idx)
                for h in event.block_hashes:
                    entry = self.blocks.get(h)
                    if entry is not None:
                        entry["copies"] -= 1
                        if entry["copies"] == 0:
                            del self.blocks[h]
            elif isinstance(event, AllBlocksCleared):
                self.blocks.clear()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pub", required=True)
    parser.add_argument("--replay", required=True)
    parser.add_argument("--topic", default="")
    parser.add_argument("--drop-live", default="")
    parser.add_argument("--rcvhwm", type=int, default=0)
    args = parser.parse_args()
    drop = {int(s) for s in args.drop_live.split(",") if s}

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    if args.rcvhwm:
        sub.setsockopt(zmq.RCVHWM, args.rcvhwm)
    sub.connect(args.pub)
    sub.setsockopt_string(zmq.SUBSCRIBE, args.topic)
    # A DEALER receives the many replies a ROUTER streams for one request.
    replay = ctx.socket(zmq.DEALER)
    replay.connect(args.replay)

    index = Index()
    stats = {"live": 0, "dropped_live": 0, "replay_requests": 0, "replayed": 0}
    unrecoverable = []
    state = {"next": 0}
    topic = args.topic.encode()

    def fetch(start):
        """Asks the replay socket for every batch from `start`; applies what follows in order."""
        stats["replay_requests"] += 1
        trace(f"replay from {start}")
        replay.send_multipart([b"", start.to_bytes(8, "big")])
        while True:
            if not replay.poll(10000):
                raise RuntimeError(f"replay from {start}: no end marker within 10 s")
            frames = replay.recv_multipart()
            empty, reply_topic, seq_bytes, payload = frames
            assert empty == b"", frames
            if seq_bytes == END_SEQ:
                assert reply_topic == b"" and payload == b"", frames
                trace(f"replay done, next {state['next']}")
                return
            assert reply_topic == topic, frames
            seq = int.from_bytes(seq_bytes, "big")
            if seq < state["next"]:
                continue
            if seq > state["next"]:
                unrecoverable.append([state["next"], seq - 1])
            index.apply(payload)
            stats["replayed"] += 1
            state["next"] = seq + 1
            if stats["replayed"] % 500 == 0:
                trace(f"replayed {stats['replayed']}, at {seq}")

    print("ready", flush=True)
    end = None
    want_sync = False
    stdin = sys.stdin.fileno()
    pending = b""
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(stdin, zmq.POLLIN)
    while end is None or state["next"] <= end:
        events = dict(poller.poll(1000 if end is None else 100))
        if stdin in events:
            chunk = os.read(stdin, 4096)
            if not chunk:
                raise RuntimeError("stdin closed before 'end'")
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                word, *rest = line.decode().split()
                if word == "sync":
                    want_sync = True
                elif word == "end":
                    end = int(rest[0])
        if sub in events:
            while True:
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                reply_topic, seq_bytes, payload = frames
                assert reply_topic == topic, frames
                seq = int.from_bytes(seq_bytes, "big")
                if seq in drop:
                    drop.discard(seq)
                    stats["dropped_live"] += 1
                    continue
                if seq > state["next"]:
                    fetch(state["next"])  # a gap: missed while joining, or lost
                if seq < state["next"]:
                    continue  # already applied (replayed)
                if seq > state["next"]:
                    # Still a gap after the replay: those batches left the replay buffer.
                    unrecoverable.append([state["next"], seq - 1])
                index.apply(payload)
                stats["live"] += 1
                state["next"] = seq + 1
                if want_sync:
                    print(f"synced {seq}", flush=True)
                    want_sync = False
        if end is not None and state["next"] <= end and not events:
            fetch(state["next"])  # the tail was lost or never came live

    result = {
        "blocks": {
            str(h): {
                "parent": None if b["parent"] is None else str(b["parent"]),
                "tokens": b["tokens"],
                "extra_keys": b["extra_keys"],
                "copies": b["copies"],
            }
            for h, b in index.blocks.items()
        },
        "batches": index.batches,
        "events": index.events,
        "byte_identical": index.byte_identical,
        "data_parallel_ranks": sorted(r for r in index.data_parallel_ranks if r is not None),
        "group_idx": sorted(g for g in index.group_idx if g is not None),
        "media": sorted(m for m in index.media if m is not None),
        "next_seq": state["next"],
        "unrecoverable": unrecoverable,
        **stats,
    }
    print(json.dumps(result), flush=True)
    sub.close(linger=0)
    replay.close(linger=0)
    ctx.term()


if __name__ == "__main__":
    main()
