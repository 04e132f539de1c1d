#!/usr/bin/env python3
"""Writes the seed corpora of the husk fuzz targets (tests/fuzz/corpus/<target>/).

    tests/fuzz/make_seeds.py [--out DIR] [TARGET...]   # all targets by default

Each seed is a small, meaningful input in the target's own format (see the
comment at the top of each tests/fuzz/<target>_fuzz.cpp): a correct driver
init and a few requests for the devices, a whole conversation for the agent
targets, a job of every shape for the job parser. Integers are little-endian,
read front to back (tests/fuzz/fuzz_support.h, Input). Run it again after
changing a target's input format, and commit the result.
"""
import argparse
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Prog:
    """An input built field by field, as the targets' Input reads it."""

    def __init__(self):
        self.b = bytearray()

    def u8(self, *vs):
        for v in vs:
            self.b += struct.pack("<B", v & 0xFF)
        return self

    def u16(self, v):
        self.b += struct.pack("<H", v & 0xFFFF)
        return self

    def u32(self, v):
        self.b += struct.pack("<I", v & 0xFFFFFFFF)
        return self

    def u64(self, v):
        self.b += struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)
        return self

    def raw(self, data):
        self.b += data if isinstance(data, (bytes, bytearray)) else data.encode()
        return self

    def string(self, s):  # Input::string: u8 length, bytes
        data = s if isinstance(s, (bytes, bytearray)) else s.encode()
        return self.u8(len(data)).raw(data)

    def bytes(self):
        return bytes(self.b)


# --- descriptor_chain (descriptor_chain_fuzz.cpp: FuzzHeader + guest memory) ---

NEXT, WRITE, INDIRECT = 1, 2, 4
DC_SIZE = 8
DC_DESC, DC_AVAIL, DC_USED = 0x0, 0x80, 0x100


def dc_header(event_idx=0, rounds=8, read_chunk=3, write_chunk=5, size=DC_SIZE):
    return struct.pack("<HHIIIBBBBIH6x", size, 256, DC_DESC, DC_AVAIL, DC_USED, event_idx, rounds,
                       read_chunk, write_chunk, 0, 0)


class DcImage:
    def __init__(self):
        self.mem = bytearray(0x500)

    def put(self, addr, fmt, *values):
        struct.pack_into(fmt, self.mem, addr, *values)

    def desc(self, i, addr, length, flags=0, nxt=0, table=DC_DESC):
        self.put(table + 16 * i, "<QIHH", addr, length, flags, nxt)

    def avail(self, heads, used_event=0):
        self.put(DC_AVAIL + 2, "<H", len(heads))
        for slot, head in enumerate(heads):
            self.put(DC_AVAIL + 4 + 2 * slot, "<H", head)
        self.put(DC_AVAIL + 4 + 2 * DC_SIZE, "<H", used_event)


def descriptor_chain():
    # A direct chain (readable, writable) and an indirect one.
    img = DcImage()
    img.desc(0, 0x200, 16, NEXT, 1)
    img.desc(1, 0x210, 32, WRITE)
    img.desc(3, 0x300, 48, INDIRECT)
    img.desc(0, 0x400, 8, NEXT, 1, table=0x300)
    img.desc(1, 0x410, 8, WRITE | NEXT, 2, table=0x300)
    img.desc(2, 0x420, 100, WRITE, table=0x300)
    img.avail([0, 3])
    yield "two_chains", dc_header() + img.mem
    yield "two_chains_event_idx", dc_header(event_idx=1, read_chunk=0, write_chunk=0) + img.mem

    # A loop, then a buffer running off the end of the low region.
    img = DcImage()
    img.desc(0, 0x200, 8, NEXT, 1)
    img.desc(1, 0x200, 8, NEXT, 0)
    img.desc(2, 0x3ff0, 0x20, WRITE)
    img.avail([0, 2])
    yield "loop_and_straddle", dc_header() + img.mem

    # A full ring of single descriptors in the high region, bogus used ids.
    img = DcImage()
    for i in range(DC_SIZE):
        img.desc(i, 0x5000 + 0x100 * i, 0x100, WRITE)
    img.avail(list(range(DC_SIZE)), used_event=4)
    yield "full_ring", dc_header(event_idx=3, rounds=12) + img.mem

    # Nested indirect and an indirect table with NEXT.
    img = DcImage()
    img.desc(0, 0x300, 32, INDIRECT)
    img.desc(0, 0x400, 8, NEXT, 1, table=0x300)
    img.desc(1, 0x340, 16, INDIRECT, table=0x300)
    img.desc(1, 0x300, 16, INDIRECT | NEXT, 2)
    img.avail([0, 1])
    yield "bad_indirect", dc_header() + img.mem


# --- mmio_transport (mmio_transport_fuzz.cpp: run_op) ---

MMIO_STATUS, MMIO_QUEUE_NOTIFY = 0x70, 0x50
BLK_IN, BLK_OUT, BLK_FLUSH, BLK_GET_ID = 0, 1, 4, 8


def mmio_init(p, rings, size_index=4):
    p.u8(5, 0).u64(0xFFFFFFFFFFFFFFFF)  # offered features, all of them
    for _ in range(rings):
        p.u8(size_index)
    return p


def mmio_mem(p, offset, data):  # op 4: guest memory at `offset`
    return p.u8(4).u16(offset).u8(len(data)).raw(data)


def mmio_chain(p, queue, bufs, indirect=False, notify=True):
    """op 6: bufs are (buffer offset from 0x4000, length, writable)."""
    p.u8(6, queue, len(bufs) - 1)
    for off, length, writable in bufs:
        p.u8(0).u16(off).u16(length).u8(1 if writable else 0)
    return p.u8((1 if indirect else 0) | (2 if notify else 0))


