#!/usr/bin/env python3
"""make_corpus.py — writes the seed corpora of tests/fuzz/corpus/<target>/: a few small, valid
inputs of each format (and a few near misses), built from the layouts in shmlog/wire.h,
shmlog/shmlog.h, store/block.c, store/runs.c, store/experiments.c and sync/protocol.h.

    python3 tests/fuzz/make_corpus.py [OUTDIR]     (default: tests/fuzz/corpus)

The output is committed; rerun this only when a format changes."""
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


# ---- a minimal msgpack packer (str, bin, int, bool, list, dict) ----
def mp(o):
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 0x80:
            return bytes([o])
        if -32 <= o < 0:
            return struct.pack("b", o)
        if o >= 0:
            return b"\xcf" + struct.pack(">Q", o) if o >= 1 << 32 else b"\xce" + struct.pack(">I", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, float):
        return b"\xcb" + struct.pack(">d", o)
    if isinstance(o, str):
        b = o.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xd9" + bytes([len(b)]) + b if len(b) < 256 else b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(o, bytes):
        if len(o) < 256:
            return b"\xc4" + bytes([len(o)]) + o
        return b"\xc5" + struct.pack(">H", len(o)) + o
    if isinstance(o, list):
        assert len(o) < 16
        return bytes([0x90 | len(o)]) + b"".join(mp(x) for x in o)
    if isinstance(o, dict):
        assert len(o) < 16
        return bytes([0x80 | len(o)]) + b"".join(mp(k) + mp(v) for k, v in o.items())
    raise TypeError(o)


# ---- ring records (shmlog/wire.h) ----
PAD, SPILL_MARK = 0xFF, 0xFE
METRIC, METRICS, KEYDEF, RUNDEF, RUN_START, RUN_END, PARAM, TAG, ARTIFACT, MODEL_REGISTER = range(1, 11)
RUN = bytes(range(16))


def rec(type_, body, flags=0, aux=0):
    n = (8 + len(body) + 7) & ~7
    return struct.pack("<iBBH", n, type_, flags, aux) + body + b"\0" * (n - 8 - len(body))


def metric(key=1, run=0, step=3, ts=1700000000000, value=0.5, flags=1):
    return rec(METRIC, struct.pack("<IIqqd", key, run, step, ts, value), flags)


def metrics(run=0, step=7, ts=1700000000000, entries=((1, 0.25), (2, -1.0))):
    body = struct.pack("<IIqq", run, len(entries), step, ts)
    body += b"".join(struct.pack("<IId", k, 0, v) for k, v in entries)
    return rec(METRICS, body, aux=len(entries))


RECORDS = {
    "metric": metric(),
    "metrics": metrics(),
    "keydef": rec(KEYDEF, mp([1, "loss"])),
    "rundef": rec(RUNDEF, mp([0, RUN])),
    "run_start": rec(RUN_START, mp({"run": RUN, "exp": "Default", "name": "r1", "start": 1700000000000,
                                    "user": "alice", "host": "gpu1", "parent": bytes(16), "source": "train.py"})),
    "run_end": rec(RUN_END, mp([0, 3, 1700000001000])),
    "param": rec(PARAM, mp([0, "lr", "0.001"])),
    "tag": rec(TAG, mp([0, "mlflow.note", "hello"])),
    "artifact": rec(ARTIFACT, mp([0, "model/weights.bin", "a1b2c3.spool", 4096])),
    "model_register": rec(MODEL_REGISTER, mp([0, "model", "mnist-cnn", ["champion", "prod"], "a cnn"])),
    "spill_mark": rec(SPILL_MARK, struct.pack("<Q", 64)),
    "pad": rec(PAD, b"\0" * 24),
}


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def spill(recs):
    return b"".join(struct.pack("<II", len(r), crc32c(r)) + r for r in recs)


