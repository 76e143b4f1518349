# SPDX-License-Identifier: MIT
"""Write logs (zns/wlog.c, docs/format.md "Write log"): parse records and
append MARK records from the workload side.

A MARK's payload is ASCII: "B <op>" before a workload operation starts,
"E <op>" after it returned successfully, "X <op>" after it failed. The
daemon's records of an operation's device I/O that the operation waited
for are therefore before its "E" mark.
"""
import os
import struct

WRITE, FLUSH, RESET, FINISH, OPEN, CLOSE, MARK = range(1, 8)
HDR = 32
REC = 24


class Rec:
    __slots__ = ("i", "type", "zone", "off", "len", "text")

    def __init__(self, i, typ, zone, off, ln, text=None):
        self.i, self.type, self.zone, self.off, self.len = i, typ, zone, off, ln
        self.text = text


class Log:
    def __init__(self, path):
        with open(path, "rb") as f:
            d = f.read()
        if d[:8] != b"TSLABWLG":
            raise ValueError("%s: not a write log" % path)
        _, self.lba, self.nr_zones, _, self.zone_size = struct.unpack_from(
            "<IIIIQ", d, 8)
        self.recs = []
        o = HDR
        while o + REC <= len(d):
            magic, t, z, ln, off = struct.unpack_from("<4sIIIQ", d, o)
            if magic != b"WREC" or not WRITE <= t <= MARK:
                raise ValueError("%s: bad record at byte %d" % (path, o))
            if o + REC + ln > len(d):
                break
            text = d[o + REC:o + REC + ln].decode() if t == MARK else None
            self.recs.append(Rec(len(self.recs), t, z, off, ln, text))
            o += REC + ln

    def flushes(self):
        return [r.i for r in self.recs if r.type == FLUSH]


class Marker:
    """Appends MARK records to a log the daemon is writing (O_APPEND, one
    write() per record, so they never interleave with the daemon's)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def mark(self, text):
        b = text.encode()
        os.write(self.fd, b"WREC" + struct.pack("<IIIQ", MARK, 0, len(b), 0) + b)

    def close(self):
        os.close(self.fd)
