"""Crafted chunk files: every checksum valid, the structure whatever a test wants.

The populator reads volumes another host writes, so it must treat a file whose header,
blocks, footer and name all check out as untrusted all the same. This module writes such
files (docs/format.md, version 1) block by block from explicit block descriptions, plus
the MANIFEST and DONE that make a directory a finished dump. `hostile_corpus()` is the
regression corpus: small and odd block sizes, long continuation chains, records ending
exactly at block ends, counts that disagree with contents.

Used by test_crafted.py (through the real `mcwarm populate`) and, run as a script, to
refresh the fuzz seed corpus: python3 chunkcraft.py OUTDIR
"""
import os
import struct
import sys

ALIGN = 4096
BLOCK_MAGIC = 0x4257434D
F_CONTINUES = 1


def _table():
    poly = 0x82F63B78
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t.append(c)
    return t


_T = _table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def record(key, value, flags=0, expires_at_ms=0, value_len=None, binary=False):
    """A record header and key, and as much of value as given (value_len may claim more)."""
    vlen = len(value) if value_len is None else value_len
    hdr = struct.pack("<HBBIqI", len(key), 1 if binary else 0, 0, flags, expires_at_ms, vlen)
    return hdr + key + value


class Block:
    """One block: payload bytes and the header fields that describe them."""

    def __init__(self, payload, records, cont=0, continues=False, payload_bytes=None,
                 index=None, flags=None):
        self.payload = payload
        self.records = records
        self.cont = cont
        self.flags = (F_CONTINUES if continues else 0) if flags is None else flags
        self.payload_bytes = len(payload) if payload_bytes is None else payload_bytes
        self.index = index

    def encode(self, index, block_bytes, last):
        hdr = struct.pack("<IIIIIII", BLOCK_MAGIC, index if self.index is None else self.index,
                          self.payload_bytes, self.cont, self.records, self.flags, 0)
        crc = crc32c(hdr, crc32c(self.payload))
        data = hdr + struct.pack("<I", crc) + self.payload
        assert len(data) <= block_bytes, "payload larger than the block"
        size = block_bytes if not last else -(-len(data) // ALIGN) * ALIGN
        return data + bytes(size - len(data))


def header(dump_id, job, part, block_bytes):
    f = struct.pack("<8sHHIII16sIIqqqqII64s32s", b"MCWCHUNK", 1, 0, 4096, block_bytes, 0,
                    dump_id, job, part, 0, 0, 0, 0, 0, 0, b"crafted:11211", b"1.6.18")
    page = f + bytes(4092 - len(f))
    return page + struct.pack("<I", crc32c(page))


def footer(dump_id, job, part, body_crc, body_bytes, nrec, nblocks, key_bytes, value_bytes,
           last_block):
    f = struct.pack("<8sQQQQQII16sII", b"MCWFOOTR", nrec, nblocks, key_bytes, value_bytes,
                    body_bytes + 4096, body_crc, last_block, dump_id, job, part)
    page = f + bytes(4092 - len(f))
    return page + struct.pack("<I", crc32c(page))


def chunk_file(directory, dump_id, job, part, block_bytes, blocks, nrec=None, value_bytes=0):
    """Writes a finished chunk file (final name) and returns (name, records, size,
    value_bytes). The footer's record count is what the blocks claim unless nrec says."""
    if nrec is None:
        nrec = sum(b.records for b in blocks)
    parts = [header(dump_id, job, part, block_bytes)]
    for i, b in enumerate(blocks):
        parts.append(b.encode(i, block_bytes, i + 1 == len(blocks)))
    last = parts[-1] if blocks else b""
    body = b"".join(parts)
    body_crc = crc32c(body)
    data = body + footer(dump_id, job, part, body_crc, len(body), nrec, len(blocks), 0,
                         value_bytes, len(last))
    name = "chunk-%06d-%03d-%08x.mcw" % (job, part, body_crc)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)
    return name, nrec, len(data), value_bytes


