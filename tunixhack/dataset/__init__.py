"""Trace files after generation: read them back, count, mix, dedup, decontaminate, publish, compare teachers.
May import generate/, verify/, teachers/ and the shared modules; never train/.
"""
