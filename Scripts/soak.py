#!/usr/bin/env python3
"""Soak test: one long `l2s eval` process and one long workbench session, RSS sampled throughout.

    python3 Scripts/soak.py eval --l2s .build/release/l2s --images 1000
    python3 Scripts/soak.py tui  --l2s .build/release/l2s --runs 200

`eval` runs `l2s eval run --compare --steer` over enough prompts and seeds for --images images in ONE
process and samples VmRSS from /proc every --interval seconds, counting finished images from the
--out file. `tui` starts the workbench in a private tmux server, types a prompt, and presses `r`
(rerun) --runs times, waiting for DONE each time. Both report RSS after the warm-up (--warmup, a
fraction of the work): the highest and lowest RSS in the first and last tenth of the rest, and the
least-squares slope per image/run; PASS when both the peak and the trough at the end are within
±--tolerance (default 5 %) of those after the warm-up. Exit 0 on PASS.
"""
import argparse, json, os, subprocess, sys, tempfile, time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def report(kind, samples, total, warmup, tolerance, seconds):
    """samples: [(work done, rss kB)]."""
    after = [(w, r) for w, r in samples if w >= warmup * total]
    if not after:
        print(f"{kind}: no samples after warm-up", file=sys.stderr)
        return False
    # RSS swings within each image (peak while sampling, trough between images), so compare like with
    # like: the highest and the lowest sample in the first and in the last tenth after the warm-up.
    lo_w, hi_w = after[0][0], after[-1][0]
    span = max(hi_w - lo_w, 1)
    first = [r for w, r in after if w <= lo_w + span / 10]
    last = [r for w, r in after if w >= hi_w - span / 10]
    peak_change = (max(last) - max(first)) / max(first)
    trough_change = (min(last) - min(first)) / min(first)
    result = {"kind": kind, "work": total, "seconds": round(seconds, 1), "rss_peak_kb": max(r for _, r in samples),
              "peak_first_tenth_kb": max(first), "peak_last_tenth_kb": max(last), "peak_change": round(peak_change, 4),
              "trough_first_tenth_kb": min(first), "trough_last_tenth_kb": min(last), "trough_change": round(trough_change, 4),
              "slope_kb_per_unit": round(slope(after), 3), "samples": len(samples),
              "pass": abs(peak_change) <= tolerance and abs(trough_change) <= tolerance}
    print(json.dumps(result))
    return result["pass"]


def soak_eval(a):
    tmp = tempfile.mkdtemp(prefix="l2s-soak-")
    out = os.path.join(tmp, "records.jsonl")
    seeds = max(1, (a.images + 2 * 224 - 1) // (2 * 224))  # --compare: 2 images per (prompt, seed)
    cases = (a.images + 1) // 2
    limit = max(1, (cases + seeds - 1) // seeds)
    cmd = [a.l2s, "eval", "run", "--compare", "--steer", "--seeds", str(seeds), "--limit", str(limit), "--threads", "1",
           "--out", out] + (["--steps", str(a.steps)] if a.steps else []) + (["--assets", a.assets] if a.assets else [])
    total = 2 * seeds * limit
    print("running:", " ".join(cmd), f"({total} images)", file=sys.stderr)
    start = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    while p.poll() is None:
        r = rss_kb(p.pid)
        try:
            with open(out, "rb") as f:
                done = f.read().count(b"\n")
        except OSError:
            done = 0
        if r:
            samples.append((done, r))
        time.sleep(a.interval)
    if p.returncode != 0:
        print(f"l2s exited {p.returncode}", file=sys.stderr)
        return False
    with open(os.path.join(tmp, "rss.json"), "w") as f:
        json.dump(samples, f)
    print(f"samples in {tmp}/rss.json", file=sys.stderr)
    return report("eval", samples, total, a.warmup, a.tolerance, time.time() - start)


def soak_tui(a):
    sock = f"l2s-soak-{os.getpid()}"
    tmux = ["tmux", "-L", sock]
    cmd = f"{a.l2s} --threads 1" + (f" --assets {a.assets}" if a.assets else "")
    subprocess.run(tmux + ["new-session", "-d", "-x", "120", "-y", "40", cmd], check=True)

    def screen():
        return subprocess.run(tmux + ["capture-pane", "-p"], capture_output=True, text=True).stdout

    def wait(pred, timeout=120):
        t = time.time()
        while time.time() - t < timeout:
            s = screen()
            if pred(s):
                return s
            time.sleep(0.05)
        raise TimeoutError(screen())

    try:
        pid = int(subprocess.run(tmux + ["display-message", "-p", "#{pane_pid}"], capture_output=True, text=True).stdout)
        wait(lambda s: "ready" in s or "Prompt" in s, 60)
        subprocess.run(tmux + ["send-keys", "-l", "a red circle to the left of a blue square"])
        subprocess.run(tmux + ["send-keys", "Enter"])
        samples, start = [], time.time()
        wait(lambda s: "DONE" in s)
        for k in range(a.runs):
            subprocess.run(tmux + ["send-keys", "r"])
            wait(lambda s: "RUNNING" in s or "DONE" not in s, 10)
            wait(lambda s: "DONE" in s)
            samples.append((k + 1, rss_kb(pid)))
        return report("tui", samples, a.runs, a.warmup, a.tolerance, time.time() - start)
    finally:
        subprocess.run(tmux + ["kill-server"], stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["eval", "tui"])
    ap.add_argument("--l2s", default=".build/release/l2s")
    ap.add_argument("--assets", default=None)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--tolerance", type=float, default=0.05)
    a = ap.parse_args()
    ok = soak_eval(a) if a.kind == "eval" else soak_tui(a)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