def mmio_transport():
    # virtio-blk: a read, a write, a flush, GET_ID, then an interrupt ack.
    p = Prog().u8(0, 0x05)  # blk, copy-on-write disk of 1000 bytes
    mmio_init(p, 1)
    mmio_mem(p, 0x4000, struct.pack("<IIQ", BLK_IN, 0, 0))
    mmio_chain(p, 0, [(0x0, 16, False), (0x100, 512, True), (0x400, 1, True)])
    mmio_mem(p, 0x4010, struct.pack("<IIQ", BLK_OUT, 0, 1))
    mmio_chain(p, 0, [(0x10, 16, False), (0x500, 512, False), (0x800, 1, True)], indirect=True)
    mmio_mem(p, 0x4020, struct.pack("<IIQ", BLK_GET_ID, 0, 0))
    mmio_chain(p, 0, [(0x20, 16, False), (0x900, 20, True), (0x920, 1, True)])
    p.u8(9, 7)
    yield "blk_requests", p.bytes()

    # virtio-rng: two buffers, one through an indirect table.
    p = Prog().u8(1, 0)
    mmio_init(p, 1)
    mmio_chain(p, 0, [(0x0, 64, True)])
    mmio_chain(p, 0, [(0x100, 32, True), (0x200, 32, True)], indirect=True)
    p.u8(9)
    yield "rng_requests", p.bytes()

    # virtio-vsock: receive buffers, a host client that connects, the loop.
    p = Prog().u8(2, 0)
    mmio_init(p, 3)
    for i in range(4):
        mmio_chain(p, 0, [(0x1000 * i, 4096, True)])
    p.u8(11).u8(11).raw(b"CONNECT 52\n")
    p.u8(7, 9, 7)
    yield "vsock_connect", p.bytes()

    # The init sequence by hand, register by register, with a queue set-up
    # and a status write out of order; then reset and the config space.
    p = Prog().u8(0, 0x02)  # blk, persistent
    for v in (1, 3):
        p.u8(0, MMIO_STATUS // 4).u32(v)
    p.u8(0, 0x24 // 4).u32(1).u8(0, 0x20 // 4).u32(1)  # DriverFeaturesSel 1, DriverFeatures VERSION_1
    p.u8(0, MMIO_STATUS // 4).u32(11)
    for reg, val in ((0x30, 0), (0x38, 8), (0x80, 0), (0x90, 0x100), (0xA0, 0x200), (0x44, 1)):
        p.u8(0, reg // 4).u32(val)
    p.u8(10, 0x0F)   # DRIVER_OK
    p.u8(1).u16(0x100).u8(3)  # config read, 8 bytes
    p.u8(2).u16(0x100).u8(2).u64(0xFFFFFFFF)  # config write
    p.u8(10, 0)      # reset
    p.u8(1).u16(0x70).u8(1)   # a 2-byte status read: ignored
    yield "registers_by_hand", p.bytes()

    # A queue in guest memory that the driver then rewrites.
    p = Prog().u8(1, 0)
    mmio_init(p, 1, size_index=0)
    mmio_mem(p, 0x0, struct.pack("<QIHH", 0x4000, 0xFFFFFFFF, 3, 0))
    p.u8(8, 0).u16(0xFFFF).u16(1)
    mmio_chain(p, 0, [(0x0, 8, False), (0x10, 8, True)])
    p.u8(3, 0, 3, 5)
    yield "rewritten_ring", p.bytes()


# --- virtio_blk (virtio_blk_fuzz.cpp: add_request) ---

def blk_request(p, type_sel, sector_sel, header_sel=0x00, segments=(), status_sel=0, chain_sel=0,
                batch=0, raw_type=None, raw_sector=None):
    p.u8(batch, type_sel)
    if type_sel % 8 in (6, 7):
        p.u32(raw_type)
    p.u8(sector_sel)
    if sector_sel % 4 == 3:
        p.u64(raw_sector)
    p.u8(header_sel, len(segments))
    for len_sel, raw_len in segments:
        p.u8(len_sel)
        if len_sel % 5 == 4:
            p.u16(raw_len)
    return p.u8(status_sel, chain_sel)


def virtio_blk():
    # Write sector 1, read it back, read sector 0, flush, GET_ID (cow, 8 sectors).
    p = Prog().u8(0x06, 0x04)
    blk_request(p, 1, 1 << 2, segments=[(0, 0)])
    blk_request(p, 0, 1 << 2, segments=[(0, 0)])
    blk_request(p, 0, 0, segments=[(1, 0)])
    blk_request(p, 2, 0)
    blk_request(p, 3, 0, segments=[(6, 0)])  # 1024 bytes, writable (flipped)
    yield "write_read_flush_id", p.bytes()

    # Persistent disk, event index, a batch: split header, indirect chain,
    # status in the last data buffer, two data segments.
    p = Prog().u8(0x0B, 0x03)
    blk_request(p, 1, 2 << 2, header_sel=0x40 | (5 << 2), segments=[(0, 0), (0, 0)], batch=1)
    blk_request(p, 0, 2 << 2, segments=[(1, 0)], chain_sel=1, batch=1)
    blk_request(p, 0, 0, segments=[(0, 0)], status_sel=5, batch=2)
    yield "batch_layouts", p.bytes()

    # Read-only disk: a write is refused; requests past the end, an unknown
    # type, a short header, no status byte, odd lengths.
    p = Prog().u8(0x00, 0x08)
    blk_request(p, 1, 0, segments=[(0, 0)])
    blk_request(p, 0, 1 | (0 << 2), segments=[(0, 0)])
    blk_request(p, 0, 2 | (1 << 2), segments=[(0, 0)])
    blk_request(p, 0, 3, segments=[(0, 0)], raw_sector=0xFFFFFFFFFFFFFFFF)
    blk_request(p, 6, 0, raw_type=0x12345678)
    blk_request(p, 0, 0, header_sel=0x80 | 7, segments=[(0, 0)])
    blk_request(p, 0, 0, segments=[(0, 0)], status_sel=2)
    blk_request(p, 0, 0, segments=[(4, 100)])
    blk_request(p, 0, 0, segments=[(5, 0)], status_sel=3)
    yield "refusals", p.bytes()

    # A readable status after writable data: a chain the queue must refuse,
    # so the device fails (NEEDS_RESET) and nothing more is served.
    p = Prog().u8(0x06, 0x04)
    blk_request(p, 0, 0, segments=[(0, 0)])
    blk_request(p, 0, 0, segments=[(0, 0)], status_sel=3)
    blk_request(p, 0, 0, segments=[(0, 0)])
    yield "readable_after_writable", p.bytes()

    # 70 flushes in one notification: more than the device serves per call
    # (kQueueBudget, 64), so the rest comes from the event loop.
    p = Prog().u8(0x05, 0x0A)
    for _ in range(69):
        blk_request(p, 2, 0, batch=1)
    blk_request(p, 2, 0, batch=0)
    yield "over_budget", p.bytes()

    # The largest disk, a queue of 256, long reads.
    p = Prog().u8(0x07, 0x0A)
    blk_request(p, 0, 0, segments=[(3 | (15 << 3), 0), (2, 0), (2, 0), (2, 0)])
    blk_request(p, 1, 100 << 2, segments=[(2, 0)] * 4)
    yield "large_requests", p.bytes()


# --- vsock_packets (vsock_packets_fuzz.cpp: run_op) ---

REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = 1, 2, 3, 4, 5, 6, 7
KNOWN_OPS = [REQUEST, RESPONSE, RW, RW, SHUTDOWN, RST, CREDIT_UPDATE, CREDIT_REQUEST]


def vp_rx(p, count=16, size_sel=0, raw_size=None, layout=0x80, split=0):
    """op 2: receive buffers (size_sel % 8 == 7: a raw u16 size)."""
    p.u8(2, count, size_sel)
    if size_sel % 8 == 7:
        p.u16(raw_size)
    return p.u8(layout, split)


def vp_layout(p, cuts=(), indirect=False, no_notify=False):
    p.u8(len(cuts) | (4 if indirect else 0) | (8 if no_notify else 0))
    for c in cuts:
        p.u8(c)
    return p


def vp_port(p, sel, raw=None):
    """pick_port: sel % 5 == 4 reads a raw u32."""
    p.u8(sel)
    if sel % 5 == 4:
        p.u32(raw)
    return p


def vp_any(p, op, src=(1, None), dst=(0, None), src_cid=None, dst_cid=None, type_=None, raw_op=False,
           flags=0, alloc_idx=2, payload=b"", len_sel=0, raw_len=None, cuts=()):
    """op 0: every header field from the input."""
    sel = (1 if src_cid is not None else 0) | (2 if dst_cid is not None else 0) | \
        (4 if type_ is not None else 0) | (8 if raw_op else 0)
    p.u8(0, sel)
    if src_cid is not None:
        p.u64(src_cid)
    if dst_cid is not None:
        p.u64(dst_cid)
    if type_ is not None:
        p.u16(type_)
    if raw_op:
        p.u16(op)
    else:
        p.u8(op)
    vp_port(p, *src)
    vp_port(p, *dst)
    p.u8(flags, alloc_idx, len_sel)
    if not len_sel & 0x80:
        p.u8(len(payload)).raw(payload)
    if len_sel % 4 == 3:
        p.u32(raw_len)
    return vp_layout(p, cuts)


def vp_known(p, op_index, fixed_port_sel=0, key=None, payload=b"", flags=None, fwd=0, cuts=(), no_notify=False):
    """op 1: op KNOWN_OPS[op_index] on key index `key`, or from guest port
    1000 to listening port index `fixed_port_sel`."""
    sel = op_index << 2
    if key is not None:
        sel |= 2
    else:
        sel |= fixed_port_sel & 1
    p.u8(1, sel)
    if key is not None:
        p.u8(key)
    p.u8(0)  # honest length
    if KNOWN_OPS[op_index] == RW:
        p.u8(len(payload)).raw(payload)
    if KNOWN_OPS[op_index] == SHUTDOWN:
        p.u8(flags - 1)
    p.u16(fwd)
    return vp_layout(p, cuts, no_notify=no_notify)


def vsock_packets():
    # A guest connection to the listening port 1234: REQUEST, the service
    # accepts and writes, the guest reads, sends data, shuts down.
    p = Prog().u8(0)
    vp_rx(p)
    vp_known(p, 0, fixed_port_sel=1)
    p.u8(3).u8(4, 1)
    p.u8(5, 0x00).u8(5).raw(b"hello")
    p.u8(3).u8(4, 1)
    vp_known(p, 2, key=0, payload=b"guest data", cuts=(20, 50))  # header and payload split
    p.u8(5, 0x10)
    vp_known(p, 4, key=0, flags=3)
    p.u8(3).u8(4, 1)
    yield "guest_connect", p.bytes()

    # A host client CONNECTs to guest port 52; the guest answers RESPONSE.
    p = Prog().u8(1)
    vp_rx(p)
    p.u8(6).u32(0).u8(0)  # CONNECT 52
    p.u8(3).u8(4, 1)
    vp_known(p, 1, key=0)
    p.u8(3)
    p.u8(7, 0x00).u8(4).raw(b"ping")
    p.u8(3).u8(4, 1)
    vp_known(p, 6, key=0, fwd=4)
    vp_known(p, 7, key=0)
    p.u8(3).u8(4, 1)
    yield "host_connect", p.bytes()

    # 70 packets in one notification (more than kQueueBudget), then broken
    # rings: a buffer outside memory on tx, a loop on rx, recovery by reset.
    p = Prog().u8(0)
    vp_rx(p)
    for _ in range(70):
        vp_known(p, 6, fixed_port_sel=0, no_notify=True)
    p.u8(8, 1, 0).u8(3).u8(4, 1)
    p.u8(10, 0x08, 1)
    p.u8(10, 0x09, 0).u8(3)
    vp_rx(p)
    vp_known(p, 0, fixed_port_sel=1)
    p.u8(3).u8(4, 1)
    yield "over_budget_and_broken_rings", p.bytes()

    # Hostile headers: a wrong CID, a lying length, an unknown op and type,
    # RW on no connection, a huge packet; tiny receive buffers; the device
    # reset and initialised again.
    p = Prog().u8(0)
    vp_rx(p, count=4, size_sel=1)
    vp_any(p, RW, src_cid=99, payload=b"abcde")
    vp_any(p, RW, payload=b"xyz", len_sel=3, raw_len=100000)
    vp_any(p, 0x55, type_=7, raw_op=True)
    vp_any(p, RW, src=(2, None), dst=(3, None), len_sel=0x81)
    vp_any(p, REQUEST, src=(4, 0xFFFFFFFF), dst=(4, 0x40000000), alloc_idx=5)
    p.u8(8, 1, 1).u8(9, 1)
    vp_rx(p, count=2, size_sel=7, raw_size=50, layout=0x82, split=20)
    p.u8(3).u8(4, 0)
    yield "hostile_headers", p.bytes()


# --- vsock_handshake (vsock_handshake_fuzz.cpp: run_op) ---

def vsock_handshake():
    # One client: CONNECT 52, accepted, data both ways, shutdown, close.
    p = Prog().u8(0)
    p.u8(0)
    p.u8(2, 0, 0)           # client 0: "CONNECT 52\n"
    p.u8(5)                 # the device reads the line: REQUEST
    p.u8(6, 0, 0)           # guest accepts, window 64 KiB
    p.u8(5).u8(4, 0)        # client reads "OK <port>\n"
    p.u8(1, 0).string("ping")
    p.u8(5).u8(6, 0, 0)     # guest receives "ping"
    p.u8(7, 0).u8(3).raw(b"pong")
    p.u8(5).u8(4, 0)
    p.u8(8, 0, 0, 1)        # guest SHUTDOWN (send)
    p.u8(5).u8(3, 0, 0).u8(5).u8(6, 0x80, 0)
    yield "connect_data_close", p.bytes()

    # The line with its payload in one write; a refused request; a small
    # window that needs credit updates.
    p = Prog().u8(1)
    p.u8(0).u8(0)
    p.u8(1, 0).string("CONNECT 1234\nearly bytes")
    p.u8(2, 1, 1)
    p.u8(5).u8(6, 0x02, 0x0F)  # client 0 accepted with window 1 byte, client 1 refused
    p.u8(5).u8(4, 0).u8(4, 1)
    for _ in range(4):
        p.u8(5).u8(6, 0x80, 0)
    p.u8(4, 0)
    yield "payload_refused_window", p.bytes()

    # Garbage, an over-long line, a partial line, a port out of range, a
    # client that hangs up mid-line, one that never finishes.
    p = Prog().u8(0)
    for _ in range(5):
        p.u8(0)
    p.u8(1, 0).string("GET / HTTP/1.0\r\n")
    p.u8(1, 1).string("CONNECT " + "9" * 40 + "\n")
    p.u8(2, 2, 8)           # "CONNECT 52" without the newline
    p.u8(1, 3).string("CONNECT 4294967296\n")
    p.u8(2, 4, 4 | 8).u32(77)
    p.u8(5).u8(3, 4, 0).u8(5)
    p.u8(1, 2).string("\n")
    p.u8(5).u8(6, 0, 0).u8(5)
    for i in range(5):
        p.u8(4, i)
    yield "garbage_lines", p.bytes()

    # Receive buffers run out: control packets wait for them.
    p = Prog().u8(0)
    for i in range(3):
        p.u8(0).u8(2, i, i & 1)
    p.u8(5).u8(6, 0, 0).u8(9, 8, 1, 0).u8(5).u8(6, 0, 0)
    yield "few_buffers", p.bytes()


# --- agent frames (guest-agent/protocol/protocol.h) ---

T = dict(Hello=1, SetClock=0x10, SetHostname=0x11, Shutdown=0x12, Exec=0x13, StdinData=0x14,
         StdinClose=0x15, Signal=0x16, WriteFile=0x17, ReadFile=0x18, Stat=0x19, ExecArgs=0x1A,
         Reseed=0x1B, ConfigureNetwork=0x1C, Credit=0x20, Ack=0x40, Error=0x41, Started=0x42, Output=0x43, Exited=0x44, ExecFailed=0x45,
         FileData=0x46, StatResult=0x47)


class W:
    """A message payload, fields in wire order."""

    def __init__(self):
        self.b = bytearray()

    def u8(self, v): self.b += struct.pack("<B", v); return self
    def u16(self, v): self.b += struct.pack("<H", v); return self
    def u32(self, v): self.b += struct.pack("<I", v & 0xFFFFFFFF); return self
    def u64(self, v): self.b += struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF); return self
    def i32(self, v): return self.u32(v)
    def i64(self, v): return self.u64(v)

    def blob(self, s):
        data = s if isinstance(s, (bytes, bytearray)) else s.encode()
        self.u32(len(data))
        self.b += data
        return self

    def lst(self, items):
        self.u32(len(items))
        for s in items:
            self.blob(s)
        return self


def frame(type_name, rid, payload=b""):
    body = 6 + len(payload)
    return struct.pack("<IHI", body, T[type_name], rid) + bytes(payload)


def limits(w, wall=0, cpu=0, mem=0, pids=0, out=0, nofile=0, fsize=0, sig=0, grace=0):
    return w.u64(wall).u64(cpu).u64(mem).u32(pids).u64(out).u64(nofile).u64(fsize).i32(sig).u64(grace)


def exec_payload(argv, env=(), cwd="/", stdin_mode=0, stdin=b"", pty=False):
    w = W().lst(argv).lst(list(env)).blob(cwd).u32(0xFFFFFFFF).u32(0xFFFFFFFF).u8(stdin_mode)
    w.blob(stdin).u8(1 if pty else 0).u16(24).u16(80)
    return limits(w, wall=1000).b


def configure_network(nameservers, hosts, mac=b"\x02husk\x01", address=0x0A00020F, prefix=24,
                      gateway=0x0A000202, mtu=1500):
    w = W()
    w.b += mac
    w.u32(address).u8(prefix).u32(gateway).u32(mtu).lst(nameservers).u32(len(hosts))
    for addr, name in hosts:
        w.blob(addr).blob(name)
    return w.b


def hello(rid):
    return frame("Hello", rid, W().u16(1).u16(3).u64(7).b)


def exited(rid, code=0):
    return frame("Exited", rid, W().i32(code).i32(0).u64(1).u64(2).u64(4096).u64(10).u8(0).u8(0).u8(0).u8(0).b)


def host_op(p, op, params, agent):
    """agent_frames_host: u8 op, its fields, u16 n, n bytes of agent output."""
    p.u8(op).raw(params)
    return p.u16(len(agent)).raw(agent)


def exec_params(sel, argv, extra=b""):
    p = Prog().u8(sel)
    for a in argv:
        p.string(a)
    return p.raw(extra).bytes()


def agent_frames_host():
    # A whole session: hello, clock, exec with output, files, stat, shutdown.
    p = Prog()
    host_op(p, 0, b"", hello(1))
    host_op(p, 1, struct.pack("<Q", 1700000000 * 10**9), frame("Ack", 2))
    host_op(p, 2, Prog().string("box").bytes(), frame("Ack", 3))
    out = frame("Started", 4, W().u32(42).b) + frame("Output", 4, W().u8(1).blob("hi\n").b) + \
        frame("Output", 4, W().u8(2).blob("oops\n").b) + exited(4)
    host_op(p, 3, exec_params(0x01, ["echo", "hi"]), out)
    host_op(p, 4, Prog().u8(0x08).string("/tmp/a").bytes(), frame("Ack", 5))
    host_op(p, 5, Prog().u8(2).string("/etc").bytes(),
            frame("FileData", 6, W().u64(0).u8(0).blob("abc").b) + frame("FileData", 6, W().u64(3).u8(1).blob("d").b))
    host_op(p, 6, b"\x01", frame("StatResult", 7, W().u32(0o100644).u64(4).u32(0).u32(0).i64(5).b))
    host_op(p, 7, b"", frame("Ack", 8))
    yield "session", p.bytes()

    # Streamed stdin under the agent's credit; output that re-grants credit
    # (a small window); a signal from the callback; ExecFailed; Error.
    p = Prog()
    host_op(p, 0, b"", hello(1))
    host_op(p, 8, struct.pack("<I", 4096), b"")
    out = frame("Started", 2, W().u32(7).b) + frame("Credit", 2, W().u8(0).u32(100).b)
    for _ in range(3):
        out += frame("Output", 2, W().u8(1).blob(b"x" * 1500).b)
    out += frame("Credit", 2, W().u8(0).u32(5000).b) + exited(2, 1)
    host_op(p, 3, exec_params(0x10 | 0x40 | 0x20, ["cat"], struct.pack("<H", 300)), out)
    host_op(p, 3, exec_params(0x08, ["nope"], Prog().string("input").bytes()),
            frame("ExecFailed", 3, W().u8(13).i32(2).b))
    host_op(p, 5, Prog().u8(1).string("big").bytes(),
            frame("FileData", 4, W().u64(0).u8(1).blob("too long").b))
    host_op(p, 6, b"\x00", frame("Error", 5, W().i32(2).blob("no such file\x1b[31m").b))
    yield "credit_and_failures", p.bytes()

    # Hostile: a frame too large, output before Started, beyond credit, a
    # wrong major, stale ids, an unknown type, a truncated frame.
    p = Prog()
    host_op(p, 0, b"", frame("Hello", 1, W().u16(2).u16(0).u64(0).b))
    host_op(p, 9, b"", frame("Ack", 77) + struct.pack("<IHI", 6, 0x99, 5))
    host_op(p, 3, exec_params(0x00, ["x"]), frame("Output", 3, W().u8(1).blob("early").b))
    host_op(p, 6, b"\x00", struct.pack("<IHI", 0x7FFFFFFF, T["StatResult"], 4))
    host_op(p, 5, Prog().u8(0).string("f").bytes(), frame("FileData", 5, W().u64(9).u8(1).blob("x").b)[:-3])
    yield "hostile", p.bytes()


def guest_frame_record(p, type_name, rid, payload, kind=2):
    return p.u8(kind).u16(T[type_name]).u32(rid).u16(len(payload)).raw(payload)


def agent_frames_guest():
    # Hello, then every request once.
    p = Prog()
    guest_frame_record(p, "Hello", 1, W().u16(1).u16(3).u64(0).b)
    guest_frame_record(p, "SetClock", 2, W().u64(1).b)
    guest_frame_record(p, "SetHostname", 3, W().blob("vm").b)
    guest_frame_record(p, "Exec", 4, exec_payload(["sh", "-c", "echo hi"], ["PATH=/bin"], stdin_mode=2))
    guest_frame_record(p, "Credit", 4, W().u8(1).u32(65536).b)
    guest_frame_record(p, "StdinData", 4, W().blob("input").b)
    guest_frame_record(p, "StdinClose", 4, b"")
    guest_frame_record(p, "Signal", 4, W().i32(15).b)
    guest_frame_record(p, "WriteFile", 5, W().blob("/tmp/f").u32(0o644).u32(0xFFFFFFFF).u32(0xFFFFFFFF)
                       .u64(0).u8(1).u8(1).blob("data").b)
    guest_frame_record(p, "ReadFile", 6, W().blob("/etc/hostname").u64(100).b)
    guest_frame_record(p, "Stat", 7, W().blob("/").u8(1).b)
    guest_frame_record(p, "Shutdown", 8, b"")
    yield "every_request", p.bytes()

    # An Exec in ExecArgs parts, sent in small pieces (kind bits 4-7: the
    # piece size), then the same frame again.
    p = Prog()
    guest_frame_record(p, "Hello", 1, W().u16(1).u16(3).u64(0).b)
    guest_frame_record(p, "ExecArgs", 2, W().lst(["a" * 20, "b"]).lst(["X=1"]).b, kind=2 | (1 << 4) | 3 << 2)
    guest_frame_record(p, "ExecArgs", 2, W().lst(["c"]).lst([]).b)
    guest_frame_record(p, "Exec", 2, exec_payload(["d"], ["Y=2"]))
    p.u8(1, 2)  # the Exec twice more: a running id (EEXIST)
    guest_frame_record(p, "ExecArgs", 3, W().lst(["e"]).lst([]).b)
    guest_frame_record(p, "Exec", 3, exec_payload([], []))
    yield "exec_args", p.bytes()

    # Nine requests in parts at once (the ninth is refused, the agent hangs up).
    p = Prog()
    guest_frame_record(p, "Hello", 1, W().u16(1).u16(3).u64(0).b)
    for rid in range(10, 19):
        guest_frame_record(p, "ExecArgs", rid, W().lst(["x"]).lst([]).b)
    yield "too_many_pending", p.bytes()

    # Parts that add up past 8 MiB as Linux counts them: refused (E2BIG),
    # then the Exec of that id is dropped.
    p = Prog()
    guest_frame_record(p, "Hello", 1, W().u16(1).u16(3).u64(0).b)
    p.u8(0xF3).u32(5).u16(9999).string("y" * 100)
    p.u8(1, 8)
    guest_frame_record(p, "Exec", 5, exec_payload(["z"]))
    yield "too_large", p.bytes()

    # Before Hello, a wrong major, bad bools and enums, NUL in a path, a
    # list count past the bytes, an unknown type, then a frame too large.
    p = Prog()
    guest_frame_record(p, "Exec", 1, exec_payload(["early"]))
    guest_frame_record(p, "Hello", 1, W().u16(1).u16(0).u64(0).b)
    guest_frame_record(p, "Stat", 2, W().blob("/").u8(2).b)
    guest_frame_record(p, "Credit", 3, W().u8(3).u32(1).b)
    guest_frame_record(p, "ReadFile", 4, W().blob("/a\0b").u64(0).b)
    guest_frame_record(p, "ExecArgs", 5, W().u32(1000).b)
    p.u8(2).u16(0x77).u32(6).u16(0)
    p.u8(0).u16(10).raw(struct.pack("<IHI", 1 << 21, 1, 7))
    yield "malformed", p.bytes()

    p = Prog()
    guest_frame_record(p, "Hello", 1, W().u16(2).u16(0).u64(0).b)
    guest_frame_record(p, "Stat", 2, W().blob("/").u8(1).b)
    yield "wrong_major", p.bytes()

    # ConfigureNetwork (protocol 1.5): a whole one, the same again, then
    # lists at and past their bounds (8 nameservers, 32 host entries), a
    # list count past the bytes, and a NUL in a name.
    p = Prog()
    guest_frame_record(p, "Hello", 1, W().u16(1).u16(5).u64(0).b)
    guest_frame_record(p, "ConfigureNetwork", 2, configure_network(
        ["10.0.2.3", "1.1.1.1"], [("10.0.2.2", "host.husk.internal"), ("10.0.2.15", "sandbox")]))
    p.u8(1)
    guest_frame_record(p, "ConfigureNetwork", 3, configure_network(["10.0.2.3"] * 8, [("10.0.2.2", "h")] * 32))
    guest_frame_record(p, "ConfigureNetwork", 4, configure_network(["10.0.2.3"] * 9, []))
    guest_frame_record(p, "ConfigureNetwork", 5, configure_network([], [("10.0.2.2", "h")] * 33))
    guest_frame_record(p, "ConfigureNetwork", 6, configure_network([], []) [:-4] + struct.pack("<I", 1000))
    guest_frame_record(p, "ConfigureNetwork", 7, configure_network([], [("10.0.2.2", "a\0b")]))
    yield "configure_network", p.bytes()


# --- job_toml (job_toml_fuzz.cpp: the file's text; paths relative to a
# folder holding in.txt, expected.txt, sum.sh, checker.sh, tests/, src/,
# vmlinux, initramfs.cpio and root.ext4) ---

JOBS = {
    "hello.toml": """version = 1

[process]
run = 'echo "hello from $(uname -r)"'
timeout = "10s"
""",
    "function.toml": """version = 1

[process]
run = "tr a-z A-Z"

[limits]
wall_time = "5s"
memory = "64MiB"
processes = 16
stdout_max = "1MiB"
""",
    "judge.toml": """version = 1

[limits]
memory = "64MiB"
processes = 16
stdout_max = "1MiB"

[[files]]
source = "sum.sh"
destination = "/work/sum.sh"
mode = "0755"

[[files]]
source = "checker.sh"
destination = "/work/checker.sh"

[[steps]]
name = "check"
run = "sh -n /work/sum.sh"
timeout = "10s"

[process]
argv = ["/work/sum.sh"]
cwd = "/work"
user = "nobody"

[judge]
compare = "trailing-whitespace"
checker = ["sh", "/work/checker.sh"]

[judge.limits]
wall_time = "2s"
cpu_time = "1s"

[[cases]]
name = "small"
stdin = "1 2\\n"
expected = "3\\n"

[[cases]]
name = "negative"
stdin_file = "tests/1.in"
expected_file = "tests/1.out"
compare = "exact"

[[cases]]
name = "spacing"
stdin = "  10   20\\n5\\t5\\n"
expected = "30 10"
compare = "tokens"

[[cases]]
name = "numeric"
stdin = "3 4\\n100 -1\\n"
expected = "7.0\\n99\\n"
compare = "checker"
timeout = "1s"
""",
    "ci.toml": """version = 1

[vm]
root_disk = "root.ext4"
root_disk_mode = "cow"
vcpus = 2
memory = "1GiB"

[limits]
wall_time = "2m"
memory = "512MiB"

[env]
CFLAGS = "-O2 -Wall -Wextra -Werror"

[[files]]
source = "src/"
destination = "/work/src"

[[steps]]
name = "build"
run = "mkdir -p out && cc $CFLAGS -o out/sum src/main.c"
cwd = "/work"

[[steps]]
name = "unit tests"
argv = ["out/sum_test"]
cwd = "/work"
continue_on_error = true

[outputs]
paths = ["/work/out/sum", "/work/out/*.txt"]
dir = "out"
max_total = "16MiB"

[result]
format = "json"
path = "result.json"
""",
    "every_key.toml": """version = 1
hostname = "box-1.example"
inherit_env = true

[env]
A = "1"
PATH = "/bin"

[vm]
kernel = "vmlinux"
initramfs = "initramfs.cpio"
root_disk = "root.ext4"
root_disk_mode = "ro"
vcpus = 4
memory = "256MiB"
boot_timeout = "1.5m"

[limits]
wall_time = "250ms"
cpu_time = "1h"
memory = "1.5GiB"
processes = 1000000
open_files = 1048576
file_size = "100MB"
stdout_max = "4096B"
stderr_max = "512KiB"
kill_signal = "SIGTERM"
kill_grace = "2sec"

[[files]]
source = "in.txt"
destination = "/in.txt"
mode = "644"

[[steps]]
name = "a"
argv = ["true"]
user = 1000
stdin = "x"
[steps.limits]
kill_signal = 15
kill_grace = "10us"

[[steps]]
name = "b"
run = "false"
user = "1000:100"
stdin_file = "in.txt"
env = { B = "2" }
continue_on_error = false

[process]
name = "main"
run = "cat"
user = "root"
timeout = "1d"
[process.limits]
wall_time = "3min"

[judge]
compare = "checker"
checker = "diff $2 $3"
stop_on_failure = true

[[cases]]
stdin_file = "in.txt"
expected_file = "expected.txt"
[cases.limits]
memory = "64MiB"

[[cases]]
name = "second"
compare = "exact"

[network]
mode = "none"

[result]
format = "human"
""",
    "errors.toml": """version = 2
hostname = "not a hostname!"
limts = {}

[vm]
vcpus = 0
memory = "10"
kernel = "missing-kernel"
root_disk_mode = "ro"

[limits]
wall_time = "10"
cpu_time = "-1s"
memory = 12
processes = 0
kill_signal = "SIGNOPE"
kill_grace = "25h"

[[files]]
source = "/nonexistent"
destination = "relative/path"
mode = "9999"

[[steps]]
run = "a"
argv = ["b"]

[[steps]]
name = "dup"

[[steps]]
name = "dup"
stdin = "x"
stdin_file = "in.txt"
user = "someone"
cwd = "not/absolute"

[judge]
compare = "fuzzy"

[[cases]]
expected = "x"
expected_file = "expected.txt"

[outputs]
paths = ["relative"]

[network]
mode = "tap"

[result]
format = "xml"
""",
    "syntax.toml": """version = 1
[process
run = "x"
key = = 1
""",
    "types.toml": """version = "1"
inherit_env = "yes"
env = ["A=1"]
vm = 1
limits = []
steps = {}
process = "run"
[[judge]]
cases = 3
""",
}


def job_toml():
    for name, text in JOBS.items():
        yield name, text.encode()


# --- net_frame and dns_message (net_frame_fuzz.cpp, dns_message_fuzz.cpp) ---

NET_GUEST_MAC = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
NET_GATEWAY_MAC = bytes([0x52, 0x55, 0x0A, 0x00, 0x02, 0x02])
NET_GUEST, NET_GATEWAY, NET_DNS = "10.0.2.15", "10.0.2.2", "10.0.2.3"


def net_ip(text):
    return bytes(int(x) for x in text.split("."))


def net_checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def net_ipv4(src, dst, proto, l4, frag=0x4000):
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0x1234, frag, 64, proto, 0,
                              net_ip(src), net_ip(dst)))
    struct.pack_into("!H", h, 10, net_checksum(bytes(h)))
    return bytes(h) + l4


def net_tcp(sport, dport, flags):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 64240, 0, 0)


