#!/usr/bin/env python3
"""Writes the seed corpus of husk-fuzz-descriptor-chain (tests/fuzz/corpus/).

Each seed is a FuzzHeader (see descriptor_chain_fuzz.cpp) followed by the
guest memory image from address 0: a queue of 8 entries with its rings at
0x0 (descriptors), 0x80 (avail) and 0x100 (used), buffers from 0x200 and
indirect tables at 0x300. Run it again after changing the header layout.
"""
import os
import struct
import sys

NEXT, WRITE, INDIRECT = 1, 2, 4
SIZE = 8
DESC, AVAIL, USED = 0x0, 0x80, 0x100


def header(event_idx=0, rounds=8, read_chunk=3, write_chunk=5, size=SIZE):
    return struct.pack("<HHIIIBBBBIH6x", size, 256, DESC, AVAIL, USED, event_idx, rounds,
                       read_chunk, write_chunk, 0, 0)


class Image:
    def __init__(self):
        self.mem = bytearray(0x500)

    def put(self, addr, fmt, *values):
        struct.pack_into(fmt, self.mem, addr, *values)

    def desc(self, i, addr, length, flags=0, nxt=0, table=DESC):
        self.put(table + 16 * i, "<QIHH", addr, length, flags, nxt)

    def avail(self, heads, used_event=0):
        self.put(AVAIL + 2, "<H", len(heads))
        for slot, head in enumerate(heads):
            self.put(AVAIL + 4 + 2 * slot, "<H", head)
        self.put(AVAIL + 4 + 2 * SIZE, "<H", used_event)


def seeds():
    # A direct chain (readable, writable) and an indirect one.
    img = Image()
    img.desc(0, 0x200, 16, NEXT, 1)
    img.desc(1, 0x210, 32, WRITE)
    img.desc(3, 0x300, 48, INDIRECT)
    img.desc(0, 0x400, 8, NEXT, 1, table=0x300)
    img.desc(1, 0x410, 8, WRITE | NEXT, 2, table=0x300)
    img.desc(2, 0x420, 100, WRITE, table=0x300)
    img.avail([0, 3])
    yield "two_chains", header() + img.mem
    yield "two_chains_event_idx", header(event_idx=1, read_chunk=0, write_chunk=0) + img.mem

    # A loop, then a buffer running off the end of the low region.
    img = Image()
    img.desc(0, 0x200, 8, NEXT, 1)
    img.desc(1, 0x200, 8, NEXT, 0)
    img.desc(2, 0x3ff0, 0x20, WRITE)
    img.avail([0, 2])
    yield "loop_and_straddle", header() + img.mem

    # A full ring of single descriptors in the high region, bogus used ids.
    img = Image()
    for i in range(SIZE):
        img.desc(i, 0x5000 + 0x100 * i, 0x100, WRITE)
    img.avail(list(range(SIZE)), used_event=4)
    yield "full_ring", header(event_idx=3, rounds=12) + img.mem

    # Nested indirect and an indirect table with NEXT.
    img = Image()
    img.desc(0, 0x300, 32, INDIRECT)
    img.desc(0, 0x400, 8, NEXT, 1, table=0x300)
    img.desc(1, 0x340, 16, INDIRECT, table=0x300)
    img.desc(1, 0x300, 16, INDIRECT | NEXT, 2)
    img.avail([0, 1])
    yield "bad_indirect", header() + img.mem


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "descriptor_chain")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(data))


if __name__ == "__main__":
    main()
