#!/usr/bin/env python3
"""Measures the workbench's responsiveness in a real terminal (tmux), at 200×60 by default.

Starts `l2s` in a private tmux server, types a prompt, runs it, then while the sampler runs presses
`t` (switch the attention map's token, which changes the pane title) N times and polls capture-pane
until the change shows: the keypress → visible-screen latency as an outside observer sees it (it
includes tmux's send-keys and capture-pane round trips, printed separately). Then resizes a few
times (full repaints) and quits; the app's own figures (render, curses draw, full redraw,
key → doupdate) are the "session end" line of its log, also printed.

Usage: python3 Scripts/tui_latency.py [--l2s .build/release/l2s] [--demo | --assets DIR] [--size 200x60]
Needs: tmux. Reference only; nothing here runs at l2s run time.
"""
import argparse, os, statistics, subprocess, tempfile, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--l2s", default=".build/release/l2s")
    ap.add_argument("--demo", action="store_true", help="scripted engine (default when --assets is not given)")
    ap.add_argument("--assets", help="directory holding toy/ (the real toy model)")
    ap.add_argument("--size", default="200x60")
    ap.add_argument("--presses", type=int, default=40)
    a = ap.parse_args()
    w, h = a.size.split("x")
    sock = "l2s-latency-%d" % os.getpid()
    log = tempfile.mktemp(prefix="l2s-latency-", suffix=".log")
    engine = "--assets %s" % a.assets if a.assets else "--demo"
    prompt = ("a red circle to the left of a blue square and a green triangle above the red circle" if a.assets
              else "a dog to the right of a teddy bear and a cat above the dog")

    def tm(*args):
        return subprocess.run(["tmux", "-L", sock] + list(args), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL).stdout

    subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", "new-session", "-d", "-x", w, "-y", h,
                    "env -u NO_COLOR L2S_DEMO_STEP_MS=100 %s %s --log %s" % (os.path.abspath(a.l2s), engine, log)],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while "loaded" not in tm("capture-pane", "-p") and "ready" not in tm("capture-pane", "-p"):
            if time.time() > deadline:
                raise SystemExit("the model did not load in 120 s")
            time.sleep(0.1)
        tm("send-keys", "-l", prompt)
        tm("send-keys", "Enter")
        while "RUNNING" not in tm("capture-pane", "-p"):
            time.sleep(0.05)
        latencies = []
        for i in range(a.presses):
            before = tm("capture-pane", "-p").count("(object)")
            t0 = time.perf_counter()
            tm("send-keys", "t")
            while tm("capture-pane", "-p").count("(object)") == before and time.perf_counter() - t0 < 2:
                pass
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.05)
            if "RUNNING" not in tm("capture-pane", "-p"):
                tm("send-keys", "r")  # keep the sampler busy
        captures = []
        for _ in range(20):
            t0 = time.perf_counter()
            tm("capture-pane", "-p")
            captures.append((time.perf_counter() - t0) * 1000)
        for _ in range(5):
            tm("resize-window", "-x", str(int(w) - 1), "-y", h)
            time.sleep(0.2)
            tm("resize-window", "-x", w, "-y", h)
            time.sleep(0.2)
        tm("send-keys", "q")
        time.sleep(2)
        s = sorted(latencies)
        print("tmux-observed keypress → screen: p50 %.1f ms, p95 %.1f ms, max %.1f ms (n=%d)"
              % (statistics.median(s), s[int(0.95 * (len(s) - 1))], s[-1], len(s)))
        print("one capture-pane round trip: p50 %.1f ms" % statistics.median(captures))
        with open(log) as f:
            print([l for l in f.read().splitlines() if "session end" in l][-1].split(" ", 2)[2])
    finally:
        tm("kill-server")


if __name__ == "__main__":
    main()