# ---- metric blocks (store/block.c) ----
def zz(d):
    d &= (1 << 64) - 1
    return ((d << 1) ^ (0xFFFFFFFFFFFFFFFF if d >> 63 else 0)) & ((1 << 64) - 1)


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def fbits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def block(points):
    body = bytearray()
    ps, pt, pb = 0, 0, 0
    for step, ts, val in points:
        body += varint(zz(step - ps)) + varint(zz(ts - pt))
        x = fbits(val) ^ pb
        if x == 0:
            body.append(0x80)
        else:
            lead = (64 - x.bit_length()) // 8
            trail = ((x & -x).bit_length() - 1) // 8
            body.append(lead << 4 | trail)
            for i in reversed(range(8 - lead - trail)):
                body.append((x >> (8 * (trail + i))) & 0xFF)
        ps, pt, pb = step, ts, fbits(val)
    hdr = struct.pack("<BBHI", 1, 0, len(points), 0)
    if points:
        hdr += struct.pack("<qqqQ", points[0][0], points[-1][0], points[-1][1], fbits(points[-1][2]))
    else:
        hdr += b"\0" * 32
    return hdr + bytes(body)


# ---- arena headers (shmlog/shmlog.h) ----
def arena_hdr(lanes=1, lane_size=64 << 10, magic=b"STSHMLOG", version=1, clock=1):
    first = (4096 + lanes * 256 + 4095) & ~4095
    size = first + lanes * lane_size
    h = magic + struct.pack("<IIIIQQ", version, 4096, 256, lanes, lane_size, size)
    h += bytes(range(16)) + struct.pack("<IIQQ", 1000, clock, 1700000000000000000, 256 << 20)
    h += b"\0" * (64 - len(h) % 64 if len(h) % 64 else 0)  # the agent line is 64-aligned
    h += struct.pack("<IIQQ", 0, 0, 0, 0) + b"\0" * 256
    return h


# ---- agent-server frames (sync/protocol.h): a msgpack map, then its CRC-32C (LE) ----
def frame(m):
    b = mp(m)
    return b + struct.pack("<I", crc32c(b))


