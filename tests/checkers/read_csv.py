"""Reads a CSV export with Python's own `csv` module (RFC 4180 dialect,
independent of the Rust writer) and prints it as JSON: a list of rows, each
a dict from header to cell. Usage: read_csv.py FILE"""
import csv
import json
import sys

with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f, strict=True))
json.dump(rows, sys.stdout)
