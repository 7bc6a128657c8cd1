#!/usr/bin/env python3
# Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
"""Scrapes a Prometheus endpoint the way a Prometheus client does and prints what it parsed.

    scrape.py URL

Fetches URL over HTTP, checks the Content-Type of the text format 0.0.4, parses the body with
prometheus_client's own parser (Debian package python3-prometheus-client), and prints one JSON
object: {"content_type": ..., "families": {name: {"type", "help", "samples": [[name, labels,
value], ...]}}}. Exits non-zero when the fetch or the parse fails.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        content_type = response.headers.get("Content-Type", "")
        body = response.read().decode("utf-8")
    families = {}
    for family in text_string_to_metric_families(body):
        if family.name in families:
            raise ValueError(f"family {family.name} appears twice")
        families[family.name] = {
            "type": family.type,
            "help": family.documentation,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
    print(json.dumps({"content_type": content_type, "families": families}))


if __name__ == "__main__":
    main()
