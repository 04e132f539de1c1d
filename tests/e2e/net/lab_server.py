#!/usr/bin/env python3
"""The network e2e tests' servers, on the test host itself (never an outside
address): HTTP on each ADDRESS:PORT given, and a DNS server that answers a
fixed zone. Prints "ready" on stdout once every socket is bound, then serves
until killed.

Usage: lab_server.py --http ADDR:PORT [--http ...] --dns ADDR:PORT

HTTP paths:
  /hello        "hello from ADDR:PORT\n"
  /bytes/N      N bytes of 'x' (at most 64 MiB)
DNS zone (A records, class IN; everything else NXDOMAIN):
  mirror.lab          -> 192.168.50.1
  denied.lab          -> 192.168.50.2
  www.cdn.lab         CNAME edge.other.lab, edge.other.lab -> 192.168.50.1
"""
import argparse
import http.server
import socket
import socketserver
import struct
import sys
import threading

ZONE_A = {"mirror.lab": "192.168.50.1", "denied.lab": "192.168.50.2", "edge.other.lab": "192.168.50.1"}
ZONE_CNAME = {"www.cdn.lab": "edge.other.lab"}
LOG = False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        where = "%s:%d" % self.server.server_address[:2]
        if self.path == "/hello":
            body = ("hello from %s\n" % where).encode()
        elif self.path.startswith("/bytes/"):
            n = min(int(self.path.split("/")[2]), 64 << 20)
            body = b"x" * n
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def encode_name(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def read_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def answer(query):
    qid, flags, qd = struct.unpack(">HHH", query[:6])
    name, off = read_name(query, 12)
    qtype, _ = struct.unpack(">HH", query[off:off + 4])
    question = query[12:off + 4]
    records = []
    lname = name.lower()
    if lname in ZONE_CNAME:
        target = ZONE_CNAME[lname]
        records.append(encode_name(lname) + struct.pack(">HHIH", 5, 1, 60, len(encode_name(target))) +
                       encode_name(target))
        lname = target
    if lname in ZONE_A and qtype == 1:
        records.append(encode_name(lname) + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ZONE_A[lname]))
    known = lname in ZONE_A
    rcode = 0 if known else 3
    rflags = 0x8000 | (flags & 0x0100) | 0x0080 | rcode
    return struct.pack(">HHHHHH", qid, rflags, 1, len(records), 0, 0) + question + b"".join(records)


def serve_dns(sock):
    while True:
        data, peer = sock.recvfrom(2048)
        if LOG:
            print("dns: query %s from %s:%d" % (data[:2].hex(), peer[0], peer[1]), file=sys.stderr, flush=True)
        try:
            sock.sendto(answer(data), peer)
        except Exception as e:  # a malformed query: no answer
            print("dns: %s" % e, file=sys.stderr)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--http", action="append", default=[])
    p.add_argument("--dns")
    p.add_argument("--log", action="store_true", help="each DNS query on stderr")
    args = p.parse_args()
    global LOG
    LOG = args.log
    for spec in args.http:
        addr, port = spec.rsplit(":", 1)
        server = Server((addr, int(port)), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.dns:
        addr, port = args.dns.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((addr, int(port)))
        threading.Thread(target=serve_dns, args=(sock,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