def net_udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def net_icmp(type_, code, ident, rest=b""):
    m = bytearray(struct.pack("!BBHHH", type_, code, 0, ident, 1) + rest)
    struct.pack_into("!H", m, 2, net_checksum(bytes(m)))
    return bytes(m)


def dns_name(name):
    out = b""
    for label in name.split(".") if name else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_query(ident, name, qtype=1):
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack("!HH", qtype, 1)


def dns_answer(ident, name, records):
    """records: (owner or None for a pointer to the question, type, data)."""
    out = struct.pack("!HHHHHH", ident, 0x8180, 1, len(records), 0, 0) + dns_name(name) + struct.pack("!HH", 1, 1)
    for owner, type_, data in records:
        out += (struct.pack("!H", 0xC00C) if owner is None else dns_name(owner))
        out += struct.pack("!HHIH", type_, 1, 60, len(data)) + data
    return out


def nf_record(p, inbound, body, eth=True):
    """op bit 0: inbound; bit 1: the target adds the Ethernet header."""
    p.u8((1 if inbound else 0) | (2 if eth else 0)).u16(len(body)).raw(body)


def nf_out(p, dst, proto, l4, **kw):
    nf_record(p, False, net_ipv4(NET_GUEST, dst, proto, l4, **kw))


def nf_in(p, src, proto, l4, **kw):
    nf_record(p, True, net_ipv4(src, NET_GUEST, proto, l4, **kw))


