"""The trivial action as today's SOAR platforms run it: one Python process per call."""
import json
import sys

json.dump(json.load(sys.stdin), sys.stdout)