def sync_ops():
    run = bytes(range(16, 32))
    pts = b"".join(struct.pack("<qqd", i - 3, 1700000000000 + i, 1.0 / (i + 1)) for i in range(12))
    pts += struct.pack("<qqQ", -(1 << 63), (1 << 63) - 1, 0x7FF8DEAD0000BEEF)  # a NaN payload
    return [
        [10, 1, run, "Default", "r1", "alice", "gpu1", 1700000000000, None],
        [11, 1, bytes(16), "", "", "", "", -1, run],
        [12, 3, run, "lr", "0.001"],
        [13, 4, run, "mlflow.note", ""],
        [14, 5, run, "loss", 0, pts],
        [15, 5, run, "acc", 1 << 40, b""],
        [16, 6, run, "model/weights.bin", bytes(range(32)), 4096],
        [17, 2, run, 3, 1700000001000],
    ]


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, r in RECORDS.items():
        write("decode_record", name, r)
    # a lane: u64 position, u64 head, then the lane's bytes
    stream = b"".join(RECORDS[k] for k in ("keydef", "rundef", "run_start", "metric", "metrics",
                                           "param", "tag", "artifact", "spill_mark", "run_end"))
    write("lane_walk", "stream", struct.pack("<QQ", 0, 0) + stream)
    inprog = bytearray(RECORDS["param"])
    inprog[0:4] = struct.pack("<i", -len(RECORDS["param"]))  # being written (a dead producer)
    write("lane_walk", "inprogress", struct.pack("<QQ", 0, 0) + RECORDS["metric"] + bytes(inprog) + RECORDS["tag"])
    # wrap-around: 64-byte lane read from offset 40 of its second lap: a PAD, then the start
    lane = bytearray(64)
    lane[0:40] = RECORDS["metric"]
    lane[40:64] = rec(PAD, b"\0" * 16)
    write("lane_walk", "wrap", struct.pack("<QQ", 104, 64) + bytes(lane))
    write("lane_walk", "unreleased_lap", struct.pack("<QQ", 64, 0) + bytes(lane))
    # spill files: mode byte, then [u32 len][u32 crc32c][record]...
    recs = [RECORDS[k] for k in ("keydef", "run_start", "param", "tag", "artifact", "metric")]
    write("spill", "records", b"\0" + spill(recs))
    write("spill", "upto", b"\x01" + spill(recs[:3]))
    write("spill", "torn_tail", b"\0" + spill(recs[:2]) + spill(recs[2:3])[:20])
    write("spill", "one", b"\0" + spill([RECORDS["run_end"]]))
    # mode 2: the harness fixes the checksums itself (zeros here)
    write("spill", "fixcrc", b"\x02" + b"".join(struct.pack("<II", len(r), 0) + r for r in recs))
    write("spill", "fixcrc_upto", b"\x0b" + spill(recs[:2]))
    # arena headers: mode byte (bit 0: the file is as long as the header says), then the header
    write("arena_header", "valid", b"\x01" + arena_hdr())
    write("arena_header", "valid_4lanes_tsc", b"\x01" + arena_hdr(lanes=4, lane_size=1 << 20, clock=2))
    write("arena_header", "wrong_size", b"\x08" + arena_hdr())
    write("arena_header", "version2", b"\x01" + arena_hdr(version=2))
    write("arena_header", "short", b"\x02" + b"STSHML")
    # metric blocks
    write("block", "empty", block([]))
    write("block", "one", block([(0, 1700000000000, 1.0)]))
    write("block", "steps", block([(i, 1700000000000 + 10 * i, 1.0 / (i + 1)) for i in range(20)]))
    write("block", "odd_values", block([(-5, 0, float("nan")), (1 << 62, -1, float("inf")),
                                        (-(1 << 63), 1 << 40, -0.0), (3, 3, 3.0), (3, 3, 3.0)]))
    # stored values: selector byte (0 run, 1 experiment, 2 any msgpack, 3 fixed records)
    run = {"e": 3, "n": "r1", "s": 1, "st": 1700000000000, "en": 0, "u": "alice", "h": "gpu1",
           "p": bytes(16), "ui": 1000, "pi": 4242, "ps": True, "pe": False}
    write("store_value", "run", b"\0" + mp(run))
    write("store_value", "run_newer", b"\0" + mp({"e": 0, "n": "x", "zz": [1, {"a": -3}], "s": 4}))
    write("store_value", "experiment", b"\x01" + mp({"n": "Default", "c": 1700000000000}))
    write("store_value", "any", b"\x02" + mp({"a": 1.5, "b": None, "c": [True, -100, "s", b"bin"],
                                               "d": {"x": 1 << 40}, "e": -(1 << 40)}))
    write("store_value", "fixed", b"\x03" + struct.pack("<QQQQQQII", 1, 2, 3, 4, 5, 6, 7, 8) + b"\x01")
    # agent-server frames: mode byte (bit 0: the harness recomputes the CRC), then the frame
    agent = bytes(range(0xA0, 0xB0))
    ops = sync_ops()
    batch = frame({"t": 3, "agent": agent, "first": 10, "last": 17, "ops": ops})
    write("sync_batch", "batch", b"\0" + batch)
    write("sync_batch", "batch_fixcrc", b"\x01" + batch[:-4] + b"\0\0\0\0")
    write("sync_batch", "batch_one", b"\0" + frame({"t": 3, "agent": agent, "first": 17, "last": 17,
                                                     "ops": ops[-1:]}))
    # protocol version 2: a registration from training code (op 7)
    reg = [18, 7, bytes(range(16, 32)), "model", "mnist-cnn", "champion,prod", "", "alice@gpu1",
           1700000002000, "ab" * 32]
    write("sync_batch", "batch_register", b"\0" + frame({"t": 3, "agent": agent, "first": 18,
                                                          "last": 18, "ops": [reg]}))
    write("sync_batch", "hello_v3", b"\x01" + frame({"t": 1, "v": 3, "agent": agent, "host": "", "next": 1}))
    write("sync_batch", "hello", b"\0" + frame({"t": 1, "v": 1, "agent": agent, "host": "gpu1", "next": 18}))
    write("sync_batch", "hello_v2", b"\x01" + frame({"t": 1, "v": 2, "agent": agent, "host": "", "next": 1}))
    write("sync_batch", "welcome", b"\0" + frame({"t": 2, "v": 1, "hwm": 1}))
    write("sync_batch", "ack", b"\0" + frame({"hwm": 1 << 33, "t": 4, "zz": [1.5, {"a": None}]}))
    write("sync_batch", "error", b"\0" + frame({"t": 5, "code": -74, "msg": "gap: resend from 10", "hwm": 10}))
    sha = bytes(range(32))
    write("sync_batch", "blob_offer", b"\0" + frame({"t": 6, "sha": sha, "size": 3 << 20}))
    write("sync_batch", "blob_state", b"\0" + frame({"t": 7, "sha": sha, "size": 3 << 20, "have": 1 << 20}))
    write("sync_batch", "blob_chunk", b"\0" + frame({"t": 8, "sha": sha, "size": 100, "offset": 90,
                                                   "data": bytes(range(10))}))


if __name__ == "__main__":
    main()