def nf_arp(sender_mac, sender_ip, target_ip):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + sender_mac + net_ip(sender_ip) + bytes(6) + net_ip(target_ip)
    return b"\xff" * 6 + sender_mac + b"\x08\x06" + body


def net_frame():
    seeds = []
    cname = dns_name("edge.cdn.example.net")
    answer = dns_answer(7, "www.example.org", [(None, 5, cname), ("edge.cdn.example.net", 1, net_ip("203.0.113.10")),
                                                ("edge.cdn.example.net", 28, bytes(15) + b"\x01")])
    p = Prog().u8(1)  # egress
    nf_record(p, False, nf_arp(NET_GUEST_MAC, NET_GUEST, NET_GATEWAY), eth=False)
    nf_record(p, True, nf_arp(NET_GATEWAY_MAC, NET_GATEWAY, NET_GUEST), eth=False)
    nf_out(p, NET_DNS, 17, net_udp(40001, 53, dns_query(7, "www.example.org")))
    nf_in(p, NET_DNS, 17, net_udp(53, 40001, answer))
    nf_out(p, "203.0.113.10", 6, net_tcp(40002, 443, 0x02))
    nf_in(p, "203.0.113.10", 6, net_tcp(443, 40002, 0x12))
    nf_out(p, "203.0.113.10", 6, net_tcp(40002, 443, 0x11))
    nf_out(p, "203.0.113.11", 6, net_tcp(40003, 443, 0x02))
    nf_out(p, NET_DNS, 17, net_udp(40004, 53, dns_query(8, "evil.example.net")))
    nf_out(p, "192.0.2.5", 17, net_udp(40005, 80, b"hi"))
    nf_out(p, "198.51.100.7", 1, net_icmp(8, 0, 9, b"ping"))
    nf_in(p, "198.51.100.7", 1, net_icmp(0, 0, 9, b"ping"))
    nf_out(p, NET_GATEWAY, 6, net_tcp(40006, 8080, 0x02))
    nf_in(p, NET_GATEWAY, 6, net_tcp(51000, 80, 0x02))
    nf_out(p, NET_GATEWAY, 6, net_tcp(80, 51000, 0x12))
    nf_in(p, "203.0.113.99", 6, net_tcp(443, 40009, 0x02))
    seeds.append(("egress_session", p.bytes()))

    p = Prog().u8(2)  # open
    nf_out(p, "203.0.113.9", 6, net_tcp(40010, 25, 0x02))
    nf_in(p, "203.0.113.9", 6, net_tcp(25, 40010, 0x12))
    nf_out(p, NET_DNS, 17, net_udp(40011, 53, dns_query(9, "anything.example")))
    nf_in(p, NET_DNS, 17, net_udp(53, 40011, dns_answer(9, "anything.example", [(None, 1, net_ip("192.0.2.77"))])))
    nf_out(p, "203.0.113.9", 47, b"\0" * 8)
    nf_in(p, "192.0.2.254", 1, net_icmp(11, 0, 0, net_ipv4(NET_GUEST, "203.0.113.9", 6, net_tcp(40010, 25, 0x10))[:28]))
    for port in range(40020, 40032):  # past the flow table's 8 entries
        nf_out(p, "203.0.113.9", 6, net_tcp(port, 443, 0x02))
    seeds.append(("open_session", p.bytes()))

    p = Prog().u8(1)
    nf_out(p, "192.0.2.5", 17, net_udp(1, 80, b""), frag=0x2000)  # fragment
    nf_out(p, "192.0.2.5", 6, net_tcp(1, 80, 0x02)[:12])  # truncated TCP
    nf_record(p, False, NET_GUEST_MAC + NET_GATEWAY_MAC + b"\x86\xdd" + b"\x60" + bytes(39), eth=False)  # IPv6
    nf_record(p, False, NET_GUEST_MAC + NET_GATEWAY_MAC + b"\x81\x00" + bytes(46), eth=False)  # VLAN
    nf_record(p, False, NET_GATEWAY_MAC + NET_GUEST_MAC + b"\x08\x00" + net_ipv4(NET_GUEST, "1.1.1.1", 6, net_tcp(1, 80, 2)),
              eth=False)  # spoofed MAC
    nf_out(p, NET_DNS, 17, net_udp(40001, 53, b"\x00\x01\x00"))  # malformed query
    nf_record(p, False, bytes(5))
    seeds.append(("malformed", p.bytes()))
    return seeds


