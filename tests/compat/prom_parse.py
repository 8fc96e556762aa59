"""Parses Prometheus text from stdin with the reference `prometheus_client` parser and prints
one JSON object: {"name{label=value,...}": value}. Fails on text the parser rejects."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(samples))