def _sealed(text):
    return text + "crc32c %08x\n" % crc32c(text.encode())


def finish_dump(directory, dump_id, entries):
    """MANIFEST then DONE over entries [(name, records, file_bytes, value_bytes)]."""
    nrec = sum(e[1] for e in entries)
    vbytes = sum(e[3] for e in entries)
    body = "mcwarm-manifest 1\ndump_id %s\nsource crafted:11211\nsource_version 1.6.18\n" \
        "started_unix_ns 1\nfinished_unix_ns 2\nfiles %d\nrecords %d\nvalue_bytes %d\n" % (
            dump_id.hex(), len(entries), nrec, vbytes)
    for e in entries:
        body += "chunk %s %d %d %d\n" % e
    manifest = _sealed(body)
    with open(os.path.join(directory, "MANIFEST"), "w") as f:
        f.write(manifest)
    mcrc = int(manifest.rsplit("crc32c ", 1)[1], 16)
    done = _sealed("mcwarm-done 1\ndump_id %s\nmanifest_crc32c %08x\nfiles %d\nrecords %d\n" % (
        dump_id.hex(), mcrc, len(entries), nrec))
    with open(os.path.join(directory, "DONE"), "w") as f:
        f.write(done)


def good(i, size=10):
    """A well-formed record of a known key and value: the test looks for these."""
    key = b"good-%d" % i
    return key, (b"v%d-" % i + b"x" * size)[:size]