def dns_message():
    cname = dns_name("edge.cdn.example.net")
    return [
        ("query_a", dns_query(0x1234, "www.example.org")),
        ("query_aaaa_mixed_case", dns_query(0x4321, "WWW.Example.ORG", 28)),
        ("answer_cname_chain", dns_answer(7, "www.example.org",
                                          [(None, 5, cname), ("edge.cdn.example.net", 5, b"\x02e1\xc0\x32"),
                                           ("e1.cdn.example.net", 1, net_ip("203.0.113.10")),
                                           ("e1.cdn.example.net", 28, bytes(15) + b"\x01")])),
        ("answer_pointer_loop", dns_answer(7, "a.example", [(None, 1, net_ip("192.0.2.1"))])[:-14] + b"\xc0\x1b" + bytes(12)),
        ("nxdomain", struct.pack("!HHHHHH", 9, 0x8183, 1, 0, 0, 0) + dns_name("evil.example.net") + struct.pack("!HH", 1, 1)),
    ]


# --- cpuid_cache (cpuid_cache_fuzz.cpp: a cache file; or u8 n, an n-byte key, a file) ---

CC_MAGIC = b"HUSKCPU1"
# cpuid_cache_fuzz.cpp's kFixedKey: a key as cpuid_cache_key writes one.
CC_FIXED_KEY = (b"boot_id=8d3c6a5e-1f0b-4c1e-9a57-3b2f0c9d4e11 microcode=0xf0 kvm=2792:5:412:1764576000.123456789 "
                b"entry_size=40")
