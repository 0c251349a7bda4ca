"""Client load for tests: pipelined gets and sets of keys under a prefix, on several
connections, until SIGTERM. Prints the number of operations done.

usage: python3 hammer.py PORT PREFIX [CONNECTIONS]
"""
import select
import signal
import socket
import sys

port, prefix = int(sys.argv[1]), sys.argv[2].encode()
nconn = int(sys.argv[3]) if len(sys.argv) > 3 else 2
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(nconn)]
ops = 0
i = 0
while not stop:
    for c in conns:
        reqs = []
        for j in range(100):
            k = b"%s:%d" % (prefix, (i * 100 + j) % 50000)
            if j % 2:
                v = b"x" * (j * 3)
                reqs.append(b"ms %s %d T0 F%d q\r\n%s\r\n" % (k, len(v), j, v))
            else:
                reqs.append(b"mg %s v q\r\n" % k)
        c.sendall(b"".join(reqs) + b"mn\r\n")
        buf = b""
        while not buf.endswith(b"MN\r\n"):
            r, _, _ = select.select([c], [], [], 10)
            if not r:
                sys.exit("hammer: no reply for 10 s")
            d = c.recv(1 << 20)
            if not d:
                sys.exit("hammer: connection closed")
            buf += d
        ops += 100
        i += 1
print(ops, flush=True)