def chain(key, value, pieces, rest_records=()):
    """A record whose value is cut into `pieces` slices, one per block (a continuation
    chain), then rest_records after its end in the last block."""
    step = -(-len(value) // pieces)
    slices = [value[i:i + step] for i in range(0, len(value), step)]
    blocks = [Block(record(key, b"", value_len=len(value)) + slices[0], 1, continues=True)]
    for s in slices[1:-1]:
        blocks.append(Block(s, 0, cont=len(s), continues=True))
    tail = slices[-1] + b"".join(rest_records)
    blocks.append(Block(tail, len(rest_records), cont=len(slices[-1])))
    return blocks


def spanning(key, value, block_bytes, rest_records=()):
    """A record spanning blocks as the writer lays it out: every block but the last full."""
    cap = block_bytes - 32
    first = record(key, b"", value_len=len(value))
    cut = cap - len(first)
    blocks = [Block(first + value[:cut], 1, continues=len(value) > cut)]
    pos = cut
    while pos < len(value):
        piece = value[pos:pos + cap]
        pos += len(piece)
        more = pos < len(value)
        tail = b"" if more else b"".join(rest_records)
        blocks.append(Block(piece + tail, 0 if more else len(rest_records), cont=len(piece),
                            continues=more))
    return blocks


def hostile_corpus():
    """(name, block_bytes, blocks, expected good keys, damaged[, footer records]) tuples.
    `damaged` means populate must report damage (exit 65) while still applying every good
    record. Expected keys are exactly what the destination must hold afterwards."""
    c = []
    g = [good(i) for i in range(8)]
    recs = lambda idx: b"".join(record(*g[i]) for i in idx)
    # 1. a long continuation chain of tiny slices in small blocks: 300 one-byte pieces
    big = b"".join(b"%03d" % i for i in range(100))
    c.append(("long-chain-small-blocks", 8192,
              chain(b"chained", big, len(big), [record(*g[0])]) + [Block(recs([1]), 1)],
              {g[0][0]: g[0][1], g[1][0]: g[1][1]}, True))
    # 2. a chain longer than a read window can hold (small blocks, many of them)
    huge = bytes(range(256)) * 24  # 6144 bytes in 2-byte slices over 3072 blocks
    c.append(("chain-longer-than-a-window", 8192,
              [Block(recs([2]), 1)] + chain(b"window", huge, len(huge) // 2) +
              [Block(recs([3]), 1)],
              {g[2][0]: g[2][1], g[3][0]: g[3][1]}, True))
    # 3. records that end exactly at block ends, in the smallest and an odd block size
    for bb in (8192, 12288):
        cap = bb - 32
        filler = cap - len(record(b"edge", b""))
        c.append(("exact-end-%d" % bb, bb,
                  [Block(record(b"edge", b"e" * filler), 1), Block(recs([4]), 1),
                   Block(record(b"edge2", b"f" * (filler - 1)), 1)],
                  {b"edge": b"e" * filler, g[4][0]: g[4][1], b"edge2": b"f" * (filler - 1)},
                  False))
    # 4. counts that disagree with contents: more records claimed than present, fewer
    c.append(("count-too-high", 8192,
              [Block(recs([5]), 2), Block(recs([6]), 1)], {g[6][0]: g[6][1]}, True))
    c.append(("count-too-low", 8192,
              [Block(recs([5, 6]), 1), Block(recs([7]), 1)], {g[7][0]: g[7][1]}, True))
    # 5. a value claiming more than the file holds, continuing nowhere
    c.append(("value-longer-than-file", 8192,
              [Block(recs([0]), 1), Block(record(b"liar", b"abc", value_len=1 << 29), 1,
                                          continues=True)],
              {g[0][0]: g[0][1]}, True))
    # 6. a continuation whose record began in no block, then a good one
    c.append(("orphan-continuation", 8192,
              [Block(b"zzzz" + recs([1]), 1, cont=4), Block(recs([2]), 1)],
              {g[2][0]: g[2][1]}, True))
    # 7. a middle block that is empty: a chain that makes no progress
    c.append(("empty-middle-block", 8192,
              [Block(record(b"stall", b"ab", value_len=4), 1, continues=True)] +
              [Block(b"", 0, continues=True) for _ in range(200)] +
              [Block(b"cd" + recs([3]), 1, cont=2)],
              {g[3][0]: g[3][1]}, True))
    # 8. unknown block flags, and a block index out of order
    c.append(("bad-flags-and-index", 8192,
              [Block(recs([4]), 1, flags=6), Block(recs([5]), 1, index=7), Block(recs([6]), 1)],
              {g[6][0]: g[6][1]}, True))
    # 9. values spanning full blocks as the writer makes them: 5 blocks (applied), and 200
    # blocks, larger than the destination's 1 MiB items (skipped as too large, counted)
    v5 = bytes((i * 7) & 0xFF for i in range(5 * 8160))
    c.append(("span-full-blocks", 8192, spanning(b"span5", v5, 8192, [record(*g[5])]),
              {b"span5": v5, g[5][0]: g[5][1]}, False))
    v200 = bytes((i * 13) & 0xFF for i in range(200 * 8160))
    c.append(("span-larger-than-destination", 8192,
              [Block(recs([6]), 1)] + spanning(b"span200", v200, 8192, [record(*g[7])]),
              {g[6][0]: g[6][1], g[7][0]: g[7][1]}, False))
    # 10. a footer whose record count disagrees with the blocks
    c.append(("footer-count-disagrees", 8192, [Block(recs([0, 1]), 2)],
              {g[0][0]: g[0][1], g[1][0]: g[1][1]}, True, 5))
    # 11. the largest block size the format allows beside many tiny records
    many = [good(100 + i, 1) for i in range(2000)]
    c.append(("many-tiny-records", 8192 * 8,
              [Block(b"".join(record(k, v) for k, v in many), len(many))],
              dict(many), False))
    return c


def write_case(directory, case, job=0):
    name, bb, blocks = case[:3]
    nrec = case[5] if len(case) > 5 else None
    dump_id = (name.encode() + bytes(16))[:16]
    e = chunk_file(directory, dump_id, job, 0, bb, blocks, nrec)
    finish_dump(directory, dump_id, [e])
    return e[0]


if __name__ == "__main__":
    out = sys.argv[1]
    for case in hostile_corpus():
        d = os.path.join(out, case[0])
        os.makedirs(d, exist_ok=True)
        print(write_case(d, case))