CC_MAX_ENTRIES = 256  # kvm.h: kMaxCpuidEntries


def cc_entry(function, index=0, flags=0, eax=0, ebx=0, ecx=0, edx=0):
    """struct kvm_cpuid_entry2: function, index, flags, eax..edx, padding[3]."""
    return struct.pack("<10I", function, index, flags, eax, ebx, ecx, edx, 0, 0, 0)


def cc_file(key, entries, count=None):
    """encode_cpuid_cache: magic, u32 key size, key, u32 count, the entries."""
    count = len(entries) if count is None else count
    return CC_MAGIC + struct.pack("<I", len(key)) + key + struct.pack("<I", count) + b"".join(entries)


def cc_leaves():
    """What KVM_GET_SUPPORTED_CPUID answers on a typical x86 host, shortened."""
    significant = 1  # KVM_CPUID_FLAG_SIGNIFCANT_INDEX
    yield cc_entry(0x0, eax=0x1f, ebx=0x756E6547, ecx=0x6C65746E, edx=0x49656E69)
    yield cc_entry(0x1, eax=0x000806F8, ebx=0x00000800, ecx=0xF7FA3223, edx=0x0F8BFBFF)
    yield cc_entry(0x4, 0, significant, eax=0x00000121, ebx=0x02C0003F, ecx=0x3F)
    yield cc_entry(0x4, 1, significant, eax=0x00000122, ebx=0x01C0003F, ecx=0x3F)
    yield cc_entry(0x7, 0, significant, eax=0x2, ebx=0xF1BF07AB, ecx=0x1B415F6E, edx=0xBC10C410)
    yield cc_entry(0xD, 0, significant, eax=0x602E7, ebx=0x340, ecx=0x2B00)
    yield cc_entry(0xD, 1, significant, eax=0x1F)
    yield cc_entry(0x40000000, eax=0x40000001, ebx=0x4B4D564B, ecx=0x564B4D56, edx=0x4D)
    yield cc_entry(0x80000000, eax=0x80000008)
    yield cc_entry(0x80000001, ecx=0x121, edx=0x2C100800)
    yield cc_entry(0x80000008, eax=0x3030)


