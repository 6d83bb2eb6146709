#!/usr/bin/python3
"""A bulk TCP transfer, to show the WAN testbed holds its rate.

  bulk.py serve ADDRESS PORT       prints "listening on PORT", accepts one
                                   connection, reads it to the end, prints
                                   {"bytes", "seconds"} (first byte to last)
  bulk.py send ADDRESS PORT BYTES  sends BYTES in 256 KiB writes, then closes
"""
import json
import socket
import sys
import time


def serve(address, port):
    with socket.create_server((address, port)) as s:
        print("listening on %d" % s.getsockname()[1], flush=True)
        s.settimeout(120)
        conn, _ = s.accept()
        with conn:
            conn.settimeout(120)
            total, first = 0, None
            while True:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                if first is None:
                    first = time.monotonic()
                total += len(chunk)
            last = time.monotonic()
    print(json.dumps({"bytes": total, "seconds": last - (first or last)}), flush=True)


def send(address, port, size):
    block = b"\0" * (256 << 10)
    with socket.create_connection((address, port), timeout=120) as s:
        left = size
        while left > 0:
            n = min(left, len(block))
            s.sendall(block[:n])
            left -= n


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
