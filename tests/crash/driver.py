# SPDX-License-Identifier: MIT
"""Runs a workload through a real FUSE mount with -o writelog, enumerates
crash states of its write log, builds each with tslab-wlog-apply, mounts it
with the real daemon (read-write: recovery runs as after a power cut) and
checks it with the oracle.

Crash states of a log with flushes F_0 < F_1 < ...: for each k (and the
start, k = -1), the records up to F_k kept ("base") plus, of the WRITE /
RESET / FINISH records between F_k and F_k+1, a per-zone prefix (at most
one write in flight per zone, so a device keeps a prefix of each zone's
unflushed operations, in any combination across zones), where the last
kept write of a zone may be torn (a prefix of its logical blocks).
"""
import os
import pickle
import random
import shutil
import subprocess
import sys
import time

import oracle
import wlog
import workloads

HERE = os.path.dirname(os.path.abspath(__file__))


class Env:
    def __init__(self, tslabfs, mkfs, apply, workdir, verbose=False):
        self.tslabfs, self.mkfs, self.apply_bin = tslabfs, mkfs, apply
        self.workdir = workdir
        self.verbose = verbose
        self.fsck = os.environ.get("TSLAB_CRASH_FSCK")  # e.g. "fsck.tslabfs -n"
        os.makedirs(workdir, exist_ok=True)
        self.mnt = os.path.join(workdir, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        self.daemon = None
        self.stats = {"states": 0, "workloads": 0, "unrealizable": 0, "violations": 0,
                      "mount_s": 0.0, "build_s": 0.0, "run_s": 0.0}

    # ---- mounts ------------------------------------------------------------
    def _start(self, img, opts, errf):
        args = [self.tslabfs, "-f"] + (["-o", opts] if opts else []) + [img, self.mnt]
        # every zone reset checked against every record location; a
        # miscount is logged as "BUG:" (slab/resetcheck.c), see bug_in()
        self.daemon = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=errf,
                                       env=dict(os.environ, TSLAB_CHECK_RESETS="1"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                return False
            if os.path.ismount(self.mnt):
                return True
            time.sleep(0.002)
        return False

    def _stop(self, timeout=120):
        """Unmount and wait for the daemon; returns an error string or None."""
        # umount can find the mount busy for a moment (a release still in
        # flight, another process walking /tmp): retry, then report it
        msg = ""
        for i in range(300):
            if self.daemon.poll() is not None or not os.path.ismount(self.mnt):
                break
            r = subprocess.run(["umount", self.mnt], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            if r.returncode == 0:
                break
            msg = r.stderr.strip()
            time.sleep(0.1)
        else:
            self.cleanup()
            return "unmount refused for 30 s: %s" % msg
        try:
            rc = self.daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
            subprocess.run(["fusermount3", "-u", "-z", self.mnt])
            self.daemon = None
            return "daemon did not exit %d s after unmount (hang)" % timeout
        self.daemon = None
        return None if rc == 0 else "daemon exited with status %d at unmount" % rc

    def cleanup(self):
        if self.daemon is not None:
            self.daemon.kill()
            self.daemon.wait()
            subprocess.run(["fusermount3", "-u", "-z", self.mnt],
                           stderr=subprocess.DEVNULL)
            self.daemon = None

    # ---- one workload ------------------------------------------------------
    def record(self, name, writers, size="16M", zone="1M"):
        """Runs WRITERS on a fresh image; returns (trace, base image)."""
        d = os.path.join(self.workdir, "w")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        img, base, log = d + "/img", d + "/base", d + "/log"
        subprocess.run([self.mkfs, "--size", size, "--zone-size", zone, img], check=True,
                       stdout=subprocess.DEVNULL)
        shutil.copyfile(img, base)
        t = time.monotonic()
        with open(d + "/daemon.err", "w") as errf:
            if not self._start(img, "writelog=%s,commit=1" % log, errf):
                raise RuntimeError("%s: recording mount failed: %s" % (
                    name, open(d + "/daemon.err").read()))
        mk = wlog.Marker(log)
        rec = workloads.Recorder(self.mnt, mk)
        try:
            rec.run(writers)
        finally:
            err = self._stop()
            mk.close()
        if rec.errors:
            raise RuntimeError("%s: workload error: %s" % (name, rec.errors))
        if bug_in(d + "/daemon.err"):
            raise RuntimeError("%s: recording daemon: %s" % (name, bug_in(d + "/daemon.err")))
        if err:
            raise RuntimeError("%s: recording unmount: %s" % (name, err))
        self.stats["run_s"] += time.monotonic() - t
        self.stats["workloads"] += 1
        with open(d + "/rec.pickle", "wb") as f:
            pickle.dump({"ops": rec.ops, "ok": rec.ok, "snap_of": rec.snap_of,
                         "snaps": rec.snaps}, f)
        return oracle.Trace(wlog.Log(log), rec), base


def enumerate_states(tr, budget, rng):
    """Crash states of TR as (k, fk, [(rec, blocks)]) in segment order, at
    most BUDGET: every base state first, then per-zone prefixes and torn
    writes, sampled evenly when there are more."""
    recs = tr.log.recs
    bounds = [-1] + tr.flushes
    segs = []
    for k, fk in enumerate(bounds):
        fn = bounds[k + 1] if k + 1 < len(bounds) else len(recs)
        zones = {}
        for r in recs[fk + 1:fn]:
            if r.type in (wlog.WRITE, wlog.RESET, wlog.FINISH):
                zones.setdefault(r.zone, []).append(r)
        segs.append((k, fk, zones, k + 1 == len(bounds)))
    base = [(k, fk, ()) for k, fk, _, _ in segs]
    extra = []
    lba = tr.log.lba
    for k, fk, zones, last in segs:
        zl = sorted(zones)
        cands = set()
        # one zone advanced alone, every prefix length
        for z in zl:
            for n in range(1, len(zones[z]) + 1):
                cands.add(((z, n),))
        # every zone's whole tail but one zone cut short
        if len(zl) > 1:
            for z in zl:
                for n in range(0, len(zones[z])):
                    cands.add(tuple((y, len(zones[y]) if y != z else n) for y in zl))
        if last and zl:
            cands.add(tuple((y, len(zones[y])) for y in zl))
        # random combinations
        for _ in range(4 * len(zl)):
            cands.add(tuple((y, rng.randrange(len(zones[y]) + 1)) for y in zl))
        sel = []
        for c in sorted(cands):
            picks = []
            for z, n in c:
                picks += [(r.i, 0) for r in zones[z][:n]]
            if not picks:
                continue
            if not last and len(c) == len(zl) and all(n == len(zones[z]) for z, n in c):
                continue  # == the next base state
            sel.append(picks)
            # torn: the last kept write of each advanced zone, cut short
            for z, n in c:
                if n == 0:
                    continue
                r = zones[z][n - 1]
                nb = r.len // lba
                if r.type == wlog.WRITE and nb > 1:
                    for b in sorted({1, nb // 2, nb - 1}):
                        if 0 < b < nb:
                            torn = [(i, bl) if i != r.i else (i, b) for i, bl in picks]
                            sel.append(torn)
        extra += [(k, fk, tuple(s)) for s in sel]
    out = base[:budget]
    rest = budget - len(out)
    if rest > 0:
        if len(extra) > rest:
            extra = rng.sample(extra, rest)
        out += extra
    out.sort(key=lambda s: (s[0], len(s[2])))
    return out


class Applier:
    """A tslab-wlog-apply coprocess for one log."""

    def __init__(self, binary, log):
        self.p = subprocess.Popen([binary, log], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        ans = self.p.stdout.readline().strip()
        if not ans:
            raise RuntimeError("tslab-wlog-apply died")
        return None if ans.startswith("ok") else ans

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def explore(env, name, writers, budget, rng, out=sys.stdout, size="16M", zone="1M"):
    """Records WRITERS and checks up to BUDGET crash states; returns the
    list of violations (each a multi-line string)."""
    tr, base = env.record(name, writers, size, zone)
    log = os.path.join(env.workdir, "w", "log")
    states = enumerate_states(tr, budget, rng)
    ap = Applier(env.apply_bin, log)
    d = os.path.join(env.workdir, "w")
    cur_k, cur_img = 0, base
    bad = []
    try:
        for k, fk, picks in states:
            t = time.monotonic()
            # advance the base image to flush k
            while cur_k < k:
                # the image at flush k holds every record up to bounds[k]
                # (k = 0: none); advanced in place
                bounds = [-1] + tr.flushes
                err = None
                if cur_img == base:
                    cur_img = d + "/cur"
                    err = ap.cmd("copy %s %s" % (base, cur_img))
                idx = [r.i for r in tr.log.recs[bounds[cur_k] + 1:bounds[cur_k + 1] + 1]
                       if r.type in (wlog.WRITE, wlog.RESET, wlog.FINISH)]
                if not err and idx:
                    err = ap.cmd("apply %s %s" % (cur_img, " ".join(map(str, idx))))
                if err:
                    raise RuntimeError("%s: building flush %d: %s" % (name, cur_k + 1, err))
                cur_k += 1
            st = d + "/state"
            err = ap.cmd("copy %s %s" % (cur_img, st))
            if not err and picks:
                err = ap.cmd("apply %s %s" % (st, " ".join(
                    "%d:%d" % (i, b) if b else str(i) for i, b in picks)))
            env.stats["build_s"] += time.monotonic() - t
            if err:
                env.stats["unrealizable"] += 1
                continue
            R = max([fk] + [i for i, _ in picks])
            t = time.monotonic()
            v = check_state(env, tr, fk, R, st)
            env.stats["mount_s"] += time.monotonic() - t
            env.stats["states"] += 1
            if v:
                env.stats["violations"] += 1
                if len(bad) < 3:
                    mp, mv = minimize(env, ap, tr, k, fk, cur_img, picks)
                    msg = ("VIOLATION %s: state flush #%d (record %d) +%s\n  %s\n"
                           "  minimal: flush #%d +%s\n  %s\n  workload: %s" % (
                               name, k, fk, _picks_str(tr, picks), "\n  ".join(v[:8]),
                               k, _picks_str(tr, mp), "\n  ".join(mv[:8]),
                               _ops_str(tr)[:3000]))
                else:
                    msg = "VIOLATION %s: state flush #%d +%s: %s" % (
                        name, k, _picks_str(tr, picks), v[0])
                print(msg, file=out, flush=True)
                bad.append(msg)
    finally:
        ap.close()
    return bad


def build_check(env, ap, tr, fk, base_img, picks):
    st = os.path.join(env.workdir, "w", "state")
    err = ap.cmd("copy %s %s" % (base_img, st))
    if not err and picks:
        err = ap.cmd("apply %s %s" % (st, " ".join(
            "%d:%d" % (i, b) if b else str(i) for i, b in picks)))
    if err:
        return None
    return check_state(env, tr, fk, max([fk] + [i for i, _ in picks]), st)


def minimize(env, ap, tr, k, fk, base_img, picks):
    """Shortens each zone's kept tail (whole zones first, then one
    record at a time from its end) while the state still violates."""
    cur = list(picks)
    v = build_check(env, ap, tr, fk, base_img, cur)
    changed = True
    while changed:
        changed = False
        zones = sorted(set(tr.log.recs[i].zone for i, _ in cur))
        for z in zones:
            zi = [p for p in cur if tr.log.recs[p[0]].zone == z]
            for n in range(0, len(zi)):
                cand = [p for p in cur if tr.log.recs[p[0]].zone != z] + zi[:n]
                cand.sort()
                cv = build_check(env, ap, tr, fk, base_img, cand)
                if cv:
                    cur, v, changed = cand, cv, True
                    break
            if changed:
                break
    return cur, v or []


def check_state(env, tr, fk, R, img):
    errp = os.path.join(env.workdir, "w", "check.err")
    pre = []
    if env.fsck:
        # the corruption checker (issue 11), when given: fsck exit codes,
        # 4 and up = errors left uncorrected
        r = subprocess.run(env.fsck.split() + [img], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode >= 4:
            pre.append("fsck exit %d: %s" % (r.returncode, r.stdout.strip()[-300:]))
    with open(errp, "w") as errf:
        ok = env._start(img, None, errf)
    if not ok:
        msg = open(errp).read().strip().replace("\n", " / ")
        env.cleanup()
        return ["mount refused: %s" % (msg or "(no message)")]
    try:
        tree = oracle.read_tree(env.mnt)
    finally:
        err = env._stop()
    v = pre + oracle.check(tr, fk, R, tree)
    if err:
        v.append("unmount: %s" % err)
    if bug_in(errp):
        v.append("daemon: %s" % bug_in(errp))
    return v


def bug_in(path):
    """The daemon's first "BUG:" line in the log at PATH, or None."""
    with open(path, errors="replace") as f:
        return next((ln.strip() for ln in f if "BUG:" in ln), None)


def _picks_str(tr, picks):
    if not picks:
        return "nothing"
    return ",".join("r%d z%d%s" % (i, tr.log.recs[i].zone, (":%db" % b) if b else "")
                    for i, b in picks)


def _ops_str(tr):
    s = []
    for i, op in enumerate(tr.rec.ops):
        o = [x if not isinstance(x, bytes) else "<%dB>" % len(x) for x in op]
        s.append("%d:%s%s" % (i, "/".join(map(str, o)),
                              "" if tr.rec.ok[i] is True else "(failed)"))
    return " ".join(s)


def default_bins():
    b = os.path.join(HERE, "..", "..", "build")
    return (os.path.join(b, "fs", "tslabfs"), os.path.join(b, "mkfs", "mkfs.tslabfs"),
            os.path.join(b, "tests", "crash", "tslab-wlog-apply"))


def skip_unless_able():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("SKIP: needs root and /dev/fuse")
        sys.exit(77)