def cpuid_cache():
    leaves = list(cc_leaves())
    many = [cc_entry(0x4000_0000 + i, i, 1, i, i ^ 0xFFFFFFFF, i * 3, i ^ 0x5A5A) for i in range(CC_MAX_ENTRIES)]
    fixed = cc_file(CC_FIXED_KEY, leaves)
    seeds = [
        ("fixed_one", cc_file(CC_FIXED_KEY, leaves[:1])),
        ("fixed_host", fixed),
        ("fixed_max", cc_file(CC_FIXED_KEY, many)),
        # Refused: no entries, one too many, a count that lies, a byte more,
        # another host's key, and cut short in each field.
        ("fixed_none", cc_file(CC_FIXED_KEY, [])),
        ("fixed_over_max", cc_file(CC_FIXED_KEY, many + leaves[:1])),
        ("fixed_count_lies", cc_file(CC_FIXED_KEY, leaves, count=len(leaves) + 1)),
        ("fixed_trailing", fixed + b"\0"),
        ("fixed_other_key", cc_file(CC_FIXED_KEY.replace(b"microcode=0xf0", b"microcode=0xf2"), leaves)),
        ("cut_magic", fixed[:5]),
        ("cut_key_size", fixed[:10]),
        ("cut_key", fixed[:12 + len(CC_FIXED_KEY) // 2]),
        ("cut_count", fixed[:12 + len(CC_FIXED_KEY) + 2]),
        ("cut_entry", fixed[:-17]),
    ]
    # For the key the file names: the longest key allowed, and one byte more.
    seeds.append(("named_key_max", cc_file(b"k" * 4096, leaves[:2])))
    seeds.append(("named_key_over_max", cc_file(b"k" * 4097, leaves[:2])))
    # u8 key length, the key, a file for it.
    for name, key, entries in [("keyed_empty_key", b"", leaves[:1]), ("keyed_short", b"k", leaves[:3]),
                               ("keyed_host", CC_FIXED_KEY, leaves), ("keyed_long", bytes(range(1, 256)), leaves[:5])]:
        seeds.append((name, struct.pack("<B", len(key)) + key + cc_file(key, entries)))
    return seeds


TARGETS = {
    "descriptor_chain": descriptor_chain,
    "mmio_transport": mmio_transport,
    "virtio_blk": virtio_blk,
    "vsock_packets": vsock_packets,
    "vsock_handshake": vsock_handshake,
    "agent_frames_host": agent_frames_host,
    "agent_frames_guest": agent_frames_guest,
    "job_toml": job_toml,
    "net_frame": net_frame,
    "dns_message": dns_message,
    "cpuid_cache": cpuid_cache,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"), help="corpus root (default: tests/fuzz/corpus)")
    ap.add_argument("targets", nargs="*", help="targets (default: all)")
    args = ap.parse_args()
    for target in args.targets or TARGETS:
        if target not in TARGETS:
            sys.exit(f"make_seeds.py: no target '{target}' (targets: {', '.join(TARGETS)})")
        out = os.path.join(args.out, target)
        os.makedirs(out, exist_ok=True)
        for name, data in TARGETS[target]():
            with open(os.path.join(out, name), "wb") as f:
                f.write(bytes(data))


if __name__ == "__main__":
    main()
